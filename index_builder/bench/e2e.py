"""`bench e2e`: the kiosk's real query path on real photos (decode, detect, embed, search), per
stage and in total."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from face_engine.imaging import ImageError
from face_engine.query import open_for_query, search_photo
from index_builder.indexes import percentiles

STAGES = ("decode", "detect", "embed", "search")


def run_e2e(gallery_path: str, photos: Path, repeats: int, device: str, k: int = 5) -> dict[str, Any]:
    gallery, engine = open_for_query(gallery_path, None, device)
    files = sorted(p for p in photos.iterdir() if p.is_file())
    readable = []
    for path in files:
        try:
            search_photo(engine, gallery, path, k)  # warm-up, and drops unreadable files
            readable.append(path)
        except ImageError:
            continue
    timings: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "total")}
    for _ in range(repeats):
        for path in readable:
            measured = search_photo(engine, gallery, path, k)["timings_ms"]
            for stage in STAGES:
                timings[stage].append(measured[stage])
            timings["total"].append(sum(measured[stage] for stage in STAGES))
    summary = {stage: {**percentiles(values, (50, 95)), "mean": float(np.mean(values))}
               for stage, values in timings.items()}
    return {"gallery": str(gallery.root), "gallery_faces": gallery.count, "pack": engine.pack.id,
            "providers": engine.providers, "photos": str(photos), "photo_count": len(readable),
            "queries": len(timings["total"]), "ms": summary, "raw_ms": timings}
