"""One query through the kiosk's path: decode, detect, embed the largest face, search; timed per stage."""
from __future__ import annotations

import os
import time
from typing import Any, NamedTuple

import numpy as np

from face_engine.detectors import Detections
from face_engine.engine import FaceEngine
from face_engine.gallery import FaceRecord, Gallery
from face_engine.imaging import read_image

CANDIDATES_PER_RESULT = 5  # searched per wanted result when each person may appear only once


class Lookalike(NamedTuple):
    score: float  # inner product (cosine) with the visitor's face
    face: FaceRecord


class Stopwatch:
    """Milliseconds per named stage, in order."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.ms[stage] = round((now - self._clock) * 1e3, 2)
        self._clock = now


def open_for_query(gallery_path: str | os.PathLike[str], pack: str | None, device: str) -> tuple[Gallery, FaceEngine]:
    """A gallery and an engine that can query it: the pack that built the gallery unless `pack`
    names another, which must have the same recognizer (GalleryError otherwise)."""
    from models.packs import resolve_pack

    gallery = Gallery(gallery_path)
    engine = FaceEngine(resolve_pack(pack or gallery.manifest.pack_source), device)
    gallery.check_compatible(engine.pack.recognizer_id)
    return gallery, engine


def lookalikes(engine: FaceEngine, gallery: Gallery, image: np.ndarray, k: int, distinct: bool,
               watch: Stopwatch) -> tuple[Detections, list[Lookalike]]:
    """The detections of `image` and the k gallery faces most like its largest face, best first.
    With `distinct`, each named person appears once."""
    detections = engine.detect(image)
    watch.lap("detect")
    xq = engine.embed(image, detections.take(slice(0, 1)))
    watch.lap("embed")
    matches: list[Lookalike] = []
    if len(xq):
        D, I = gallery.search(xq, k * CANDIDATES_PER_RESULT if distinct else k)
        seen = set()
        # a short result ends in ids -1, which faces() leaves out: those scores are dropped
        for score, face in zip(D[0], gallery.faces(I[0].tolist()), strict=False):
            who = face.identity or face.id  # a face without a name is a person of its own
            if distinct and who in seen:
                continue
            seen.add(who)
            matches.append(Lookalike(float(score), face))
            if len(matches) == k:
                break
    watch.lap("search")
    return detections, matches


def search_photo(engine: FaceEngine, gallery: Gallery, source: str | os.PathLike[str] | bytes | np.ndarray,
                 k: int, distinct: bool = False) -> dict[str, Any]:
    """The `search --json` object for one photo. Raises ImageError for an unusable file."""
    watch = Stopwatch()
    image = read_image(source)
    watch.lap("decode")
    detections, matches = lookalikes(engine, gallery, image, k, distinct, watch)
    return {
        "image": str(source) if not isinstance(source, (bytes, np.ndarray)) else "<memory>",
        "faces": len(detections.boxes),
        "matches": [{"rank": rank, "score": round(score, 4), "name": face.display_name, "identity": face.identity,
                     "caption": face.caption, "image": face.image, "thumbnail": face.thumbnail,
                     "portrait": face.portrait}
                    for rank, (score, face) in enumerate(matches, 1)],
        "timings_ms": watch.ms,
    }
