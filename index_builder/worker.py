"""The per-photo stage, run in worker processes: read, decode, detect, filter, align, thumbnail and
portrait.

Embedding is not done here: the parent embeds the crops of many photos in batches, which is where
a recognizer (and a GPU) is efficient. A bad photo becomes a counted reason, never an exception.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

from face_engine.engine import FaceDetector, crops_of, face_square
from face_engine.gallery import portrait_and_side
from face_engine.imaging import ImageError, read_file, read_image
from face_engine.quality import COLUMNS as QUALITY_COLUMNS
from face_engine.quality import face_quality
from index_builder.corpus import CorpusItem
from models.packs import ModelPack

THUMBNAIL_SIZE = 160
PORTRAIT_QUALITY = 90


@dataclass(frozen=True)
class FaceFilter:
    faces: str = "largest"  # "largest", "central" or "all"
    min_face: float = 0.0  # shorter side of the face box, in pixels
    min_score: float = 0.0


@dataclass
class PhotoResult:
    """One photo after the per-photo stage. Boxes stay (n, 4) float32 arrays, as the detector made
    them, until the build state stores them as a Box of floats."""

    key: str
    sha1: str = ""
    reason: str = ""  # why the photo adds no face; "" when it does
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    crops: np.ndarray = field(default_factory=lambda: np.zeros((0, 112, 112, 3), np.uint8))
    thumbnails: list[bytes] = field(default_factory=list)
    portraits: list[bytes] = field(default_factory=list)
    qualities: np.ndarray = field(default_factory=lambda: np.zeros((0, len(QUALITY_COLUMNS)), np.float32))
    source_sides: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # photo pixels across each portrait
    vectors: np.ndarray | None = None  # embeddings, when the stage that made this result embedded them


_detector: FaceDetector | None = None
_filter = FaceFilter()


def init_worker(pack: ModelPack, device: str, face_filter: FaceFilter) -> None:
    """Pool initializer: one detector per process, single-threaded (the processes are the parallelism)."""
    global _detector, _filter
    _exit_with_parent()
    cv2.setNumThreads(1)
    _detector = FaceDetector(pack, device, threads=1)
    _filter = face_filter


def _exit_with_parent() -> None:
    """End this worker when the build that started it ends, however it ends: a build killed with
    SIGKILL runs no clean-up, and its workers (about 200 MB each) would read on for nobody."""
    parent = multiprocessing.parent_process()
    if parent is None:  # not started by multiprocessing
        return

    def watch() -> None:
        parent.join()  # returns when the parent's sentinel closes, i.e. when it has died
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def process_photo(item: CorpusItem) -> PhotoResult:
    """The whole per-photo stage in one call (the local engine's worker processes)."""
    read = read_photo(item.key, item.path)
    return read if isinstance(read, PhotoResult) else find_faces(item.key, *read)


def process_photo_into(item: CorpusItem, path: str) -> str:
    """process_photo, its result left in the file `path` and only the path returned through the
    pool's pipe. A result (crops, thumbnail, portrait: about 100 KB) crosses a pipe in several writes,
    and a worker killed between two of them (the OOM-killer) leaves CPython's ProcessPoolExecutor
    reading the rest forever instead of reporting the pool broken; a path is one write of under
    PIPE_BUF bytes, which a pipe takes whole or not at all."""
    with open(path, "wb") as file:
        pickle.dump(process_photo(item), file, pickle.HIGHEST_PROTOCOL)
    return path


def read_photo(key: str, path: str) -> tuple[str, np.ndarray] | PhotoResult:
    """(sha1 of the file, decoded image), or a PhotoResult that says why the photo is unusable."""
    try:
        data = read_file(path)
    except ImageError as error:
        return PhotoResult(key, reason=error.reason)
    sha1 = hashlib.sha1(data).hexdigest()
    try:
        return sha1, read_image(data)
    except ImageError as error:
        return PhotoResult(key, sha1, reason=error.reason)


def find_faces(key: str, sha1: str, image: np.ndarray) -> PhotoResult:
    """Detect, filter, align, thumbnail, portray and rate the faces of a decoded photo (init_worker first)."""
    assert _detector is not None, "init_worker was not called in this process"
    found = _detector.detect(image)
    keep = _select(found.boxes, found.scores, image.shape[:2])
    if isinstance(keep, str):
        return PhotoResult(key, sha1, reason=keep)
    kept = found.take(keep)
    portraits, sides = zip(*(portrait_and_side(image, box) for box in kept.boxes), strict=True)
    qualities = [face_quality(crop, box, landmarks) for crop, box, landmarks
                 in zip(portraits, kept.boxes, kept.landmarks, strict=True)]
    return PhotoResult(key, sha1, "", kept.boxes, kept.scores, crops_of(image, kept),
                       [thumbnail(image, box) for box in kept.boxes], [portrait_jpeg(crop) for crop in portraits],
                       np.array(qualities, np.float32).reshape(-1, len(QUALITY_COLUMNS)), np.array(sides, np.int64))


def _select(boxes: np.ndarray, scores: np.ndarray, image_size: tuple[int, int]) -> np.ndarray | str:
    """Indices of the faces to keep (largest first), or the reason none is kept."""
    if len(boxes) == 0:
        return "no_face"
    candidates = np.arange(len(boxes))
    if _filter.faces == "largest":
        candidates = candidates[:1]
    elif _filter.faces == "central":
        candidates = candidates[[int(np.argmax(_centrality(boxes, image_size)))]]
    boxes, scores = boxes[candidates], scores[candidates]
    sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    big = sides >= _filter.min_face
    if not big.any():
        return "face_too_small"
    confident = big & (scores >= _filter.min_score)
    if not confident.any():
        return "low_score"
    kept: np.ndarray = candidates[confident]
    return kept


def _centrality(boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """insightface's main-face rule: the box area, less twice the squared distance of its centre
    from the photo's centre: in subject-centred photos (news, LFW) the subject beats a larger
    face at the edge."""
    height, width = image_size
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    dx = (boxes[:, 0] + boxes[:, 2]) / 2 - width / 2
    dy = (boxes[:, 1] + boxes[:, 3]) / 2 - height / 2
    centrality: np.ndarray = areas - 2.0 * (dx * dx + dy * dy)
    return centrality


def thumbnail(image: np.ndarray, box: np.ndarray) -> bytes:
    """A square JPEG of the face with some hair and chin around it, for the results screen."""
    crop = face_square(image, box, THUMBNAIL_SIZE, margin=1.4)
    return cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 88])[1].tobytes()


def portrait_jpeg(crop: np.ndarray) -> bytes:
    """The JPEG of a portrait crop, which the results screen shows large: the gallery carries it, so
    the kiosk never reads the corpus, which may have changed since the build."""
    return cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, PORTRAIT_QUALITY])[1].tobytes()
