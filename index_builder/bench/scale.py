"""`bench scale`: galleries of synthetic embeddings made to look like real ones, from 10^4 up to
10^6 vectors or more, with the builder's own index choice at each size.

The synthetic faces are fitted to a real gallery: identity centres drawn from a Gaussian with the
mean and covariance of the real identity centres, photos around each centre drawn with the real
pooled within-person covariance, photos per person drawn from the real counts, all L2-normalised.
The fit is checked by comparing how close strangers come to their best lookalike, real vs synthetic.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from index_builder.bench.common import gallery_arrays, rss_mb
from index_builder.indexes import choose_index, percentiles, recall_at, single_query_latency_ms

QUERIES = 200


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
    return index.search(xq, 1)[0][:, 0]


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


def run_scale(fit_gallery: str, sizes: list[int], budget_ms: float, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    gallery, real, identities = gallery_arrays(fit_gallery)
    model = fit(real, identities)
    check = fit_check(model, real, identities, rng)
    rows = []
    for n in sizes:
        rss_before = rss_mb()
        xb, _ = generate(model, n, rng)
        xq, _ = generate(model, QUERIES, rng, first_person=10**9)  # strangers: new people
        choice = choose_index(xb, xq, budget_ms, use_gpu=faiss.get_num_gpus() > 0)
        index = choice.index
        build_seconds = next(m["build_seconds"] for m in choice.measurements if m["factory"] == choice.factory)
        exact = faiss.IndexFlatIP(xb.shape[1])
        exact.add(xb)
        _, I_exact = exact.search(xq, 10)
        _, I = index.search(xq, 10)
        row = {
            "vectors": n, "factory": choice.factory, "search_params": choice.search_params, "reason": choice.reason,
            "build_seconds": build_seconds, "index_bytes": int(faiss.serialize_index(index).size),
            "rss_mb_growth": rss_mb() - rss_before, "recall@10": recall_at(I, I_exact, 10),
            "latency_ms": single_query_latency_ms(index, xq, 10),
            "exact_latency_ms": single_query_latency_ms(exact, xq, 10),
            "candidates": choice.measurements,
        }
        rows.append(row)
        print(f"  {n:>10,} vectors: {choice.factory} {choice.search_params} built in {build_seconds:.1f} s, "
              f"recall@10 {row['recall@10']:.3f}, p50 {row['latency_ms']['p50']:.2f} ms, "
              f"p99 {row['latency_ms']['p99']:.2f} ms (exact p50 {row['exact_latency_ms']['p50']:.2f} ms)", flush=True)
        del xb, index, exact
    return {"fit_gallery": str(gallery.root), "fit_vectors": len(real), "dim": int(real.shape[1]),
            "fit_check": check, "budget_ms": budget_ms, "sizes": rows}
