"""Choose the gallery's FAISS index by measuring, not assuming.

A kiosk's queries are strangers: their nearest gallery faces are all far away, which is where
approximate indexes lose the true lookalikes. So exact search is chosen whenever its measured
single-query latency fits the budget; otherwise an approximate index is kept only if, on held-out
strangers, it returns exact search's top-5 (recall@5 >= 0.98) faster than exact search does.
Vocabulary as in faiss contrib: xb gallery vectors, xq queries, D scores, I ids, k.

Every index measurement, the builder's and the benchmarks', goes through one seam: a `Candidate`
(a factory and the search settings to sweep on it), its `Measurement` at each setting against exact
search's `Truth` (recall@k, single-query latency, bytes per face from faiss's code sizes), and the
`pareto_frontier` of those measurements.
"""
from __future__ import annotations

import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import faiss
import numpy as np

from face_engine.gallery import apply_search_params, one_thread
from face_engine.memory import KIOSK_MEMORY_BYTES, bytes_per_vector, kiosk_index_budget
from face_engine.shards import sharded

RECALL_AT = 5
MIN_RECALL = 0.98
TRAIN_SAMPLE = 500_000  # vectors an index is trained on (k-means needs a sample, not the gallery)
ADD_SHARD = 100_000     # vectors added at a time, so GPU memory holds one shard, not the corpus
Point = TypeVar("Point")


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
    """Percentiles of one query at a time, as the kiosk searches (not batch throughput): the calling
    thread's OpenMP at one, and a large index split across this machine's cores as Gallery splits it
    (face_engine.shards)."""
    times = query_times_ms(sharded(index), xq, k)
    return {**percentiles(times, (50, 95, 99)), "mean": float(np.mean(times))}


def query_times_ms(index: faiss.Index, xq: np.ndarray, k: int) -> list[float]:
    """Milliseconds of each query of xq searched alone on `index` as given (whole or already split),
    the calling thread's OpenMP at one."""
    times = []
    with one_thread():
        for q in xq:
            start = time.perf_counter()
            index.search(q[None], k)
            times.append((time.perf_counter() - start) * 1e3)
    return times


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


class Candidate(NamedTuple):
    """An index to measure: a faiss factory string and the search settings to try on it, cheapest
    first. It is built once and swept without rebuilding (ann-benchmarks' runner)."""

    factory: str
    sweep: list[dict[str, Any]]


@dataclass(frozen=True)
class Truth:
    """Exact search's top-k for the queries xq: what every candidate is measured against."""

    xq: np.ndarray
    D: np.ndarray
    I: np.ndarray

    @classmethod
    def of(cls, xb: np.ndarray | Vectors, xq: np.ndarray, k: int) -> Truth:
        return cls(xq, *exact_truth(Vectors.of(xb), xq, k))

    @property
    def k(self) -> int:
        return int(self.I.shape[1])


@dataclass
class Measurement:
    """One candidate at one setting, measured on the queries of a Truth."""

    factory: str
    settings: dict[str, Any]
    build_seconds: float
    bytes_per_face: float  # from faiss's code sizes (face_engine.memory.bytes_per_vector)
    recall: dict[int, float]  # recall@k against exact search, for each k measured
    latency_ms: dict[str, float]  # single queries on one thread: p50, p95, p99, mean
    best_score_loss: np.ndarray  # per query: exact search's best score less this index's
    batch_queries_per_second: float


def build(factory: str, xb: np.ndarray | Vectors, use_gpu: bool) -> tuple[faiss.Index, float]:
    """train_and_add, timed: the index and the seconds it took."""
    started = time.perf_counter()
    index = train_and_add(factory, xb, use_gpu)
    return index, time.perf_counter() - started


def serialized_bytes(index: faiss.Index) -> int:
    """The size of the index file `index` makes (what bytes_per_vector expects, measured)."""
    return int(faiss.serialize_index(index).size)


def measure(index: faiss.Index, factory: str, settings: dict[str, Any], truth: Truth, build_seconds: float,
            recall_ks: Sequence[int] = (RECALL_AT,), latency_queries: int | None = None,
            latency_k: int | None = None) -> Measurement:
    """`index` (built from `factory`) at `settings`: a batch search of all the truth's queries for
    recall and throughput, then single queries (the first latency_queries of them, at latency_k:
    by default all, at the truth's k) for latency."""
    set_search(index, settings)
    started = time.perf_counter()
    D, I = index.search(truth.xq, truth.k)
    batch_seconds = time.perf_counter() - started
    return Measurement(
        factory, settings, build_seconds, bytes_per_vector(factory, index.d),
        {k: recall_at(I, truth.I, k) for k in recall_ks if k <= truth.k},
        single_query_latency_ms(index, truth.xq[:latency_queries], latency_k or truth.k),
        truth.D[:, 0] - D[:, 0], len(truth.xq) / batch_seconds)


def measure_sweep(candidate: Candidate, xb: np.ndarray | Vectors, truth: Truth, use_gpu: bool,
                  until: Callable[[Measurement], bool] = lambda measured: False,
                  latency_queries: int | None = None,
                  on_measured: Callable[[Measurement], None] = lambda measured: None
                  ) -> tuple[faiss.Index, list[Measurement]]:
    """The candidate built once and measured at each of its settings in turn, stopping after the
    first for which `until` holds (larger settings only cost more time); the index keeps the last
    setting measured."""
    index, build_seconds = build(candidate.factory, xb, use_gpu)
    measured: list[Measurement] = []
    for settings in candidate.sweep:
        measured.append(measure(index, candidate.factory, settings, truth, build_seconds,
                                latency_queries=latency_queries))
        on_measured(measured[-1])
        if until(measured[-1]):
            break
    return index, measured


def pareto_frontier(points: Iterable[Point], recall: Callable[[Point], float], cost: Callable[[Point], float]
                    ) -> list[Point]:
    """The points no other beats (as much recall for less cost), cheapest first, each with more
    recall than the one before: the operating points worth choosing among."""
    frontier: list[Point] = []
    for point in sorted(points, key=lambda point: (cost(point), -recall(point))):
        if not frontier or recall(point) > recall(frontier[-1]):
            frontier.append(point)
    return frontier


def latency_frontier(measured: Iterable[Measurement], k: int = RECALL_AT) -> list[Measurement]:
    """Recall@k against single-query p99."""
    return pareto_frontier(measured, lambda m: m.recall[k], lambda m: m.latency_ms["p99"])


def bytes_frontier(measured: Iterable[Measurement], k: int = RECALL_AT) -> list[Measurement]:
    """Recall@k against the index's bytes per face."""
    return pareto_frontier(measured, lambda m: m.recall[k], lambda m: m.bytes_per_face)


def choose_index(xb: np.ndarray | Vectors, xq_strangers: np.ndarray, budget_ms: float, use_gpu: bool,
                 k: int = 10, memory_budget_bytes: float = math.inf, gallery_size: int | None = None,
                 forced: tuple[str, dict[str, Any]] | None = None, exact_queries: int | None = None,
                 kiosk_memory_bytes: float = KIOSK_MEMORY_BYTES) -> IndexChoice:
    """Pick the index for gallery xb, measured with stranger queries (not in xb).

    Candidates whose expected size for gallery_size faces (default: len(xb)) exceeds the memory
    budget (memory_budget_bytes, and what a kiosk PC of kiosk_memory_bytes can give one gallery
    while it swaps to the next: face_engine.memory.kiosk_index_budget) are not built, and where
    exact search does not fit, the fastest that fits and reaches recall is kept even if slower
    (OverMemoryBudget when none does);
    `forced` (factory, params) measures only that index and keeps it.
    exact_queries: time exact search on only that many queries (a 10^7 scan takes ~0.2 s each)."""
    vectors = Vectors.of(xb)
    size = gallery_size or len(vectors)
    memory_budget_bytes = min(memory_budget_bytes, kiosk_index_budget(kiosk_memory_bytes, size))
    exact_fits = bytes_per_vector("Flat", vectors.dim) * size <= memory_budget_bytes
    exact, truth, exact_measured = _measure_exact(vectors, xq_strangers, k, exact_queries)
    records = [_exact_record(exact_measured)]
    exact_p99 = exact_measured.latency_ms["p99"]
    if forced is None and exact_fits and exact_p99 <= budget_ms:
        return IndexChoice("Flat", {}, f"exact search: p99 {exact_p99:.2f} ms per query is "
                           f"within the {budget_ms:g} ms budget", records, exact)
    del exact  # one float copy of the gallery at a time
    if forced is not None:
        factory, params = forced
        index, swept = measure_sweep(Candidate(factory, [params]), vectors, truth, use_gpu)
        records += [_record(measured) for measured in swept]
        return _approximate_choice(swept[0], index, "forced with --index", records)
    # where exact search does not fit, any candidate that reaches recall beats it
    measured = [exact_measured] if exact_fits else []
    best: tuple[Measurement, faiss.Index] | None = None
    for candidate in candidates(size, vectors.dim, use_gpu):
        per_vector = bytes_per_vector(candidate.factory, vectors.dim)
        if per_vector * size > memory_budget_bytes:
            records.append({"factory": candidate.factory, "params": {}, "bytes_per_vector": per_vector,
                            "ruled_out": f"needs {per_vector * size / 2**20:,.0f} MiB, over the memory budget"})
            continue
        index, swept = measure_sweep(candidate, vectors, truth, use_gpu, until=_reaches_recall)
        records += [_record(measurement) for measurement in swept]
        measured += swept
        fastest = fastest_reaching_recall(measured)  # the sweep stops at its first setting that reaches recall
        if fastest is swept[-1]:
            best = (fastest, index)
        del index  # unless it is the best so far: two candidates in memory at most (12 GB at 10^7)
    if best is None:
        if not exact_fits:
            raise OverMemoryBudget(f"no index reached recall@5 {MIN_RECALL} on strangers within the memory budget of "
                                   f"{memory_budget_bytes / 2**20:,.1f} MiB (a kiosk of "
                                   f"{kiosk_memory_bytes / 2**30:g} GiB swapping galleries, or --memory-budget), "
                                   "and exact search needs "
                                   f"{bytes_per_vector('Flat', vectors.dim) * size / 2**20:,.1f} MiB for "
                                   f"{size:,} faces")
        return IndexChoice("Flat", {}, f"exact search: over the {budget_ms:g} ms budget (p99 "
                           f"{exact_p99:.2f} ms), but no approximate index that fits the memory budget "
                           f"reached recall@5 {MIN_RECALL} on strangers faster", records,
                           train_and_add("Flat", vectors, use_gpu=False))
    how = f"against exact search's {exact_p99:.2f} ms"
    if not exact_fits:
        how += ", which does not fit the memory budget"
    return _approximate_choice(*best, how, records)


def fastest_reaching_recall(measured: Iterable[Measurement]) -> Measurement | None:
    """The measurement of lowest p99 that reaches MIN_RECALL@5: a point of the latency frontier."""
    return next((point for point in latency_frontier(measured) if _reaches_recall(point)), None)


def _reaches_recall(measured: Measurement) -> bool:
    return measured.recall[RECALL_AT] >= MIN_RECALL


def _measure_exact(xb: Vectors, xq: np.ndarray, k: int, latency_queries: int | None
                   ) -> tuple[faiss.Index, Truth, Measurement]:
    """Exact search on xb: its answers are the truth, and its own measurement (recall 1 by
    definition, even where the gallery holds fewer than k faces) is the one to beat."""
    index, build_seconds = build("Flat", xb, use_gpu=False)
    started = time.perf_counter()
    truth = Truth(xq, *index.search(xq, k))
    batch_seconds = time.perf_counter() - started
    latency = single_query_latency_ms(index, xq[:latency_queries], k)
    return index, truth, Measurement("Flat", {}, build_seconds, bytes_per_vector("Flat", xb.dim), {RECALL_AT: 1.0},
                                     latency, np.zeros(len(xq), np.float32), len(xq) / batch_seconds)


def _approximate_choice(measured: Measurement, index: faiss.Index, how: str,
                        records: list[dict[str, Any]]) -> IndexChoice:
    set_search(index, measured.settings)
    return IndexChoice(measured.factory, search_params(measured.settings),
                       f"{measured.factory} {measured.settings}: recall@5 {measured.recall[RECALL_AT]:.3f} on "
                       f"strangers at p99 {measured.latency_ms['p99']:.2f} ms, {how}", records, index,
                       settings=measured.settings)


def _exact_record(measured: Measurement) -> dict[str, Any]:
    """How the manifest records exact search among the candidates."""
    return {"factory": "Flat", "params": {}, "recall@5": measured.recall[RECALL_AT],
            "latency_ms": measured.latency_ms, "build_seconds": measured.build_seconds,
            "bytes_per_vector": measured.bytes_per_face}


def _record(measured: Measurement) -> dict[str, Any]:
    """How the manifest records a candidate at one setting."""
    return {"factory": measured.factory, "build_seconds": measured.build_seconds,
            "bytes_per_vector": measured.bytes_per_face, "params": search_params(measured.settings),
            "settings": measured.settings, "recall@5": measured.recall[RECALL_AT],
            "latency_ms": measured.latency_ms, "best_score_loss_mean": float(np.mean(measured.best_score_loss))}


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


def candidates(n: int, dim: int = 128, use_gpu: bool = False) -> list[Candidate]:
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
            Candidate("SQfp16", [{}]),
            Candidate(f"IVF{nlist},PQ{m},RFlat", [{"nprobe": p, "k_factor_rf": kf} for p in (32, 64, 128, 256)
                                                  if p <= nlist for kf in (8, 32)]),
        ]
    return [
        Candidate(f"PQ{m}x4fs,RFlat", [{"k_factor_rf": kf} for kf in shortlist_factors(n, at_million=64)]),
        # the re-rank on fp16 codes: half the float vectors' memory, and strangers' near-ties kept
        # (an SQ8 re-rank reorders them: recall@5 0.965 at most at 10^6, benchmarks/results/scale_10m_cpu.json)
        Candidate(f"PQ{m}x4fs,Refine(SQfp16)", [{"k_factor_rf": kf} for kf in shortlist_factors(n, at_million=64)]),
        Candidate(f"PQ{m}x4fs,Refine(SQ8),RFlat", [{"k_factor_rf": 4, "inner_k_factor": kf}
                                                   for kf in shortlist_factors(n, at_million=32)]),
        Candidate("SQfp16", [{}]),
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
