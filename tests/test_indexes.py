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
def test_the_ann_benchmark_sweeps_the_ivf_the_builder_would_try(n):
    ivf = [factory for factory, _ in indexes.candidates(n) if factory.startswith("IVF")]
    assert ivf == [factory for factory, _ in default_specs(n) if factory.startswith("IVF")]
    assert ivf == [f"IVF{indexes.ivf_nlist(n)},Flat"] == [f"IVF{max(16, int(4 * n ** 0.5))},Flat"]
