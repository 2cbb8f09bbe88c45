"""What a gallery costs in memory, before and after opening it: bytes per face of an index type,
the RSS a gallery is expected to need, what this machine has free, and the measured cost of opening
an index file. The kiosk holds two galleries during a hot swap, so it asks before loading the second."""
from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

# The SQLite page cache, the thumbnails' file handles and Python objects of an open gallery.
GALLERY_OVERHEAD_BYTES = 64 * 2**20
# Index types read memory-mapped (IO_FLAG_MMAP_IFC): a flat array of codes, paged in by the kernel,
# so opening takes no time and the pages are reclaimable. Checked on faiss 1.15.1: a truncated file
# of these types raises; a truncated fast-scan file read with the flag crashes the process instead.
MMAP_FOURCCS = (b"IxFI", b"IxF2", b"IxSQ")
# What index structures keep per vector beside the codes faiss sizes: an IVF list's 64-bit id, and in
# an HNSW graph the level (int32) and offset (size_t) of each vector and ~4 bytes of upper-level links.
IVF_ID_BYTES = 8
HNSW_OTHER_BYTES = 16
# A kiosk PC's memory when the build is not told (index-builder build --kiosk-memory).
KIOSK_MEMORY_BYTES = 16 * 2**30
# What the kiosk's serving process holds beside its galleries' indexes, measured at 10^7 faces
# through a hot swap (benchmarks/results/scale_10m_cpu.json): the interpreter, models and worker
# (0.35 GB there; Qt's screens come on top), and per face the person keys the worker keeps
# (73 bytes) and each gallery's per-face arrays (hubness, quality: 22 bytes each).
SERVING_BYTES = 2**30
SERVING_BYTES_PER_FACE = 128


def bytes_per_vector(factory: str, dim: int) -> float:
    """Expected index bytes per vector for a faiss factory string, known before building: the code
    sizes faiss reports for the index made untrained, and what its structures keep beside the codes
    (faiss.serialize_index sizes agree within a few percent: tested). ValueError for a factory string
    faiss cannot make."""
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as error:
        raise ValueError(f"faiss cannot make {factory!r} at {dim}-d: {str(error).strip().splitlines()[-1]}") from None
    return float(_stored_bytes(index))


def _stored_bytes(index: faiss.Index) -> int:
    """Bytes `index` stores per vector. The caller keeps `index` alive: downcast wrappers do not own it."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexRefine):  # a shortlist's codes, then the codes that re-rank it
        return _stored_bytes(index.base_index) + _stored_bytes(index.refine_index)
    if isinstance(index, faiss.IndexPreTransform):
        return _stored_bytes(index.index)
    if isinstance(index, faiss.IndexHNSW):  # 4-byte links to the neighbours on level 0, then the rest
        graph: Any = index.hnsw  # faiss's type stubs do not know nb_neighbors
        return _stored_bytes(index.storage) + 4 * int(graph.nb_neighbors(0)) + HNSW_OTHER_BYTES
    if isinstance(index, faiss.IndexIVF):  # an inverted list keeps each vector's id beside its code
        return int(index.code_size) + IVF_ID_BYTES
    return int(index.sa_code_size())


def expected_rss_bytes(bytes_per_face: float, count: int) -> int:
    """Memory an open gallery is expected to take: its index (bytes per face x faces) and metadata."""
    return int(bytes_per_face * count) + GALLERY_OVERHEAD_BYTES


def kiosk_index_budget(kiosk_memory_bytes: float, faces: int) -> float:
    """Index bytes one gallery of `faces` may take on a kiosk PC of `kiosk_memory_bytes`: the serving
    process keeps to half of the PC's memory (the rest is the system's, the display's and the page
    cache's), less what it holds beside its indexes, and a hot swap holds two galleries at once."""
    beside = SERVING_BYTES + SERVING_BYTES_PER_FACE * faces
    return max(0.0, (kiosk_memory_bytes / 2 - beside) / 2)


def available_bytes() -> int:
    """MemAvailable: what can be allocated without swapping, page cache that can be dropped included."""
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (ru_maxrss, KiB on Linux), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_bytes() -> int:
    return status_bytes("VmRSS")["VmRSS"]


def status_bytes(*names: str) -> dict[str, int]:
    """Fields of /proc/self/status in bytes (VmHWM: the peak RSS; RssAnon, RssFile: the RSS in
    process memory and in mapped files, which the kernel can drop and read again)."""
    found = dict.fromkeys(names, 0)
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in found:
                found[name] = int(value.split()[0]) * 1024
    return found


def read_flags(path: Path) -> int:
    """faiss.read_index flags for an index file: memory-mapped where its type allows it safely."""
    try:
        with open(path, "rb") as file:
            return faiss.IO_FLAG_MMAP_IFC if file.read(4) in MMAP_FOURCCS else 0
    except OSError:
        return 0  # faiss.read_index then says why the file cannot be read


def swap_refusal(gallery: Path) -> str | None:
    """Why a new gallery must not be loaded beside the current one, or None when it fits: the kiosk
    holds both until the swap, and the OOM-killer must never take it. An unreadable manifest is left
    to the gallery's own checks."""
    try:
        manifest = json.loads((gallery / "manifest.json").read_text(encoding="utf-8"))
        index = manifest["index"]
        per_face = index.get("bytes_per_face") or bytes_per_vector(index["factory"], manifest["dim"])
        needed = expected_rss_bytes(per_face, manifest["count"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    free = available_bytes()
    if needed <= free:
        return None
    return (f"the new gallery {gallery.name} needs about {needed / 2**20:,.0f} MiB and only {free / 2**20:,.0f} MiB "
            "are free beside the current one: it was not loaded; restart the kiosk to switch to it")


def open_cost(index_path: Path) -> dict[str, Any]:
    """Measured cost of opening an index file as Gallery does, and of its first and second query."""
    before = rss_bytes()
    started = time.perf_counter()
    index = faiss.read_index(str(index_path), read_flags(index_path))
    opened = time.perf_counter()
    query = np.zeros((1, index.d), np.float32)
    index.search(query, 5)
    first = time.perf_counter()
    index.search(query, 5)
    second = time.perf_counter()
    return {"open_seconds": opened - started, "mmap": read_flags(index_path) != 0,
            "rss_mb_growth": (rss_bytes() - before) / 2**20,
            "first_query_ms": (first - opened) * 1e3, "second_query_ms": (second - first) * 1e3,
            "file_mb": index_path.stat().st_size / 2**20}
