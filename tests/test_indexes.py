"""Index choice and the FAISS plumbing, on seeded synthetic vectors (oracle: brute-force numpy)."""
from __future__ import annotations

import faiss
import numpy as np
import pytest

from face_engine.gallery import Gallery
from index_builder import indexes
from index_builder.bench.ann import default_specs
from index_builder.indexes import choose_index, held_out_strangers, recall_at, train_and_add


def face_like(n: int, dim: int = 32, people: int = 400, spread: float = 0.35, seed: int = 0):
    """Unit vectors around identity centres: clustered like face embeddings, not uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((people, dim)).astype(np.float32)
    who = rng.integers(0, people, n)
    x = centres[who] + spread * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, [f"p{i}" for i in who]


def brute_force(xq: np.ndarray, xb: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(xq @ xb.T), axis=1, kind="stable")[:, :k]


def test_recall_equals_an_independent_brute_force_count():
    xb, _ = face_like(3000)
    xq, _ = face_like(50, seed=1)
    I_exact = brute_force(xq, xb, 5)
    index = train_and_add("IVF32,Flat", xb, use_gpu=False)
    index.nprobe = 2
    _, I = index.search(xq, 5)
    expected = np.mean([len(set(I[i]) & set(I_exact[i])) / 5 for i in range(len(xq))])
    assert recall_at(I, I_exact, 5) == pytest.approx(expected)
    assert recall_at(I_exact, I_exact, 5) == 1.0


def test_the_exact_index_matches_numpy():
    xb, _ = face_like(2000)
    xq, _ = face_like(30, seed=2)
    index = train_and_add("Flat", xb, use_gpu=False)
    D, I = index.search(xq, 10)
    np.testing.assert_array_equal(I, brute_force(xq, xb, 10))
    np.testing.assert_allclose(D, np.take_along_axis(xq @ xb.T, I, axis=1), rtol=1e-5)


def test_exact_search_is_kept_when_it_fits_the_budget():
    xb, names = face_like(5000)
    strangers = held_out_strangers(names, np.random.default_rng(0))
    choice = choose_index(np.delete(xb, strangers, axis=0), xb[strangers], budget_ms=1000, use_gpu=False)
    assert (choice.factory, choice.search_params) == ("Flat", {})
    assert "within the 1000 ms budget" in choice.reason


def test_an_approximate_index_is_kept_only_with_measured_recall_and_speed():
    xb, names = face_like(20000, dim=64)
    strangers = held_out_strangers(names, np.random.default_rng(0))
    choice = choose_index(np.delete(xb, strangers, axis=0), xb[strangers], budget_ms=0.0, use_gpu=False)
    exact = choice.measurements[0]
    assert exact["factory"] == "Flat"
    if choice.factory != "Flat":
        chosen = next(m for m in choice.measurements
                      if m["factory"] == choice.factory and m["params"] == choice.search_params)
        assert chosen["recall@5"] >= indexes.MIN_RECALL
        assert chosen["latency_ms"]["p99"] < exact["latency_ms"]["p99"]
    assert len(choice.measurements) > 1, "approximate candidates were measured"
    reaching = [m for m in choice.measurements if m.get("recall@5", 0) >= indexes.MIN_RECALL]
    fastest = min(reaching, key=lambda m: m["latency_ms"]["p99"])
    assert (choice.factory, choice.settings) == (fastest["factory"], fastest.get("settings", {}))


def test_strangers_are_whole_people():
    _, names = face_like(3000)
    picked = set(held_out_strangers(names, np.random.default_rng(0)).tolist())
    held = {names[i] for i in picked}
    assert all((i in picked) == (name in held) for i, name in enumerate(names))
    assert 0 < len(picked) <= 500


class FakeGpus:
    """faiss without CUDA here: count one GPU and record the moves to and from it."""

    def __init__(self, monkeypatch):
        self.moves = []
        monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
        monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", self.to_gpu, raising=False)
        monkeypatch.setattr(faiss, "index_gpu_to_cpu", self.to_cpu, raising=False)  # absent from faiss-cpu

    def to_gpu(self, index):
        self.moves.append("to_gpu")
        return index

    def to_cpu(self, index):
        self.moves.append("to_cpu")
        return index


def test_training_and_adding_go_to_the_gpu_when_faiss_sees_one(monkeypatch):
    gpus = FakeGpus(monkeypatch)
    xb, _ = face_like(2000)
    index = train_and_add("IVF16,Flat", xb, use_gpu=True)
    assert gpus.moves == ["to_gpu", "to_cpu"] and index.ntotal == 2000


def test_a_gallery_searches_on_the_gpu_when_faiss_sees_one(monkeypatch, tmp_path):
    # test_bench imports this module, so this import cannot be at the top
    from test_bench import synthetic_gallery

    xb, names = face_like(100)
    folder = synthetic_gallery(tmp_path / "g", xb, names)
    gpus = FakeGpus(monkeypatch)
    Gallery(folder)
    assert gpus.moves == ["to_gpu"]


@pytest.mark.parametrize("n", [10, 5_000, 1_000_000])
def test_the_builder_tries_no_ivf_or_hnsw_for_strangers_but_the_ann_benchmark_sweeps_them(n):
    tried = [factory for factory, _ in indexes.candidates(n)]
    assert not [factory for factory in tried if factory.startswith(("IVF", "HNSW"))]
    swept = [factory for factory, _ in default_specs(n)]
    assert f"IVF{indexes.ivf_nlist(n)},Flat" in swept and "HNSW32,Flat" in swept


@pytest.mark.parametrize("factory, params", [
    ("PQ16x4fs,RFlat", {"k_factor_rf": 1000}),
    ("PQ16x4fs,Refine(SQ8),RFlat", {"k_factor_rf": 4, "inner_k_factor": 1000}),
    ("SQfp16", {}),
])
def test_each_new_candidate_matches_numpy_with_a_long_exact_rerank(factory, params):
    xb, _ = face_like(4000)
    xq, _ = face_like(40, seed=3)
    index = train_and_add(factory, xb, use_gpu=False)
    indexes.set_search(index, params)
    _, I = index.search(xq, 5)
    assert recall_at(I, brute_force(xq, xb, 5), 5) == 1.0


@pytest.mark.parametrize("factory", ["Flat", "SQfp16", "SQ8", "PQ64x4fs,RFlat", "PQ64x4fs,Refine(SQ8),RFlat",
                                     "HNSW32,Flat", "IVF64,Flat"])
@pytest.mark.slow
def test_bytes_per_vector_is_known_before_building(factory):
    xb, _ = face_like(6000, dim=128)
    index = train_and_add(factory, xb, use_gpu=False)
    measured = faiss.serialize_index(index).size / len(xb)
    assert indexes.bytes_per_vector(factory, 128) == pytest.approx(measured, rel=0.03)


@pytest.mark.slow
def test_streamed_vectors_give_the_same_rows_and_index_as_the_array():
    xb, _ = face_like(2500)
    vectors = indexes.Vectors(len(xb), xb.shape[1], lambda: (xb[i:i + 700] for i in range(0, len(xb), 700)))
    held = np.array([0, 699, 700, 2499])
    np.testing.assert_array_equal(vectors[held], xb[held])
    np.testing.assert_array_equal(np.concatenate(list(vectors.without(held).blocks())), np.delete(xb, held, axis=0))
    streamed, whole = train_and_add("PQ16x4fs,RFlat", vectors, False), train_and_add("PQ16x4fs,RFlat", xb, False)
    assert faiss.serialize_index(streamed).tobytes() == faiss.serialize_index(whole).tobytes()
    xq, _ = face_like(20, seed=4)
    D, I = indexes.exact_truth(vectors, xq, 7)
    np.testing.assert_array_equal(I, brute_force(xq, xb, 7))


def stranger_split(n: int, dim: int = 32):
    xb, names = face_like(n, dim=dim)
    strangers = held_out_strangers(names, np.random.default_rng(0))
    return np.delete(xb, strangers, axis=0), xb[strangers]


@pytest.mark.slow
def test_the_choice_falls_back_to_exact_when_no_candidate_reaches_recall(monkeypatch):
    monkeypatch.setattr(indexes, "MIN_RECALL", 1.01)  # unreachable
    xb, xq = stranger_split(3000)
    choice = choose_index(xb, xq, budget_ms=0.0, use_gpu=False)
    assert (choice.factory, choice.search_params) == ("Flat", {}) and choice.index.ntotal == len(xb)
    assert "no approximate index" in choice.reason and len(choice.measurements) > 1


def test_the_memory_budget_rules_candidates_out():
    xb, xq = stranger_split(3000)
    budget = indexes.bytes_per_vector("SQfp16", 32) * len(xb)  # fp16 fits; PQ with an exact re-rank does not
    choice = choose_index(xb, xq, budget_ms=0.0, use_gpu=False, memory_budget_bytes=budget * 1.01)
    ruled_out = [m["factory"] for m in choice.measurements if "ruled_out" in m]
    assert ruled_out == ["PQ16x4fs,RFlat", "PQ16x4fs,Refine(SQfp16)", "PQ16x4fs,Refine(SQ8),RFlat"]
    assert choice.factory == "SQfp16" and "does not fit the memory budget" in choice.reason
    assert "ruled_out" not in choice.measurements[-1]
    with pytest.raises(indexes.OverMemoryBudget, match="exact search needs"):
        choose_index(xb, xq, budget_ms=1000, use_gpu=False, memory_budget_bytes=1000)


def test_a_forced_index_is_the_only_one_measured_and_is_kept():
    xb, xq = stranger_split(3000)
    choice = choose_index(xb, xq, budget_ms=1000, use_gpu=False, forced=("PQ16x4fs,RFlat", {"k_factor_rf": 16}))
    assert (choice.factory, choice.search_params) == ("PQ16x4fs,RFlat", {"k_factor_rf": 16})
    assert [m["factory"] for m in choice.measurements] == ["Flat", "PQ16x4fs,RFlat"]
    assert faiss.downcast_index(choice.index).k_factor == 16


def test_with_a_gpu_the_choice_is_among_gpu_capable_indexes(monkeypatch):
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 2)
    tried = [factory for factory, _ in indexes.candidates(10**7, 128, use_gpu=faiss.get_num_gpus() > 0)]
    assert tried == ["SQfp16", f"IVF{indexes.ivf_nlist(10**7)},PQ64,RFlat"]
    assert not any("fs" in factory for factory in tried)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0)
    assert [f for f, _ in indexes.candidates(10**7, 128, use_gpu=faiss.get_num_gpus() > 0)][0] == "PQ64x4fs,RFlat"


def test_the_shortlist_doubles_per_fourfold_growth():
    assert indexes.shortlist_factors(10**6, 64)[:2] == [32, 64]
    assert indexes.shortlist_factors(4 * 10**6, 64)[0] == 64
    assert indexes.shortlist_factors(10**4, 64)[0] == 8


def test_identification_through_a_gallery_index_matches_exact_search_when_its_shortlist_is_wide():
    from index_builder.evaluate import leave_one_out_identification

    xb, names = face_like(3000)
    exact = leave_one_out_identification(xb, names)
    index = train_and_add("PQ16x4fs,RFlat", xb, use_gpu=False)
    indexes.set_search(index, {"k_factor_rf": 200})
    through_index = leave_one_out_identification(xb, names, index=index)
    assert through_index["queries"] == exact["queries"]
    assert abs(through_index["rank1"] - exact["rank1"]) <= 0.001


def test_the_pareto_frontier_holds_exactly_the_points_no_cheaper_one_beats():
    rng = np.random.default_rng(0)
    points = [tuple(point) for point in rng.random((200, 2))]  # (cost, recall), no ties
    frontier = indexes.pareto_frontier(points, recall=lambda p: p[1], cost=lambda p: p[0])
    unbeaten = [p for p in points if not any(q[0] < p[0] and q[1] > p[1] for q in points)]
    assert frontier == sorted(unbeaten)
    assert [p[1] for p in frontier] == sorted(p[1] for p in frontier), "each point buys more recall"


def test_a_measurement_matches_an_independent_count():
    xb, _ = face_like(3000)
    xq, _ = face_like(50, seed=8)
    truth = indexes.Truth.of(xb, xq, 10)
    np.testing.assert_array_equal(truth.I, brute_force(xq, xb, 10))
    index, _ = indexes.build("IVF32,Flat", xb, use_gpu=False)
    measured = indexes.measure(index, "IVF32,Flat", {"nprobe": 2}, truth, 1.5, recall_ks=(1, 5, 10),
                               latency_queries=20)
    _, I = index.search(xq, 10)
    for k in (1, 5, 10):
        expected = np.mean([len(set(I[q, :k]) & set(truth.I[q, :k])) / k for q in range(len(xq))])
        assert measured.recall[k] == pytest.approx(expected)
    best = np.take_along_axis(xq @ xb.T, I[:, :1], axis=1)[:, 0]
    np.testing.assert_allclose(measured.best_score_loss, (xq @ xb.T).max(axis=1) - best, atol=1e-5)
    assert set(measured.latency_ms) == {"p50", "p95", "p99", "mean"} and measured.batch_queries_per_second > 0
    assert measured.bytes_per_face == pytest.approx(indexes.serialized_bytes(index) / len(xb), rel=0.03)
    assert index.nprobe == 2 and measured.build_seconds == 1.5
