"""`bench scale`: galleries of synthetic embeddings made to look like real ones, from 10^4 up to
10^7 vectors, with the builder's own index choice at each size.

The vectors are generated in chunks, each seeded by its number, so every pass over the gallery
(exact search, training samples, adding to each candidate) regenerates the same vectors and the
peak memory holds one float copy (the exact index), not two: 5.1 GB at 10^7 x 128.

The synthetic faces are fitted to a real gallery: identity centres drawn from a Gaussian with the
mean and covariance of the real identity centres, photos around each centre drawn with the real
pooled within-person covariance, photos per person drawn from the real counts, all L2-normalised.
The fit is checked by comparing how close strangers come to their best lookalike, real vs synthetic.
"""
from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from face_engine.memory import open_cost, peak_rss_mb, rss_bytes
from index_builder.bench.common import gallery_arrays
from index_builder.indexes import Truth, Vectors, choose_index, percentiles, recall_at

CHUNK = 250_000               # vectors generated at a time (~1 GB of float64 temporaries)
STRANGER_QUERIES = 300
IN_GALLERY_QUERIES = 300
EXACT_ON_ALL_QUERIES_UP_TO = 2_000_000
EXACT_LATENCY_QUERIES = 50    # above that size: one exact query takes ~0.2 s at 10^7


@dataclass
class FaceModel:
    mean: np.ndarray            # (d,) mean identity centre
    centre_factor: np.ndarray   # (d, d) Cholesky factor of the centres' covariance
    within_factor: np.ndarray   # (d, d) Cholesky factor of the within-person covariance
    photos_per_person: np.ndarray  # the real counts, to draw from


def fit(xb: np.ndarray, identities: list[str]) -> FaceModel:
    names = np.array(identities)
    people, inverse, counts = np.unique(names, return_inverse=True, return_counts=True)
    centres = np.zeros((len(people), xb.shape[1]))
    np.add.at(centres, inverse, xb)
    centres /= counts[:, None]
    several = counts[inverse] >= 2
    residuals = xb[several] - centres[inverse[several]]
    dim = xb.shape[1]
    jitter = 1e-6 * np.eye(dim)
    return FaceModel(
        mean=centres.mean(axis=0),
        centre_factor=np.linalg.cholesky(np.cov(centres, rowvar=False) + jitter),
        within_factor=np.linalg.cholesky(np.cov(residuals, rowvar=False) + jitter),
        photos_per_person=counts,
    )


def generate(model: FaceModel, n: int, rng: np.random.Generator, first_person: int = 0
             ) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors and their person numbers (starting at first_person)."""
    dim = len(model.mean)
    per_person = rng.choice(model.photos_per_person, size=n)  # more than enough people
    per_person = per_person[: np.searchsorted(np.cumsum(per_person), n) + 1]
    person = np.repeat(np.arange(len(per_person)), per_person)[:n]
    xb = np.empty((n, dim), np.float32)
    block = 1_000_000
    for start in range(0, n, block):
        ids = person[start:start + block]
        unique, local = np.unique(ids, return_inverse=True)
        centres = model.mean + rng.standard_normal((len(unique), dim)) @ model.centre_factor.T
        x = centres[local] + rng.standard_normal((len(ids), dim)) @ model.within_factor.T
        xb[start:start + len(ids)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return xb, person + first_person


def best_scores(xb: np.ndarray, xq: np.ndarray) -> np.ndarray:
    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    D: np.ndarray = index.search(xq, 1)[0]
    return D[:, 0]


def fit_check(model: FaceModel, xb: np.ndarray, identities: list[str], rng: np.random.Generator) -> dict[str, Any]:
    """Strangers' best-lookalike scores on the real gallery and on a synthetic one of the same size."""
    names = np.array(identities)
    people = np.unique(names)
    held = set(rng.choice(people, size=min(200, len(people) // 10), replace=False))
    strangers = np.array([name in held for name in names])
    real = best_scores(xb[~strangers], xb[strangers])
    synthetic_base, _ = generate(model, int((~strangers).sum()), rng)
    synthetic_queries, _ = generate(model, int(strangers.sum()), rng)
    fake = best_scores(synthetic_base, synthetic_queries)
    return {"real_stranger_best_score": {"mean": float(real.mean()), **percentiles(real, (10, 90))},
            "synthetic_stranger_best_score": {"mean": float(fake.mean()), **percentiles(fake, (10, 90))}}


def chunk(model: FaceModel, n: int, number: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows [number * CHUNK, ...) of a synthetic gallery of n faces: the same on every call."""
    rows = min(CHUNK, n - number * CHUNK)
    return generate(model, rows, np.random.default_rng([seed, 0, number]), first_person=number * CHUNK)


def synthetic_gallery(model: FaceModel, n: int, seed: int, folder: Path) -> Vectors:
    """The chunks generated once into float32 files under folder (5.1 GB of disk at 10^7), then read
    memory-mapped on every pass: generating costs more than reading (~5 s per chunk of 250,000)."""
    paths = [folder / f"{number:05d}.npy" for number in range(math.ceil(n / CHUNK))]
    for number, path in enumerate(paths):
        np.save(path, chunk(model, n, number, seed)[0])
    return Vectors(n, len(model.mean), lambda: (np.load(path, mmap_mode="r") for path in paths))


def in_gallery_queries(model: FaceModel, n: int, seed: int, count: int = IN_GALLERY_QUERIES
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Positions and vectors of one photo of each of `count` people with two photos or more (from the
    first chunk): held out of the gallery, so each query's person is still in it."""
    xb, person = chunk(model, n, 0, seed)
    starts = np.flatnonzero(np.r_[True, person[1:] != person[:-1]])
    several = starts[(np.r_[starts[1:], len(person)] - starts) >= 2]
    positions = np.sort(np.random.default_rng([seed, 2]).choice(several, min(count, len(several)), replace=False))
    return positions, xb[positions]


def run_scale(fit_gallery: str, sizes: list[int], budget_ms: float, seed: int = 0,
              memory_budget_bytes: float = math.inf) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    gallery, real, identities = gallery_arrays(fit_gallery)
    model = fit(real, identities)
    check = fit_check(model, real, identities, rng)
    rows = []
    for n in sizes:
        rows.append(measure_size(model, n, budget_ms, seed, memory_budget_bytes))
        row = rows[-1]
        print(f"  {n:>10,} vectors: {row['factory']} {row['settings']} built in {row['build_seconds']:.1f} s, "
              f"recall@5 strangers {row['recall@5_strangers']:.3f} in gallery {row['recall@5_in_gallery']:.3f}, "
              f"p50 {row['latency_ms']['p50']:.2f} ms, p99 {row['latency_ms']['p99']:.2f} ms "
              f"(exact p50 {row['exact_latency_ms']['p50']:.2f} ms), peak RSS {row['peak_rss_mb']:,.0f} MB", flush=True)
    return {"fit_gallery": str(gallery.root), "fit_vectors": len(real), "dim": int(real.shape[1]),
            "fit_check": check, "budget_ms": budget_ms, "sizes": rows}


def measure_size(model: FaceModel, n: int, budget_ms: float, seed: int, memory_budget_bytes: float) -> dict[str, Any]:
    """The builder's choice on a synthetic gallery of n faces, and what it costs (the gallery's chunks
    and the index file live in a temporary folder meanwhile)."""
    with tempfile.TemporaryDirectory(prefix="scale-") as folder:
        return _measure_size(model, n, budget_ms, seed, memory_budget_bytes, Path(folder))


def _measure_size(model: FaceModel, n: int, budget_ms: float, seed: int, memory_budget_bytes: float,
                  folder: Path) -> dict[str, Any]:
    started = time.perf_counter()
    known_positions, xq_known = in_gallery_queries(model, n, seed)
    xb = synthetic_gallery(model, n, seed, folder).without(known_positions)
    generated = time.perf_counter() - started
    xq, _ = generate(model, STRANGER_QUERIES, np.random.default_rng([seed, 1]), first_person=10**9)  # new people
    exact_queries = EXACT_LATENCY_QUERIES if n > EXACT_ON_ALL_QUERIES_UP_TO else None
    choice = choose_index(xb, xq, budget_ms, use_gpu=faiss.get_num_gpus() > 0, memory_budget_bytes=memory_budget_bytes,
                          exact_queries=exact_queries)
    exact, chosen = choice.measurements[0], choice.measured
    known = Truth.of(xb, xq_known, 10)
    index = choice.index
    assert index is not None, "choose_index returns the index it measured"
    _, I_known = index.search(known.xq, known.k)
    path = folder / "index.faiss"
    faiss.write_index(index, str(path))
    del index, choice.index  # measure opening it as the kiosk does, without this copy
    opening = open_cost(path)
    return {
        "vectors": n, "gallery_vectors": len(xb), "factory": choice.factory, "search_params": choice.search_params,
        "settings": choice.settings, "reason": choice.reason,
        "build_seconds": chosen["build_seconds"], "exact_build_seconds": exact["build_seconds"],
        "recall@5_strangers": chosen["recall@5"],
        "recall@5_in_gallery": recall_at(I_known, known.I, 5),
        "strangers_best_score_loss_mean": chosen.get("best_score_loss_mean", 0.0),
        "latency_ms": chosen["latency_ms"], "exact_latency_ms": exact["latency_ms"],
        "exact_latency_queries": exact_queries or len(xq),
        "queries": {"strangers": len(xq), "in_gallery": len(xq_known)},
        "index_bytes": int(opening["file_mb"] * 2**20), "bytes_per_face": opening["file_mb"] * 2**20 / len(xb),
        "open": opening, "rss_mb": rss_bytes() / 2**20, "peak_rss_mb": peak_rss_mb(),
        "seconds": time.perf_counter() - started, "generate_seconds": generated, "candidates": choice.measurements,
    }
