"""What every benchmark result holds: the machine, versions, parameters and raw timings, in one
JSON file per run (ann-benchmarks style: store raw results, compute and plot afterwards)."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from face_engine.gallery import Gallery
from face_engine.memory import rss_bytes
from face_engine.providers import runtime
from models.folders import write_atomically


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(memory / 2**30, 1),
            "python": platform.python_version(), "numpy": np.__version__, "faiss": faiss.__version__,
            "faiss_gpus": faiss.get_num_gpus(), "onnxruntime": runtime()[0],
            "onnxruntime_providers": runtime()[1]}


def write_result(out: Path, mode: str, parameters: dict[str, Any], results: dict[str, Any]) -> Path:
    record = {"benchmark": mode, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
              "parameters": parameters, **results}
    write_atomically(out, json.dumps(record, indent=2, ensure_ascii=False, default=_plain) + "\n")
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON: {type(value)}")


def gallery_arrays(path: str | Path) -> tuple[Gallery, np.ndarray, list[str]]:
    """A gallery, its vectors (xb, read back from the index: exact for Flat, HNSW and IVF-Flat
    indexes, approximate for compressed ones) and each vector's identity."""
    gallery = Gallery(path, use_gpu=False)
    try:
        faiss.extract_index_ivf(gallery.index).make_direct_map()
    except RuntimeError:
        pass  # not an IVF index: reconstruct works as it is
    xb = gallery.index.reconstruct_n(0, gallery.count)
    identities = [row[0] for row in gallery.db.execute("SELECT identity FROM faces ORDER BY id")]
    return gallery, np.ascontiguousarray(xb, dtype=np.float32), identities


def rss_mb() -> float:
    return rss_bytes() / 2**20
