"""`index-builder embed`: tables, JSON lines, and bad files that never stop the run."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import LFW, copy_lfw_people
from index_builder.cli import main
from test_imaging import special_files

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def mixed_folder(tmp_path: Path, photos: Path) -> Path:
    """Good photos in awkward forms between bad files, in a folder with a Chinese name."""
    folder = tmp_path / "展会照片"
    folder.mkdir()
    shutil.copy(photos / "fr_obama.jpg", folder / "01_奥巴马.jpg")
    (folder / "02_empty.jpg").write_bytes(b"")
    Image.open(photos / "fr_obama.jpg").convert("CMYK").save(folder / "03_cmyk.jpg")
    (folder / "04_notes.jpg").write_text("not a photo")
    sideways = Image.open(photos / "fr_obama.jpg").transpose(Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90 degrees counter-clockwise to display"
    sideways.save(folder / "05_exif_rotated.jpg", exif=exif)
    data = (photos / "fr_obama.jpg").read_bytes()
    (folder / "06_truncated.jpg").write_bytes(data[: len(data) // 3])
    shutil.copy(photos / "chelsea.png", folder / "07_cat.png")
    return folder


def test_json_lines_report_every_file_and_bad_ones_do_not_stop_the_run(mixed_folder: Path, capsys):
    files = sorted(str(p) for p in mixed_folder.iterdir()) + [str(mixed_folder / "08_missing.jpg")]
    assert main(["embed", "--json", *files]) == 1
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["image"] for r in records] == files
    by_name = {Path(r["image"]).name: r for r in records}
    for name in ("01_奥巴马.jpg", "03_cmyk.jpg", "05_exif_rotated.jpg"):
        faces = by_name[name]["faces"]
        assert len(faces) == 1, name
        left_eye, right_eye, _, left_mouth, _ = faces[0]["landmarks"]
        assert left_eye[1] < left_mouth[1], f"{name}: the face is found upright"
        assert len(faces[0]["embedding"]) == 128
        assert by_name[name]["pack"] == "sface" and by_name[name]["providers"] == ["CPUExecutionProvider"]
    assert by_name["07_cat.png"]["faces"] == []
    for name, reason in (("02_empty.jpg", "empty"), ("04_notes.jpg", "not_an_image"),
                         ("06_truncated.jpg", "corrupt"), ("08_missing.jpg", "missing")):
        assert by_name[name]["error"].startswith(reason), name
        assert f"{name}: " in err
    assert len(err.strip().splitlines()) == 4, "one line per bad file"


def test_the_table_names_each_face(photos: Path, capsys):
    assert main(["embed", str(photos / "if_t1.jpg"), str(photos / "coffee.png")]) == 0
    out = capsys.readouterr().out
    assert "if_t1.jpg: 6 faces" in out and "coffee.png: 0 faces" in out
    assert "pack sface, 128-d, CPU" in out


def test_the_insightface_layout_pack_works_from_its_folder(photos: Path, mini_pack: Path, capsys):
    assert main(["embed", "--json", "--pack", str(mini_pack), str(photos / "fr_two_people.jpg")]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["pack"] == "insightface-mini" and len(record["faces"]) == 2


def test_asking_for_cuda_without_it_is_a_clear_error(photos: Path, capsys):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime offers CUDA")
    assert main(["embed", "--device", "cuda", str(photos / "fr_obama.jpg")]) == 2
    assert "--device cuda" in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_embed_goes_on_past_fifos_devices_loops_and_huge_files(tmp_path: Path, photos: Path, capsys):
    expected = special_files(tmp_path)
    good = str(photos / "fr_obama.jpg")
    names = list(expected)
    assert main(["embed", *(str(tmp_path / name) for name in names[:2]), good,
                 *(str(tmp_path / name) for name in names[2:])]) == 1
    out, err = capsys.readouterr()
    assert f"{good}: 1 face" in out
    lines = err.strip().splitlines()
    assert len(lines) == len(expected), "one line per bad file"
    for line, (name, (_, words)) in zip(lines, expected.items(), strict=True):
        assert line.startswith(f"error: {tmp_path / name}: ") and words in line


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_build_counts_special_files_and_search_refuses_a_fifo(tmp_path: Path, capsys):
    corpus = tmp_path / "corpus"
    copy_lfw_people(corpus, {"Tony_Blair": 2})
    special_files(corpus / "Tony_Blair")
    out = tmp_path / "gallery"
    assert main(["build", str(corpus), "--out", str(out), "--workers", "1"]) == 1  # bad files: published, exit 1
    printed = capsys.readouterr().out
    assert "2 faces of 1 identities from 7 photos" in printed
    assert "skipped photos: special_file 2, symlink_loop 2, too_large 1" in printed
    fifo = str(corpus / "Tony_Blair" / "fifo.jpg")
    assert main(["search", str(out), fifo]) == 1
    assert capsys.readouterr().err == f"error: {fifo}: a FIFO, not a regular file\n"


def test_onnxruntime_leaves_nothing_in_the_home_folder(tmp_path: Path, photos: Path):
    """onnxruntime's telemetry would store a device id and an event database under ~/.cache."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "PYTHONPATH": str(ROOT)}
    env.pop("ORT_DISABLE_TELEMETRY", None)
    done = subprocess.run([sys.executable, "-m", "index_builder.cli", "embed", str(photos / "fr_obama.jpg")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert [path for path in home.rglob("*")] == []


KIOSK_PEOPLE = {"Tony_Blair": 4, "Colin_Powell": 4, "Zico": 2, "Hugo_Chavez": 2}  # the kiosk tests' gallery


@pytest.mark.parametrize("policy", ["fair", "exact"])
def test_search_json_ranks_k_different_people_by_score_with_their_likeness(galleries, tmp_path, capsys, policy):
    from face_engine.gallery import Gallery

    _, gallery = galleries.copy(KIOSK_PEOPLE, tmp_path)
    query = LFW / "images_deepfunneled" / "Tony_Blair" / "Tony_Blair_0100.jpg"  # not in the gallery
    assert main(["search", str(gallery), str(query), "--json", "--k", "5", "--policy", policy]) == 0
    result = json.loads(capsys.readouterr().out)
    matches = result["matches"]
    assert [m["rank"] for m in matches] == [1, 2, 3, 4], "min(k, people in the gallery): 4 different people"
    assert len({m["identity"] for m in matches}) == 4 and matches[0]["identity"] == "Tony_Blair"
    scores, likeness = [m["score"] for m in matches], [m["likeness"] for m in matches]
    assert scores == sorted(scores, reverse=True) and likeness == sorted(likeness, reverse=True)
    calibration = Gallery(gallery, use_gpu=False).calibration
    assert likeness == [calibration.likeness(score) for score in scores] and all(0 <= n <= 100 for n in likeness)
    assert result["likeness_table"] == calibration.source == "pack sface on LFW", "4 people: the pack's table"
    assert main(["search", str(gallery), str(query), "--k", "2", "--policy", policy]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"{matches[0]['likeness']:>3}% alike  Tony Blair" in lines[1] and lines[2].lstrip().startswith("2. ")


def test_file_names_with_newlines_and_control_characters_are_printed_escaped(tmp_path: Path, photos: Path, capsys):
    """One line per file in embed's table and in its errors, whatever the file's name holds."""
    good, bad = tmp_path / "new\nline\x1b[2J.jpg", tmp_path / "bad\rname.jpg"
    shutil.copy(photos / "fr_obama.jpg", good)
    bad.write_text("not a photo")
    assert main(["embed", str(good), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith(f"{tmp_path}/new\\nline\\x1b[2J.jpg: 1 face  [pack sface")
    assert "\x1b" not in out and len(out.splitlines()) == 3, "the file's line, the table's head and its face"
    assert err == f"error: {tmp_path}/bad\\rname.jpg: not an image file (unknown format)\n"
