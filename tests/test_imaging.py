"""Every kind of file a corpus or a staff member may hand the engine: bad ones fail with a reason,
awkward but valid ones decode upright into 8-bit BGR."""
from __future__ import annotations

import os
import shutil
import socket
import struct
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from face_engine import imaging
from face_engine.imaging import ImageError, read_file, read_image


@pytest.fixture(scope="module")
def obama(photos: Path) -> np.ndarray:
    return read_image(photos / "fr_obama.jpg")


def reason(source) -> str:
    with pytest.raises(ImageError) as caught:
        read_image(source)
    return caught.value.reason


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that declares width x height (a decompression bomb's header) over a tiny payload."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
                     + chunk(b"IEND", b""))


def test_bad_files_fail_with_their_reason(tmp_path: Path, photos: Path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("this is a text file with a photo's name\n")
    jpeg = (photos / "fr_obama.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    png_header_only(tmp_path / "bomb.png", 20000, 20000)
    assert reason(tmp_path / "missing.jpg") == "missing"
    assert reason(tmp_path) == "directory"
    assert reason(tmp_path / "empty.jpg") == "empty"
    assert reason(tmp_path / "notes.jpg") == "not_an_image"
    assert reason(tmp_path / "truncated.jpg") == "corrupt"
    assert reason(tmp_path / "bomb.png") == "too_large"


def test_a_huge_jpeg_is_decoded_downscaled(tmp_path: Path, obama: np.ndarray):
    big = cv2.resize(obama, (9000, 7000), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(tmp_path / "big.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 60])
    image = read_image(tmp_path / "big.jpg", max_pixels=10_000_000)
    assert image.shape[0] * image.shape[1] <= 10_000_000
    assert image.shape[1] / image.shape[0] == pytest.approx(9000 / 7000, rel=0.01)


def test_sixteen_bit_png_keeps_its_picture(tmp_path: Path, obama: np.ndarray):
    cv2.imwrite(str(tmp_path / "deep.png"), obama.astype(np.uint16) * 257)
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png"), obama)


def test_cmyk_jpeg_becomes_bgr(tmp_path: Path, photos: Path, obama: np.ndarray):
    Image.open(photos / "fr_obama.jpg").convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    image = read_image(tmp_path / "cmyk.jpg")
    assert image.shape == obama.shape
    assert np.abs(image.astype(int) - obama).mean() < 12


def test_transparency_is_laid_on_white(tmp_path: Path, photos: Path):
    rgba = np.array(Image.open(photos / "fr_32bit.png").convert("RGBA"))
    rgba[:10, :10, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "clear_corner.png")
    image = read_image(tmp_path / "clear_corner.png")
    assert image.shape == rgba.shape[:2] + (3,)
    assert (image[:10, :10] == 255).all()


def test_grayscale_becomes_three_equal_channels(photos: Path):
    image = read_image(photos / "camera.png")
    assert image.ndim == 3 and image.shape[2] == 3
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()


def test_exif_orientation_is_applied(tmp_path: Path, photos: Path, obama: np.ndarray):
    upright = Image.open(photos / "fr_obama.jpg")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a camera held sideways stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored.save(tmp_path / "sideways.jpg", exif=exif, quality=95)
    image = read_image(tmp_path / "sideways.jpg")
    assert image.shape == obama.shape
    assert np.abs(image.astype(int) - obama).mean() < 6


def test_chinese_file_name(tmp_path: Path, photos: Path, obama: np.ndarray):
    path = tmp_path / "遇见另一个我" / "奥巴马.jpg"
    path.parent.mkdir()
    shutil.copy(photos / "fr_obama.jpg", path)
    np.testing.assert_array_equal(read_image(path), obama)


def test_arrays_and_bytes_are_accepted(photos: Path, obama: np.ndarray):
    np.testing.assert_array_equal(read_image((photos / "fr_obama.jpg").read_bytes()), obama)
    gray = cv2.cvtColor(obama, cv2.COLOR_BGR2GRAY)
    assert read_image(gray).shape == obama.shape
    assert read_image(obama) is not None


def special_files(folder: Path) -> dict[str, tuple[str, str]]:
    """Files a stranger's corpus may hold under a photo's name: name -> (reason, words of the line)."""
    os.mkfifo(folder / "fifo.jpg")
    (folder / "zero.jpg").symlink_to("/dev/zero")
    (folder / "loop_a.jpg").symlink_to("loop_b.jpg")
    (folder / "loop_b.jpg").symlink_to("loop_a.jpg")
    with open(folder / "sparse.jpg", "wb") as file:
        file.truncate(2 * 1024**3)
    return {
        "fifo.jpg": ("special_file", "a FIFO, not a regular file"),
        "zero.jpg": ("special_file", "a character device, not a regular file"),
        "loop_a.jpg": ("symlink_loop", "a loop of symbolic links"),
        "sparse.jpg": ("too_large", "file too large (2048 MB)"),
    }


@pytest.mark.timeout(60)
def test_special_files_are_refused_unread(tmp_path: Path):
    expected = special_files(tmp_path)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "socket.jpg"))
    expected["socket.jpg"] = ("special_file", "a socket, not a regular file")
    tracemalloc.start()
    try:
        for name, (reason, words) in expected.items():
            with pytest.raises(ImageError) as caught:
                read_image(tmp_path / name)
            assert (caught.value.reason, words in str(caught.value)) == (reason, True), name
            assert reason in imaging.REASONS
        assert tracemalloc.get_traced_memory()[1] < 2**20, "no file was read into memory"
    finally:
        tracemalloc.stop()
        listener.close()


def test_a_link_to_a_photo_is_followed(tmp_path: Path, photos: Path, obama: np.ndarray):
    (tmp_path / "linked.jpg").symlink_to(photos / "fr_obama.jpg")
    np.testing.assert_array_equal(read_image(tmp_path / "linked.jpg"), obama)


def test_a_file_larger_than_it_says_is_cut_at_the_cap(monkeypatch):
    maps = Path("/proc/self/maps")  # a regular file whose stated size is 0, whatever it holds
    if not maps.exists():
        pytest.skip("needs Linux's /proc")
    monkeypatch.setattr(imaging, "MAX_FILE_BYTES", 100)
    with pytest.raises(ImageError, match="at most 0 MB") as caught:
        read_file(maps)
    assert caught.value.reason == "too_large"
