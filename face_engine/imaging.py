"""Decode any photo a corpus or a camera may hold into one form: an upright 8-bit BGR array.

Every failure is an ImageError whose `reason` is one short word from REASONS, so a builder can
count skips by reason and a CLI can print one line per bad file.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Our own size check below replaces Pillow's, which would refuse a large JPEG we can downscale.
Image.MAX_IMAGE_PIXELS = None

MAX_PIXELS = 50_000_000
"""Largest image decoded at full size (a 50 MP photo is 150 MB as BGR). Larger JPEGs are decoded
downscaled by the JPEG decoder itself (a cheap DCT reduction); other formats are refused."""

REASONS = ("missing", "directory", "empty", "not_an_image", "corrupt", "too_large")


class ImageError(ValueError):
    """A file that cannot be used as a photo; `reason` is one of REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def read_image(source: str | os.PathLike | bytes | np.ndarray, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Return the photo as an upright HxWx3 uint8 BGR array.

    `source` is a path, the encoded bytes of a file, or an already decoded array (BGR, BGRA or
    grayscale, uint8 or uint16), which is only normalised. EXIF orientation is applied, CMYK and
    palette images are converted, 16-bit samples are scaled to 8 bits, and transparency is laid
    on white.
    """
    if isinstance(source, np.ndarray):
        return _to_bgr8(source)
    data = source if isinstance(source, bytes) else _read_file(Path(source))
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


def _read_file(path: Path) -> bytes:
    if path.is_dir():
        raise ImageError("directory", "is a directory, not an image")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageError("missing", "no such file") from None
    except PermissionError:
        raise ImageError("missing", "permission denied") from None


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
        return np.clip(np.asarray(image), 0, 255).astype(np.uint8)
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
