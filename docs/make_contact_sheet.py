"""A contact sheet of a gallery's attract pairs (the build's, index_builder.pairs): each pair's two
portraits side by side, their names as plain text under them, the pair's raw cosine beside.

    .venv/bin/python docs/make_contact_sheet.py [--gallery galleries/lfw] [--pairs 12]
        [--out docs/screenshots/attract_pairs_lfw.png]

The pairs shown are spread evenly over the stored ones, most alike first, so the sheet samples the
whole rotation the attract loop goes through, not only its best. Look at it: no pair a visitor would
laugh at (two people of plainly different sex or age, the same person twice).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from face_engine.gallery import Gallery, GalleryError, read_picture

HERE = Path(__file__).resolve().parent
TILE = 180  # pixels of each portrait on the sheet
COLUMNS = 3  # pairs per row
CAPTION = 44  # pixels under each pair for the names
GAP = 16
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Debian's fonts-dejavu-core


def spread(count: int, wanted: int) -> list[int]:
    """`wanted` positions spread evenly over `count`, the first included."""
    return sorted({int(i) for i in np.linspace(0, count - 1, min(wanted, count)).round()})


def pair_tile(gallery: Gallery, pair: np.ndarray, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> Image.Image:
    """Two portraits side by side over a white band with their names and the pair's raw cosine."""
    faces = gallery.faces(pair.tolist())
    vectors = gallery.index.reconstruct_batch(pair.astype(np.int64))
    score = float(vectors[0] @ vectors[1])
    tile = Image.new("RGB", (2 * TILE, TILE + CAPTION), "white")
    for place, face in enumerate(faces):
        picture = cv2.resize(read_picture(face.portrait), (TILE, TILE), interpolation=cv2.INTER_AREA)
        tile.paste(Image.fromarray(picture[..., ::-1]), (place * TILE, 0))
    draw = ImageDraw.Draw(tile)
    names = " · ".join(" ".join(face.display_name.split())[:28] for face in faces)
    draw.text((4, TILE + 4), names, fill="black", font=font)
    draw.text((4, TILE + 24), f"cosine {score:.3f}", fill=(90, 90, 90), font=font)
    return tile


def contact_sheet(gallery: Gallery, wanted: int) -> Image.Image:
    if gallery.pairs is None or len(gallery.pairs) == 0:
        raise GalleryError(f"{gallery.name} holds no attract pairs (built before format 5, or too few people)")
    font = ImageFont.truetype(str(FONT), 14) if FONT.is_file() else ImageFont.load_default()
    tiles = [pair_tile(gallery, gallery.pairs[i], font) for i in spread(len(gallery.pairs), wanted)]
    rows = -(-len(tiles) // COLUMNS)
    width, height = tiles[0].size
    sheet = Image.new("RGB", (COLUMNS * (width + GAP) + GAP, rows * (height + GAP) + GAP), (235, 235, 235))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, (GAP + (i % COLUMNS) * (width + GAP), GAP + (i // COLUMNS) * (height + GAP)))
    return sheet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gallery", type=Path, default=HERE.parent / "galleries" / "lfw")
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--out", type=Path, default=HERE / "screenshots" / "attract_pairs_lfw.png")
    args = parser.parse_args()
    try:
        gallery = Gallery(args.gallery, use_gpu=False)
    except GalleryError as error:
        print(f"make_contact_sheet: {error}", file=sys.stderr)
        return 2
    try:
        contact_sheet(gallery, args.pairs).save(args.out, optimize=True)
    except GalleryError as error:
        print(f"make_contact_sheet: {error}", file=sys.stderr)
        return 2
    finally:
        gallery.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
