"""Decode any photo a corpus or a camera may hold into one form: an upright 8-bit BGR array.

Every failure is an ImageError whose `reason` is one short word from REASONS, so a builder can
count skips by reason and a CLI can print one line per bad file.
"""
from __future__ import annotations

import errno
import io
import os
import stat

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Our own size check below replaces Pillow's, which would refuse a large JPEG we can downscale.
Image.MAX_IMAGE_PIXELS = None

MAX_PIXELS = 50_000_000
"""Largest image decoded at full size (a 50 MP photo is 150 MB as BGR). Larger JPEGs are decoded
downscaled by the JPEG decoder itself (a cheap DCT reduction); other formats are refused."""

MAX_FILE_BYTES = 64 * 1024 * 1024
"""Largest photo file read. A 50 MP JPEG is about 25 MB; anything past this is refused unread, so
a link to /dev/zero or a 2 GB sparse file cannot exhaust memory."""

REASONS = ("missing", "directory", "empty", "not_an_image", "corrupt", "too_large", "special_file", "symlink_loop")

# What a path that is not a regular file is, in words (as rsync refuses to copy special files).
_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class ImageError(ValueError):
    """A file that cannot be used as a photo; `reason` is one of REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def read_image(source: str | os.PathLike[str] | bytes | np.ndarray, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Return the photo as an upright HxWx3 uint8 BGR array.

    `source` is a path, the encoded bytes of a file, or an already decoded array (BGR, BGRA or
    grayscale, uint8 or uint16), which is only normalised. EXIF orientation is applied, CMYK and
    palette images are converted, 16-bit samples are scaled to 8 bits, and transparency is laid
    on white.
    """
    if isinstance(source, np.ndarray):
        return _to_bgr8(source)
    data = source if isinstance(source, bytes) else read_file(source)
    if not data:
        raise ImageError("empty", "empty file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            return _decode(image, max_pixels)
    except UnidentifiedImageError:
        raise ImageError("not_an_image", "not an image file (unknown format)") from None
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError("corrupt", f"corrupt or truncated image: {error}") from None


def read_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the photo file at `path`, or an ImageError.

    Only regular files are opened (links are followed): a FIFO would block the reader forever and
    a device never ends. The file is checked again once open, in case it was swapped meanwhile,
    and at most MAX_FILE_BYTES are read, whatever size the file claims.
    """
    try:
        _check_regular(os.stat(path))
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as file:
            _check_regular(os.fstat(file.fileno()))
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise _unreadable(error) from None
    if len(data) > MAX_FILE_BYTES:  # it grew, or its stated size lied
        raise _too_large()
    return data


def _check_regular(status: os.stat_result) -> None:
    if stat.S_ISDIR(status.st_mode):
        raise ImageError("directory", "is a directory, not an image")
    if not stat.S_ISREG(status.st_mode):
        kind = next((name for is_kind, name in _SPECIAL_KINDS if is_kind(status.st_mode)), "a special file")
        raise ImageError("special_file", f"{kind}, not a regular file")
    if status.st_size > MAX_FILE_BYTES:
        raise _too_large(status.st_size)


def _too_large(size: int | None = None) -> ImageError:
    stated = f" ({size / 2**20:.0f} MB)" if size is not None else ""
    return ImageError("too_large", f"file too large{stated}: a photo may have at most {MAX_FILE_BYTES >> 20} MB")


def _unreadable(error: OSError) -> ImageError:
    if error.errno == errno.ELOOP:
        return ImageError("symlink_loop", "a loop of symbolic links, not a file")
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        return ImageError("missing", "no such file")
    if error.errno in (errno.EACCES, errno.EPERM):
        return ImageError("missing", "permission denied")
    return ImageError("missing", f"cannot read the file: {error.strerror}")


def _decode(image: Image.Image, max_pixels: int) -> np.ndarray:
    width, height = image.size
    if width * height > max_pixels and image.format == "JPEG":
        # The decoder reduces by 1/2, 1/4 or 1/8, picking the largest reduction that stays at or
        # above the size asked for: asking for half the target keeps the result within the target.
        scale = (width * height / max_pixels) ** 0.5
        image.draft("RGB", (int(width / scale / 2), int(height / scale / 2)))
    if image.size[0] * image.size[1] > max_pixels:
        raise ImageError(
            "too_large",
            f"image too large: {width}x{height} ({width * height / 1e6:.0f} MP) exceeds "
            f"{max_pixels / 1e6:.0f} MP",
        )
    image.load()
    image = ImageOps.exif_transpose(image)
    return _to_bgr8(_pil_to_array(image))


def _pil_to_array(image: Image.Image) -> np.ndarray:
    """An RGB(A) or single-channel array; 16-bit and float samples keep their depth."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.asarray(image.convert("I")).astype(np.uint16)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return np.asarray(image.convert("RGBA"))[..., [2, 1, 0, 3]]
    if image.mode in ("L", "1"):
        return np.asarray(image.convert("L"))
    if image.mode == "F":
        samples: np.ndarray = np.clip(np.asarray(image), 0, 255)
        return samples.astype(np.uint8)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[..., ::-1])


def _to_bgr8(array: np.ndarray) -> np.ndarray:
    if array.size == 0:
        raise ImageError("corrupt", "image has no pixels")
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ImageError("corrupt", f"unsupported sample type {array.dtype}")
    if array.ndim == 2:
        array = array[..., None]
    channels = array.shape[2]
    if channels == 1:
        return np.ascontiguousarray(np.repeat(array, 3, axis=2))
    if channels == 4:
        alpha = array[..., 3:4].astype(np.float32) / 255.0
        blended = array[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return np.ascontiguousarray(blended.round().astype(np.uint8))
    if channels == 3:
        return np.ascontiguousarray(array)
    raise ImageError("corrupt", f"unsupported channel count {channels}")


# A corpus border: the black a warped corpus (LFW's deep-funnelled photos) laid where the original
# photo did not reach. Measured on LFW: its wedges are 0-4 in every channel, with a fringe of JPEG
# ringing up to ~16 along their edge (BORDER_FRINGE pixels wide). A higher level takes the dark
# backgrounds of night photos, which join the wedges, and shrinks their portraits to bare faces.
BORDER_BLACK = 4
BORDER_FRINGE = 3
BORDER_TOLERANCE = 0.002  # share of a square's pixels that may be border (a JPEG-ringing fringe)
SHRINK_STEPS = 24  # square sizes tried, from the wanted one down to the smallest
SMALLEST = 1.2  # the smallest square, in face sizes: a forehead and a chin, never a bare face
SHIFTS = 9  # positions tried along each axis for each size


def border_fill(image: np.ndarray, own: tuple[int, int, int, int] | None = None) -> np.ndarray | None:
    """Where `image` (BGR) holds border fill: black pixels joined to its edge through black pixels,
    less any such patch that reaches into `own` (x1, y1, x2, y2: the face and a little around it),
    which is the photo's own black (a stage's dark backdrop, black hair), not a border: a warped
    corpus's wedges lie at its edges, away from the face it was centred on. None when no edge pixel
    is black (most photos: the test costs four lines of pixels)."""
    edges = (image[0], image[-1], image[:, 0], image[:, -1])
    if not any((edge.max(axis=1) <= BORDER_BLACK).any() for edge in edges):
        return None
    black = cv2.inRange(image, (0, 0, 0), (BORDER_BLACK,) * 3)
    count, labels = cv2.connectedComponents(black, connectivity=8)
    touching = np.zeros(count, bool)
    touching[np.r_[labels[0], labels[-1], labels[:, 0], labels[:, -1]]] = True
    if own is not None:
        touching[labels[max(own[1], 0):max(own[3], 0), max(own[0], 0):max(own[2], 0)].ravel()] = False
    touching[0] = False  # the label of every pixel that is not black
    fringe = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * BORDER_FRINGE + 1,) * 2)
    filled: np.ndarray = cv2.dilate(touching[labels].view(np.uint8), fringe).view(bool)
    return filled


def inside_square(image: np.ndarray, box: np.ndarray, margin: float, lift: float = 0.0) -> tuple[int, int, int]:
    """(x, y, side) in pixels of `image`: the square a face's picture shows. Wanted: `margin` times
    the box's longer side, centred on the box and moved up by `lift` of its height. The square stays
    inside the photo and off its border fill (border_fill), never padded: where the wanted one does
    not fit, the largest square that does (down to SMALLEST faces), as near the wanted place as
    keeps the face's centre in its middle half; where none does, the one with the least fill."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    face = max(x2 - x1, y2 - y1, 1.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - (y2 - y1) * lift
    near = face * SMALLEST / 2
    fill = border_fill(image, (int(cx - near), int(cy - near), int(np.ceil(cx + near)), int(np.ceil(cy + near))))
    area = None if fill is None else cv2.integral(fill.astype(np.uint8))
    largest = max(1, min(round(face * margin), width, height))
    smallest = max(1, min(round(face * SMALLEST), largest))
    best: tuple[float, int, int, int] | None = None
    for side in np.unique(np.linspace(largest, smallest, SHRINK_STEPS).round().astype(int))[::-1]:
        xs, ys = _places(cx, side, width), _places(cy, side, height)
        shares = _fill_shares(area, xs, ys, int(side))
        near = (xs[None, :] + side / 2 - cx) ** 2 + (ys[:, None] + side / 2 - cy) ** 2
        fits = shares <= BORDER_TOLERANCE
        if fits.any():
            row, column = np.unravel_index(np.argmin(np.where(fits, near, np.inf)), near.shape)
            return int(xs[column]), int(ys[row]), int(side)
        row, column = np.unravel_index(np.argmin(shares + near * 1e-12), near.shape)
        if best is None or shares[row, column] < best[0]:
            best = (float(shares[row, column]), int(xs[column]), int(ys[row]), int(side))
    assert best is not None
    return best[1], best[2], best[3]


def _places(centre: float, side: int, length: int) -> np.ndarray:
    """Where a square of `side` may start along an axis of `length`: inside it, the face's centre
    in the square's middle half (the wanted place first); the one nearest the wanted place when the
    photo's edge leaves no such start."""
    wanted = min(max(round(centre - side / 2), 0), length - side)
    low, high = max(0, int(np.ceil(centre - 0.75 * side))), min(length - side, int(centre - 0.25 * side))
    if low > high:
        return np.array([wanted])
    starts = np.r_[wanted if low <= wanted <= high else low, np.linspace(low, high, SHIFTS).round()]
    return np.unique(starts).astype(int)


def _fill_shares(area: np.ndarray | None, xs: np.ndarray, ys: np.ndarray, side: int) -> np.ndarray:
    """The share of border fill in each square of `side` starting at (xs[j], ys[i]), from the fill's
    integral image `area` (None: no fill)."""
    if area is None:
        return np.zeros((len(ys), len(xs)))
    top, bottom, left, right = ys[:, None], ys[:, None] + side, xs[None, :], xs[None, :] + side
    counts = area[bottom, right] - area[top, right] - area[bottom, left] + area[top, left]
    shares: np.ndarray = counts / float(side * side)
    return shares
