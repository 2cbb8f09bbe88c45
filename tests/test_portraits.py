"""Gallery portraits (issue 20, item 3): cut inside the photo and off its corpus border (LFW's
deep-funnelled photos carry black wedges), never padded with smeared edges, each with its source
scale. Real LFW photos through the builder's own per-photo stage."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import LFW, need
from face_engine.engine import face_square
from face_engine.gallery import PORTRAIT_SIZE, portrait_and_side
from face_engine.imaging import SMALLEST, border_fill, inside_square
from index_builder.corpus import read_corpus
from index_builder.worker import FaceFilter, find_faces, init_worker
from models.packs import resolve_pack

NEAR_BLACK = 16  # every channel at most this, JPEG noise included: what reads as black on screen
WEDGE_BLACK = 4  # LFW's deep-funnelled wedges, inside their JPEG fringe (scenes' shadows are rarely this flat)
FRINGE = 3  # pixels of JPEG ringing along a wedge's edge
MOST_BORDER = 0.01  # share of a stored portrait's pixels that may be near-black corpus border
EVERY = 100  # every 100th LFW photo in name order: 133 photos of as many people


def corpus_border(photo: np.ndarray) -> np.ndarray:
    """Where `photo` holds no photo: wedge-black pixels joined to its edge through wedge-black pixels,
    and their fringe. Dark hair or a night sky inside the photo is its own, and is left alone."""
    black = cv2.inRange(photo, (0, 0, 0), (WEDGE_BLACK,) * 3)
    count, labels = cv2.connectedComponents(black, connectivity=8)
    edge = np.zeros(count, bool)
    edge[np.r_[labels[0], labels[-1], labels[:, 0], labels[:, -1]]] = True
    edge[0] = False
    fringe = np.ones((2 * FRINGE + 1, 2 * FRINGE + 1), np.uint8)
    return cv2.dilate(edge[labels].astype(np.uint8), fringe).astype(bool)


def border_share(photo: np.ndarray, square: tuple[int, int, int], portrait: np.ndarray) -> float:
    """The share of `portrait` (cut from `square`, x, y, side, of `photo`) that is near-black corpus
    border; a square reaching past the photo counts what lies outside as border (padding)."""
    x, y, side = square
    height, width = photo.shape[:2]
    border = np.pad(corpus_border(photo), side, constant_values=True)[y + side:y + 2 * side, x + side:x + 2 * side]
    size = portrait.shape[0]
    there = cv2.resize(border.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST).astype(bool)
    black = cv2.inRange(portrait, (0, 0, 0), (NEAR_BLACK,) * 3).astype(bool)
    return float((there & black).mean())


def old_square(box: np.ndarray) -> tuple[int, int, int]:
    """The square portraits were cut from before (face_engine.engine.face_square, margin 1.6, lift
    0.05), padded with the photo's edge pixels where it reached past the photo."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = round(max(x2 - x1, y2 - y1) * 1.6)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - (y2 - y1) * 0.05
    return round(cx - side / 2), round(cy - side / 2), side


@pytest.fixture(scope="module")
def lfw_photos():
    corpus = read_corpus(need(LFW) / "images_deepfunneled")
    init_worker(resolve_pack("sface"), "cpu", FaceFilter(faces="central"))
    results = []
    for item in corpus.items[::EVERY]:
        image = cv2.imread(item.path)
        found = find_faces(item.key, "", image)
        if not found.reason:
            results.append((item.key, image, found))
    return results


def test_stored_lfw_portraits_hold_under_one_percent_border_black(lfw_photos):
    stored, before = {}, {}
    for key, image, found in lfw_photos:
        portrait = cv2.imdecode(np.frombuffer(found.portraits[0], np.uint8), cv2.IMREAD_COLOR)
        stored[key] = border_share(image, inside_square(image, found.boxes[0], margin=1.6, lift=0.05), portrait)
        old = face_square(image, found.boxes[0], PORTRAIT_SIZE, margin=1.6, lift=0.05)
        before[key] = border_share(image, old_square(found.boxes[0]), old)
    # where black joined to the photo's edge reaches the face's own surroundings, it is the photo's
    # own (a stage's backdrop, black hair), kept: few such photos, and every other portrait is clean
    hemmed = {key for key, image, found in lfw_photos if own_black(image, tightest(found.boxes[0]))}
    assert len(stored) > 120 and len(hemmed) <= len(stored) * 0.1
    assert sum(share > MOST_BORDER for share in before.values()) > len(before) / 5  # the wedges were there
    assert {key: round(share, 4) for key, share in stored.items() if share > MOST_BORDER and key not in hemmed} == {}


def own_black(photo: np.ndarray, square: tuple[int, int, int]) -> bool:
    """Whether black joined to the photo's edge reaches into `square` (x, y, side) around the face."""
    x, y, side = square
    border = corpus_border(photo)
    return bool(border[max(y, 0):y + side, max(x, 0):x + side].any())


def tightest(box: np.ndarray) -> tuple[int, int, int]:
    """The square of SMALLEST faces centred on the face: the least a portrait may show."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = round(max(x2 - x1, y2 - y1) * SMALLEST)
    return round((x1 + x2 - side) / 2), round((y1 + y2 - side) / 2), side


def test_portraits_lie_inside_the_photo_and_record_their_source_side(lfw_photos):
    for key, image, found in lfw_photos:
        x, y, side = inside_square(image, found.boxes[0], margin=1.6, lift=0.05)
        height, width = image.shape[:2]
        assert 0 <= x and 0 <= y and x + side <= width and y + side <= height, key  # never padded
        assert found.source_sides[0] == side
        face = max(found.boxes[0][2] - found.boxes[0][0], found.boxes[0][3] - found.boxes[0][1])
        assert min(face * SMALLEST, height, width) <= side + 1 <= round(face * 1.6) + 1, key  # shrunk, never bare


def test_a_photo_without_a_border_keeps_the_wanted_square_and_a_border_is_left_out():
    rng = np.random.default_rng(0)
    photo = rng.integers(60, 255, (400, 600, 3), dtype=np.uint8)
    box = np.array([250, 150, 350, 250], np.float32)
    assert border_fill(photo) is None
    assert inside_square(photo, box, margin=1.6) == (220, 120, 160)
    photo[:, :235] = 0  # a black band down the left, as a rotated corpus photo has
    x, y, side = inside_square(photo, box, margin=1.6)
    assert x >= 235 and side >= 100 and x + side <= 600
    portrait, source = portrait_and_side(photo, box)
    assert portrait.shape == (PORTRAIT_SIZE, PORTRAIT_SIZE, 3) and source == side
    assert not cv2.inRange(portrait, (0, 0, 0), (NEAR_BLACK,) * 3).any()
