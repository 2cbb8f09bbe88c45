"""One query searched by several threads: the gallery's index split into shards of consecutive faces,
each scanned on its own thread (faiss.IndexShards), the answers merged.

A kiosk searches one visitor's face at a time, and faiss parallelises over queries, not over the
gallery: one index searched with 2 OpenMP threads gains nothing for one query. Two shards searched by
two threads halve the scan, which is what a 10^7 gallery's search time is (benchmarks/bench_scale_10m.py).
The split is made when the gallery is opened, from the one index file the builder wrote, so a gallery
serves any number of threads and the file format stays faiss's own.

Split for a gallery: 4-bit PQ fast-scan (IndexPQFastScan), alone or as the first stage of a re-rank
(IndexRefine). `split` also cuts flat codes (IndexFlat, IndexScalarQuantizer: the benchmarks' exact
search), which Gallery searches whole (see `splittable`), as it does IVF, HNSW and GPU indexes.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import faiss
import numpy as np

log = logging.getLogger(__name__)

# Below this many faces a scan takes under a millisecond: waking a second thread costs more than it saves.
SHARD_FROM = 200_000
BLOCK = 32  # shards start at a multiple of the fast-scan block (faiss packs codes 32 faces a block)
# The shards hold copies of the codes they scan: past this, the copy would cost more memory than the
# speed is worth (a 10^7 Flat index is 5 GB; its fast-scan first stage 160-320 MB)
MOST_COPIED_BYTES = 2**30


class ShardedIndex(faiss.IndexShards):
    """faiss.IndexShards over consecutive ranges of faces, one thread a shard; it keeps its shards
    alive (IndexShards does not own what Python adds to it) and gives stored vectors back, as the
    whole index would, for the callers that reconstruct (the attract loop's pairs, forget)."""

    # declared on the class: faiss's wrappers refuse attributes a SWIG class does not have
    shards: tuple[faiss.Index, ...] = ()
    starts: np.ndarray = np.zeros(1, np.int64)  # each shard's first face, then the count

    def __init__(self, shards: list[faiss.Index]) -> None:
        super().__init__(shards[0].d, True, True)  # type: ignore[call-arg]  # threaded; ids numbered shard after shard
        self.shards = tuple(shards)
        for shard in shards:
            self.add_shard(shard)
        self.starts = np.cumsum([0] + [shard.ntotal for shard in shards])

    def reconstruct_batch(self, ids: Any, *_: Any) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty((len(ids), self.d), np.float32)
        which = np.searchsorted(self.starts, ids, side="right") - 1
        for number in np.unique(which):
            mine = which == number
            out[mine] = self.shards[number].reconstruct_batch(ids[mine] - self.starts[number])
        return out

    def reconstruct(self, key: Any, *_: Any) -> np.ndarray:
        vector: np.ndarray = self.reconstruct_batch([key])[0]
        return vector

    def reconstruct_n(self, n0: Any = 0, ni: Any = -1, *_: Any) -> np.ndarray:
        ni = self.ntotal - n0 if ni == -1 else ni
        return self.reconstruct_batch(np.arange(n0, n0 + ni))


def search_threads() -> int:
    """The threads a single query is searched with: this machine's cores (FACE_SEARCH_THREADS overrides)."""
    wanted = os.environ.get("FACE_SEARCH_THREADS", "")
    if wanted.isdigit() and int(wanted) > 0:
        return int(wanted)
    return max(1, len(os.sched_getaffinity(0)))


def splittable(index: faiss.Index) -> bool:
    """Whether `sharded` splits this index (a re-rank: its first stage): 4-bit PQ fast-scan codes,
    copying at most MOST_COPIED_BYTES."""
    kind: Any = faiss.downcast_index(index)  # faiss's type stubs know neither codes nor bbs
    if isinstance(kind, faiss.IndexRefine):  # one re-rank: `sharded` splits a re-rank's first stage only
        return not isinstance(faiss.downcast_index(kind.base_index), faiss.IndexRefine) and splittable(kind.base_index)
    # flat and SQ codes split too (split), but their shards' threads each start OpenMP threads of
    # their own: two shards of a 10^6 Flat index took 65 ms a query against 35 ms whole
    # (benchmarks/results/scale_10m_cpu.json), so only fast-scan scans are split for Gallery
    return (isinstance(kind, faiss.IndexPQFastScan) and not BLOCK % kind.bbs
            and int(kind.codes.size()) <= MOST_COPIED_BYTES)


def sharded(index: faiss.Index, threads: int | None = None, release: bool = False) -> faiss.Index:
    """`index` split for `threads` threads (default search_threads()), or `index` itself where one
    thread is all there is, the gallery is small, or faiss's type cannot be split here.

    A re-rank (IndexRefine) keeps its second stage whole: only the scan of the first stage's codes
    is split, so the shortlist is the one the whole index makes (the same recall) and the re-rank
    codes, most of the index's memory, are shared, never copied. The split keeps `index` alive;
    `release` frees the codes of its first stage, which the shards now hold (a reader that will not
    search `index` itself again: Gallery)."""
    parts = search_threads() if threads is None else threads
    if parts < 2 or index.ntotal < SHARD_FROM or not splittable(index):
        return index
    bounds = boundaries(int(index.ntotal), parts)
    whole: Any = faiss.downcast_index(index)
    if not isinstance(whole, faiss.IndexRefine):
        shards = ShardedIndex(split(whole, bounds))
        if release and getattr(whole.codes, "is_owned", True):  # codes read memory-mapped are the kernel's to drop
            whole.reset()
        return shards
    first: Any = faiss.downcast_index(whole.base_index)
    refine: Any = faiss.IndexRefine(ShardedIndex(split(first, bounds)), whole.refine_index)
    refine.k_factor = whole.k_factor
    refine.referenced_objects.append(index)  # the owner of the second stage: it lives as long as this
    if release:
        first.reset()
    searched: faiss.Index = refine
    return searched


def boundaries(count: int, parts: int) -> list[int]:
    """Where each shard starts, and the end: equal shares, each start a multiple of BLOCK."""
    starts = [round(count * part / parts / BLOCK) * BLOCK for part in range(parts)]
    return [*starts, count]


def split(index: faiss.Index, bounds: list[int]) -> list[faiss.Index]:
    """One index per range [bounds[i], bounds[i + 1]) of faces, holding copies of their codes and
    the trained parts (quantizers) of `index`."""
    kind: Any = faiss.downcast_index(index)
    codes = faiss.rev_swig_ptr(kind.codes.data(), kind.codes.size())  # a view: no copy of the gallery
    return [_filled(kind, codes, start, end) for start, end in zip(bounds, bounds[1:], strict=False)]


def _filled(index: Any, codes: np.ndarray, start: int, end: int) -> Any:
    """An index of the same type and training as `index`, holding faces [start, end)."""
    shard = _empty_like(index)
    if isinstance(index, faiss.IndexPQFastScan):
        block_bytes = index.bbs * index.M2 // 2
        first, last = start // index.bbs, -(-end // index.bbs)
        faiss.copy_array_to_AlignedTable(np.ascontiguousarray(codes[first * block_bytes:last * block_bytes]),
                                         shard.codes)
        shard.ntotal, shard.ntotal2 = end - start, (last - first) * index.bbs
    else:
        faiss.copy_array_to_vector(np.ascontiguousarray(codes[start * index.code_size:end * index.code_size]),
                                   shard.codes)
        shard.ntotal = end - start
    return shard


def _empty_like(index: Any) -> Any:
    shard: Any
    if isinstance(index, faiss.IndexPQFastScan):
        shard = faiss.IndexPQFastScan(index.d, index.pq.M, index.pq.nbits, index.metric_type, index.bbs)
        shard.pq = index.pq
        shard.implem, shard.skip, shard.qbs = index.implem, index.skip, index.qbs
    elif isinstance(index, faiss.IndexScalarQuantizer):
        shard = faiss.IndexScalarQuantizer(index.d, index.sq.qtype, index.metric_type)
        shard.sq = index.sq
    else:
        shard = faiss.IndexFlat(index.d, index.metric_type)
    shard.is_trained = True
    return shard
