"""One query through the kiosk's path: decode, detect, embed the largest face, search; timed per stage."""
from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from face_engine.engine import FaceEngine
from face_engine.gallery import Gallery
from face_engine.imaging import read_image


def search_photo(engine: FaceEngine, gallery: Gallery, source: str | os.PathLike | bytes | np.ndarray,
                 k: int) -> dict[str, Any]:
    """The `search --json` object for one photo. Raises ImageError for an unusable file."""
    clock = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = round((now - clock) * 1e3, 2)
        clock = now

    image = read_image(source)
    lap("decode")
    detections = engine.detect(image)
    lap("detect")
    largest = type(detections)(detections.boxes[:1], detections.scores[:1], detections.landmarks[:1])
    xq = engine.embed(image, largest)
    lap("embed")
    matches = []
    if len(xq):
        D, I = gallery.search(xq, k)
        for rank, (score, face) in enumerate(zip(D[0], gallery.faces(I[0].tolist())), 1):
            matches.append({"rank": rank, "score": round(float(score), 4), "identity": face["display_name"],
                            "caption": face["caption"], "image": face["image"], "thumbnail": face["thumbnail"]})
    lap("search")
    return {"image": str(source) if not isinstance(source, (bytes, np.ndarray)) else "<memory>",
            "faces": len(detections.boxes), "matches": matches, "timings_ms": timings}
