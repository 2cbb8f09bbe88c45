"""Choose the gallery's FAISS index by measuring, not assuming.

A kiosk's queries are strangers: their nearest gallery faces are all far away, which is where
approximate indexes lose the true lookalikes. So exact search is chosen whenever its measured
single-query latency fits the budget; otherwise an approximate index is kept only if, on held-out
strangers, it returns exact search's top-5 (recall@5 >= 0.98) faster than exact search does.
Vocabulary as in faiss contrib: xb gallery vectors, xq queries, D scores, I ids, k.
"""
from __future__ import annotations

import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

from face_engine.gallery import apply_search_params, one_thread
from face_engine.memory import bytes_per_vector

RECALL_AT = 5
MIN_RECALL = 0.98
TRAIN_SAMPLE = 500_000  # vectors an index is trained on (k-means needs a sample, not the gallery)
ADD_SHARD = 100_000     # vectors added at a time, so GPU memory holds one shard, not the corpus


@dataclass
class IndexChoice:
    factory: str
    search_params: dict[str, Any]
    reason: str
    measurements: list[dict[str, Any]] = field(default_factory=list)
    index: faiss.Index | None = field(default=None, repr=False)  # the measured index, built on xb
    settings: dict[str, Any] = field(default_factory=dict)  # search_params and those stored in the index file

    @property
    def measured(self) -> dict[str, Any]:
        """The measurement of the chosen index at its chosen settings (a sweep can repeat the same
        search_params with another setting stored in the index file)."""
        return next(m for m in self.measurements if m["factory"] == self.factory
                    and m.get("settings", m["params"]) == (self.settings or self.search_params))


class OverMemoryBudget(RuntimeError):
    """Not even exact search fits the memory budget; the message says how much it needs."""


def percentiles(values: Sequence[float] | np.ndarray, ranks: Sequence[float]) -> dict[str, float]:
    """{"p50": ..., "p95": ...} for ranks (50, 95): the names every result file uses."""
    return {f"p{rank:g}": float(np.percentile(values, rank)) for rank in ranks}


def recall_at(I: np.ndarray, I_exact: np.ndarray, k: int) -> float:
    """Share of exact search's top-k found in the approximate top-k, over all queries."""
    hits = sum(len(set(a[:k]) & set(b[:k])) for a, b in zip(I, I_exact, strict=True))
    return hits / (len(I) * k)


def single_query_latency_ms(index: faiss.Index, xq: np.ndarray, k: int) -> dict[str, float]:
    """Percentiles of one query at a time on one thread, as the kiosk searches (not batch throughput)."""
    times = []
    with one_thread():
        for q in xq:
            start = time.perf_counter()
            index.search(q[None], k)
            times.append((time.perf_counter() - start) * 1e3)
    return {**percentiles(times, (50, 95, 99)), "mean": float(np.mean(times))}


class Vectors:
    """A gallery's vectors as blocks in gallery order, read afresh on every pass, so a pass over 10^7
    faces holds one block, not the gallery. `blocks` makes a new iterator each call."""

    def __init__(self, count: int, dim: int, blocks: Callable[[], Iterator[np.ndarray]]) -> None:
        self.count, self.dim, self.blocks = count, dim, blocks

    @classmethod
    def of(cls, xb: np.ndarray | Vectors) -> Vectors:
        if isinstance(xb, Vectors):
            return xb
        starts = range(0, len(xb), ADD_SHARD)
        return cls(len(xb), xb.shape[1], lambda: (xb[start:start + ADD_SHARD] for start in starts))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, positions: np.ndarray) -> np.ndarray:
        """The rows at sorted positions, gathered block by block."""
        positions = np.asarray(positions, dtype=np.int64)
        out = np.empty((len(positions), self.dim), np.float32)
        start = 0
        for block in self.blocks():
            first, last = np.searchsorted(positions, [start, start + len(block)])
            out[first:last] = block[positions[first:last] - start]
            start += len(block)
        return out

    def without(self, positions: np.ndarray) -> Vectors:
        """These vectors less the rows at sorted positions (held-out queries)."""
        positions = np.asarray(positions, dtype=np.int64)

        def blocks() -> Iterator[np.ndarray]:
            start = 0
            for block in self.blocks():
                first, last = np.searchsorted(positions, [start, start + len(block)])
                yield np.delete(block, positions[first:last] - start, axis=0)
                start += len(block)
        return Vectors(self.count - len(positions), self.dim, blocks)


def train_and_add(factory: str, xb: np.ndarray | Vectors, use_gpu: bool) -> faiss.Index:
    """Train on a sample, then add the vectors block by block (at most ADD_SHARD at a time), on the
    GPU(s) when faiss sees one; always returns the CPU form (what is written to disk)."""
    vectors = Vectors.of(xb)
    index = faiss.index_factory(vectors.dim, factory, faiss.METRIC_INNER_PRODUCT)
    on_gpu = use_gpu and gpu_capable(factory)
    target = faiss.index_cpu_to_all_gpus(index) if on_gpu else index
    if not target.is_trained:
        positions = np.arange(len(vectors))
        if len(vectors) > TRAIN_SAMPLE:
            positions = np.sort(np.random.default_rng(0).choice(len(vectors), TRAIN_SAMPLE, replace=False))
        target.train(vectors[positions])
    for block in vectors.blocks():
        for start in range(0, len(block), ADD_SHARD):
            target.add(np.ascontiguousarray(block[start:start + ADD_SHARD], dtype=np.float32))
    return faiss.index_gpu_to_cpu(target) if on_gpu else index


def gpu_capable(factory: str) -> bool:
    """faiss has no GPU form of HNSW, fast-scan, refinement or a flat scalar quantizer."""
    return not any(part in factory for part in ("HNSW", "fs", "Refine", "RFlat", "SQ"))


def set_search(index: faiss.Index, params: dict[str, Any]) -> None:
    """Apply a candidate's settings: `inner_k_factor` (the middle stage of a three-stage refine, which
    faiss's ParameterSpace cannot reach) is set on the object and written with it; the rest are
    search parameters that the manifest records and a reopened gallery applies again."""
    settings = dict(params)
    inner = settings.pop("inner_k_factor", None)
    if inner is not None:
        refine: Any = index  # an IndexRefine, whose fields faiss's type stubs do not know
        middle: Any = faiss.downcast_index(refine.base_index)
        middle.k_factor = float(inner)
    apply_search_params(index, settings)


def search_params(params: dict[str, Any]) -> dict[str, Any]:
    """What the manifest records as search parameters: all but the settings stored in the index file."""
    return {name: value for name, value in params.items() if name != "inner_k_factor"}


def exact_truth(xb: Vectors, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of xq over xb, merged block by block (faiss contrib's knn_ground_truth): no second
    copy of the gallery."""
    heap = faiss.ResultHeap(len(xq), k, keep_max=True)
    start = 0
    for block in xb.blocks():
        D, I = faiss.knn(xq, np.ascontiguousarray(block, dtype=np.float32), min(k, len(block)),
                         metric=faiss.METRIC_INNER_PRODUCT)
        heap.add_result(D, np.where(I >= 0, I + start, -1))
        start += len(block)
    heap.finalize()
    return heap.D, heap.I


def choose_index(xb: np.ndarray | Vectors, xq_strangers: np.ndarray, budget_ms: float, use_gpu: bool,
                 k: int = 10, memory_budget_bytes: float = math.inf, gallery_size: int | None = None,
                 forced: tuple[str, dict[str, Any]] | None = None, exact_queries: int | None = None) -> IndexChoice:
    """Pick the index for gallery xb, measured with stranger queries (not in xb).

    Candidates whose expected size for gallery_size faces (default: len(xb)) exceeds the memory
    budget are not built, and where exact search does not fit, the fastest that fits and reaches recall
    is kept even if slower (OverMemoryBudget when none does);
    `forced` (factory, params) measures only that index and keeps it.
    exact_queries: time exact search on only that many queries (a 10^7 scan takes ~0.2 s each)."""
    vectors = Vectors.of(xb)
    size = gallery_size or len(vectors)
    exact_fits = bytes_per_vector("Flat", vectors.dim) * size <= memory_budget_bytes
    started = time.perf_counter()
    exact = train_and_add("Flat", vectors, use_gpu=False)
    exact_seconds = time.perf_counter() - started
    D_exact, I_exact = exact.search(xq_strangers, k)
    exact_latency = single_query_latency_ms(exact, xq_strangers[:exact_queries], k)
    measurements = [{"factory": "Flat", "params": {}, "recall@5": 1.0, "latency_ms": exact_latency,
                     "build_seconds": exact_seconds, "bytes_per_vector": bytes_per_vector("Flat", vectors.dim)}]
    if forced is None and exact_fits and exact_latency["p99"] <= budget_ms:
        return IndexChoice("Flat", {}, f"exact search: p99 {exact_latency['p99']:.2f} ms per query is "
                           f"within the {budget_ms:g} ms budget", measurements, exact)
    del exact  # one float copy of the gallery at a time
    best = None
    tried = [(forced[0], [forced[1]])] if forced else candidates(size, vectors.dim, use_gpu)
    for factory, sweep in tried:
        per_vector = bytes_per_vector(factory, vectors.dim)
        if forced is None and per_vector * size > memory_budget_bytes:
            measurements.append({"factory": factory, "params": {}, "bytes_per_vector": per_vector,
                                 "ruled_out": f"needs {per_vector * size / 2**20:,.0f} MiB, over the memory budget"})
            continue
        started = time.perf_counter()
        index = train_and_add(factory, vectors, use_gpu)
        measured = {"factory": factory, "build_seconds": time.perf_counter() - started, "bytes_per_vector": per_vector}
        reached = _sweep(index, sweep, xq_strangers, D_exact, I_exact, k, measured, measurements, bool(forced))
        if reached:
            params, recall, p99 = reached
            # where exact search does not fit, any candidate that reaches recall beats it
            beats_exact = p99 < exact_latency["p99"] or not exact_fits
            if forced or beats_exact and (best is None or p99 < best[2]):
                best = (factory, params, p99, recall, index)
        del index  # unless it is the best so far: two candidates in memory at most (12 GB at 10^7)
    if best is None:
        if not exact_fits:
            raise OverMemoryBudget(f"no index reached recall@5 {MIN_RECALL} on strangers within the memory budget of "
                                   f"{memory_budget_bytes / 2**20:,.1f} MiB, and exact search needs "
                                   f"{bytes_per_vector('Flat', vectors.dim) * size / 2**20:,.1f} MiB for "
                                   f"{size:,} faces")
        return IndexChoice("Flat", {}, f"exact search: over the {budget_ms:g} ms budget (p99 "
                           f"{exact_latency['p99']:.2f} ms), but no approximate index that fits the memory budget "
                           f"reached recall@5 {MIN_RECALL} on strangers faster", measurements,
                           train_and_add("Flat", vectors, use_gpu=False))
    factory, params, p99, recall, index = best
    set_search(index, params)
    how = f"against exact search's {exact_latency['p99']:.2f} ms"
    if not exact_fits:
        how += ", which does not fit the memory budget"
    if forced:
        how = "forced with --index"
    return IndexChoice(factory, search_params(params), f"{factory} {params}: recall@5 {recall:.3f} on strangers at "
                       f"p99 {p99:.2f} ms, {how}", measurements, index, settings=params)


def _sweep(index: faiss.Index, sweep: list[dict[str, Any]], xq: np.ndarray, D_exact: np.ndarray, I_exact: np.ndarray,
           k: int, measured: dict[str, Any], measurements: list[dict[str, Any]],
           keep_any: bool) -> tuple[dict[str, Any], float, float] | None:
    """Measure `index` at each setting of `sweep` in turn, adding to `measurements`; the first setting
    that reaches recall (any first setting with keep_any), with its recall and p99, else None. Larger
    settings only cost more time, so the sweep stops there."""
    for params in sweep:
        set_search(index, params)
        D, I = index.search(xq, k)
        latency = single_query_latency_ms(index, xq, k)
        recall = recall_at(I, I_exact, RECALL_AT)
        measurements.append({**measured, "params": search_params(params), "settings": params, "recall@5": recall,
                             "latency_ms": latency, "best_score_loss_mean": float(np.mean(D_exact[:, 0] - D[:, 0]))})
        if keep_any or recall >= MIN_RECALL:
            return params, recall, latency["p99"]
    return None


def ivf_nlist(n: int) -> int:
    """The number of IVF lists for n vectors: faiss's guideline of about 4 * sqrt(n), at least 16."""
    return max(16, int(4 * math.sqrt(n)))


def shortlist_factors(n: int, at_million: int) -> list[int]:
    """Re-ranking shortlists (k_factor) to sweep for n vectors, doubling. Measured on synthetic
    strangers: the shortlist that reaches recall@5 0.98 doubles per 4x gallery growth (64 for
    PQ64x4fs at 10^6), so the sweep starts at half the predicted one and stops at the first that works."""
    predicted = at_million * math.sqrt(n / 1e6)
    start = max(8, 2 ** int(math.log2(max(predicted / 2, 1))))
    return [start * 2 ** step for step in range(8) if start * 2 ** step <= 4096]


def candidates(n: int, dim: int = 128, use_gpu: bool = False) -> list[tuple[str, list[dict[str, Any]]]]:
    """Approximate indexes worth trying at gallery size n for stranger queries, each with its search
    settings, cheapest first.

    Scans of compact codes with an exact re-rank keep the near-ties of strangers' lookalikes; HNSW
    and IVF lose them (HNSW32 0.737, IVF at most 0.97 recall@5 at 10^6), so they are not tried: they
    serve in-gallery queries, which the kiosk never makes. With a GPU, fast-scan has no GPU form, so
    the choice is among GPU-capable indexes: fp16 vectors (SQfp16 on disk, a GpuIndexFlat with
    useFloat16 on the GPU) and IVF-PQ with an exact re-rank."""
    m = dim // 2
    if use_gpu:
        nlist = ivf_nlist(n)
        return [
            ("SQfp16", [{}]),
            (f"IVF{nlist},PQ{m},RFlat", [{"nprobe": p, "k_factor_rf": kf} for p in (32, 64, 128, 256) if p <= nlist
                                          for kf in (8, 32)]),
        ]
    return [
        (f"PQ{m}x4fs,RFlat", [{"k_factor_rf": kf} for kf in shortlist_factors(n, at_million=64)]),
        (f"PQ{m}x4fs,Refine(SQ8),RFlat", [{"k_factor_rf": 4, "inner_k_factor": kf}
                                          for kf in shortlist_factors(n, at_million=32)]),
        ("SQfp16", [{}]),
    ]


def default_memory_budget() -> int:
    """Half of this machine's RAM: room for the kiosk or builder beside the index."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2


def held_out_strangers(identities: list[str], rng: np.random.Generator, share: float = 0.02,
                       most: int = 500) -> np.ndarray:
    """Positions of vectors whose whole identity is held out: faces of people the rest never saw.
    Photos with no identity count as people of their own."""
    by_person: dict[str, list[int]] = defaultdict(list)
    for position, name in enumerate(identities):
        by_person[name or f"#{position}"].append(position)
    people = sorted(by_person)
    rng.shuffle(people)
    wanted = max(1, min(most, int(len(identities) * share)))
    picked: list[int] = []
    for person in people:
        if len(picked) >= wanted:
            break
        picked += by_person[person]
    return np.array(sorted(picked), dtype=np.int64)
