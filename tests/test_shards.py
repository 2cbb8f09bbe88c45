"""A gallery's index split across threads (face_engine.shards), and the kiosk's memory in the index
choice; oracle: the whole index's own answers and brute-force numpy."""
from __future__ import annotations

import faiss
import numpy as np
import pytest

from face_engine import memory, shards
from face_engine.gallery import Gallery, apply_search_params
from index_builder import indexes
from index_builder.cli import build_parser
from index_builder.indexes import choose_index, recall_at, train_and_add
from index_builder.options import BuildOptions
from test_indexes import FakeGpus, brute_force, face_like, stranger_split


@pytest.fixture
def small_galleries_split(monkeypatch):
    """Split galleries of any size, on two threads, as a kiosk splits one of 10^7 faces."""
    monkeypatch.setattr(shards, "SHARD_FROM", 0)
    monkeypatch.setenv("FACE_SEARCH_THREADS", "2")


@pytest.mark.parametrize("factory", ["Flat", "SQ8", "PQ16x4fs"])
def test_split_codes_answer_as_the_whole_index(factory):
    xb, _ = face_like(5000)
    xq, _ = face_like(40, seed=1)
    whole = train_and_add(factory, xb, use_gpu=False)
    D, I = whole.search(xq, 10)
    split = shards.ShardedIndex(shards.split(whole, shards.boundaries(len(xb), 3)))
    assert [s.ntotal for s in split.shards] == [1664, 1664, 1672]
    D_split, I_split = split.search(xq, 10)
    np.testing.assert_array_equal(I_split, I)
    np.testing.assert_allclose(D_split, D, rtol=1e-6)
    ids = np.array([0, 1663, 1664, 4999])
    np.testing.assert_allclose(split.reconstruct_batch(ids), whole.reconstruct_batch(ids))


def test_a_rerank_splits_its_scan_and_shares_its_second_stage(small_galleries_split):
    xb, _ = face_like(6000)
    xq, _ = face_like(60, seed=1)
    whole = train_and_add("PQ16x4fs,Refine(SQfp16)", xb, use_gpu=False)
    apply_search_params(whole, {"k_factor_rf": 64})
    _, I_whole = whole.search(xq, 10)
    split = shards.sharded(whole, 2)
    refine = faiss.downcast_index(split)
    assert isinstance(refine, faiss.IndexRefine) and refine.k_factor == 64
    assert isinstance(faiss.downcast_index(refine.base_index), faiss.IndexShards) and refine.refine_index.ntotal == 6000
    _, I_split = split.search(xq, 10)
    truth = brute_force(xq, xb, 10)
    assert recall_at(I_split, I_whole, 5) >= 0.95  # the same shortlist, up to ties of fast-scan's 16-bit scores
    assert recall_at(I_split, truth, 5) >= recall_at(I_whole, truth, 5) - 0.02
    np.testing.assert_allclose(split.reconstruct(7), xb[7], atol=1e-3)


def test_small_or_unsplittable_indexes_are_searched_whole(monkeypatch):
    xb, _ = face_like(2000)
    scan = train_and_add("PQ16x4fs", xb, use_gpu=False)
    assert shards.sharded(scan, 2) is scan  # below SHARD_FROM: a second thread costs more than it saves
    monkeypatch.setattr(shards, "SHARD_FROM", 0)
    assert shards.sharded(scan, 1) is scan
    assert isinstance(shards.sharded(scan, 2), shards.ShardedIndex)
    for factory in ("Flat", "SQ8", "HNSW8", "IVF16,PQ16x4fs"):  # their shards would start OpenMP threads of their own
        index = train_and_add(factory, xb, use_gpu=False)
        assert shards.sharded(index, 2) is index
    nested = train_and_add("PQ16x4fs,Refine(SQ8),RFlat", xb, use_gpu=False)  # a build candidate: a re-rank re-ranked
    assert shards.sharded(nested, 2) is nested
    monkeypatch.setattr(shards, "MOST_COPIED_BYTES", 1000)  # the copy would cost more memory than it is worth
    assert shards.sharded(scan, 2) is scan


def test_the_search_threads_are_the_cores_unless_told(monkeypatch):
    monkeypatch.delenv("FACE_SEARCH_THREADS", raising=False)
    assert shards.search_threads() == len(__import__("os").sched_getaffinity(0))
    monkeypatch.setenv("FACE_SEARCH_THREADS", "3")
    assert shards.search_threads() == 3
    monkeypatch.setenv("FACE_SEARCH_THREADS", "many")
    assert shards.search_threads() >= 1


def test_a_gallery_is_split_on_the_cpu_by_the_same_path_with_a_gpu(monkeypatch, tmp_path, small_galleries_split):
    from test_bench import synthetic_gallery

    xb, names = face_like(3000)
    folder = synthetic_gallery(tmp_path / "g", xb, names)
    whole = train_and_add("PQ16x4fs,Refine(SQfp16)", xb, use_gpu=False)
    apply_search_params(whole, {"k_factor_rf": 100})  # stored in the file: a shortlist of 500 for 5
    faiss.write_index(whole, str(folder / "index.faiss"))
    gallery = Gallery(folder)
    refine = faiss.downcast_index(gallery.index)
    assert isinstance(faiss.downcast_index(refine.base_index), faiss.IndexShards) and gallery.count == 3000
    xq, _ = face_like(30, seed=2)
    one_by_one = np.array([gallery.search(q[None], 5)[1][0] for q in xq])  # one query, as the kiosk asks
    assert recall_at(one_by_one, whole.search(xq, 5)[1], 5) >= 0.95
    assert recall_at(one_by_one, brute_force(xq, xb, 5), 5) >= 0.9
    np.testing.assert_allclose(gallery.index.reconstruct(11), xb[11], atol=1e-3)
    gallery.close()
    gpus = FakeGpus(monkeypatch)  # one path: a GPU index is no type sharded splits; the fake keeps a CPU one
    on_gpu = Gallery(folder)
    assert gpus.moves == ["to_gpu"] and isinstance(faiss.downcast_index(on_gpu.index), faiss.IndexRefine)
    on_gpu.close()


def test_a_kiosk_holds_two_galleries_in_half_its_memory():
    beside_10m = memory.SERVING_BYTES + memory.SERVING_BYTES_PER_FACE * 10**7
    assert memory.kiosk_index_budget(16 * 2**30, 10**7) == (8 * 2**30 - beside_10m) / 2
    assert memory.kiosk_index_budget(2 * 2**30, 10**7) == 0.0
    per_face = indexes.bytes_per_vector("PQ64x4fs,Refine(SQfp16)", 128)  # what a 10^7 gallery serves with
    assert per_face * 10**7 <= memory.kiosk_index_budget(16 * 2**30, 10**7)
    assert indexes.bytes_per_vector("PQ64x4fs,RFlat", 128) * 10**7 > memory.kiosk_index_budget(16 * 2**30, 10**7)
    assert BuildOptions(corpus=".", out=".").kiosk_memory_bytes == 16 * 2**30


def test_the_kiosk_memory_rules_candidates_out():
    xb, xq = stranger_split(3000)
    fp16 = indexes.bytes_per_vector("SQfp16", 32) * len(xb)
    beside = memory.SERVING_BYTES + memory.SERVING_BYTES_PER_FACE * len(xb)
    kiosk = 2 * (2 * fp16 * 1.01 + beside)  # room for two fp16 galleries, not two float ones
    choice = choose_index(xb, xq, budget_ms=0.0, use_gpu=False, kiosk_memory_bytes=kiosk)
    ruled_out = [m["factory"] for m in choice.measurements if "ruled_out" in m]
    assert "PQ16x4fs,RFlat" in ruled_out and "SQfp16" not in ruled_out
    assert choice.factory not in ruled_out and "does not fit the memory budget" in choice.reason
    with pytest.raises(indexes.OverMemoryBudget, match="kiosk of"):
        choose_index(xb, xq, budget_ms=1000, use_gpu=False, kiosk_memory_bytes=2 * memory.SERVING_BYTES)


@pytest.mark.parametrize("given, expected", [([], 16.0), (["--kiosk-memory", "8"], 8.0)])
def test_the_build_takes_the_kiosk_memory_in_gib(given, expected):
    args = build_parser().parse_args(["build", "corpus", "--out", "g", *given])
    assert args.kiosk_memory == expected


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf", "2000000"])
def test_a_kiosk_memory_out_of_range_is_refused(bad, capsys):
    with pytest.raises(SystemExit) as exit:
        build_parser().parse_args(["build", "corpus", "--out", "g", "--kiosk-memory", bad])
    assert exit.value.code == 2 and "--kiosk-memory" in capsys.readouterr().err
