"""`bench exposure`: how fairly attention spreads over a gallery, policy beside policy, on the same
visitors (index_builder.attention measures, face_engine.fairness holds the policies): per policy, Gini
of how often each person is shown in the top k (what the policies aim at) beside each face's, the
share never shown of each, the most shown face and person and what bounds them, rank-1 and the
strangers' top-1 score loss (both on the displayed order: by raw score, best first), the share of
short lists; Lorenz curves per person and per face.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import faiss
import numpy as np

from face_engine.fairness import (
    EXACT,
    LAMBDAS,
    LEDGER_DELTA,
    LEDGER_DELTA_MORE,
    FairPolicy,
    gini,
    hubness,
    person_numbers,
)
from face_engine.gallery import Gallery, one_thread
from face_engine.query import choose
from index_builder.attention import Replayed, Visitors, choose_fairness, compare, lambda_sweep, visitors
from index_builder.bench.common import gallery_arrays

LORENZ_POINTS = 101
QUERY_COST_VISITORS = 300
SYNTHETIC_REFERENCES = 100_000  # reference faces for r_g of a synthetic gallery


def policies(lambdas: Sequence[float] = LAMBDAS, ledger_fairness: float = 0.5,
             deltas: Sequence[float] = (LEDGER_DELTA,), delta_more: float = LEDGER_DELTA_MORE) -> list[Replayed]:
    """Exact, the λ sweep, and the ledger at `ledger_fairness` with each best-lookalike margin."""
    return lambda_sweep(lambdas) + [Replayed(FairPolicy(ledger_fairness, delta, delta_more), ledger=True)
                                    for delta in deltas]


def most_shown(face: int, counts: np.ndarray, found: Visitors, persons: np.ndarray, hub: np.ndarray,
               name: str) -> dict[str, Any]:
    """The most-shown face and what bounds its count: a policy that re-ranks shortlists can show a
    face only to visitors whose raw shortlist holds it (`in_shortlists`), and the fair score lowers
    it only as far as its own hubness (a low `hubness_rank` is a hub; an isolated face has low r_g
    and loses little)."""
    D, I = found.strangers
    holding = np.flatnonzero((I == face).any(axis=1))
    rank_in_shortlist = np.argmax(I[holding] == face, axis=1)
    return {"id": face, "name": name, "shown": int(counts[face]), "in_shortlists": len(holding),
            "median_raw_rank_there": float(np.median(rank_in_shortlist)) if len(holding) else None,
            "median_raw_score_there": float(np.median(D[holding, rank_in_shortlist])) if len(holding) else None,
            "hubness": float(hub[face]), "hubness_rank": int(np.sum(hub > hub[face])) + 1,
            "median_hubness": float(np.median(hub)), "persons_photos": int(np.sum(persons == persons[face]))}


def most_shown_person(person: int, per_person: np.ndarray, person_of: np.ndarray, names: list[str]) -> dict[str, Any]:
    """The most-shown person: their showings (all their faces together) and photo count."""
    faces = np.flatnonzero(person_of == person)
    return {"name": names[faces[0]], "shown": int(per_person[person]), "photos": len(faces)}


def even_floor(faces: int, showings: int) -> dict[str, float]:
    """The lowest Gini and share never shown that `showings` can reach over `faces` faces (or people:
    each shown the same number of times, give or take one): with fewer showings than faces (a sample
    of visitors at 10^6 faces) most cannot be shown at all, and a policy is read against this floor."""
    counts = np.full(faces, showings // faces, dtype=np.int64)
    counts[: showings % faces] += 1
    return {"gini": gini(counts), "share_never_shown": float(np.mean(counts == 0))}


def lorenz(counts: np.ndarray) -> list[float]:
    """The share of all showings taken by the least-shown faces, at LORENZ_POINTS even steps."""
    cumulative = np.concatenate([[0.0], np.cumsum(np.sort(counts))])
    total = cumulative[-1] or 1.0
    at = np.linspace(0, len(counts), LORENZ_POINTS).round().astype(int)
    curve: list[float] = (cumulative[at] / total).round(4).tolist()
    return curve


def run_exposure(gallery_path: str, k: int, lambdas: Sequence[float] = LAMBDAS,
                 deltas: Sequence[float] = (LEDGER_DELTA,), sample: int | None = None) -> dict[str, Any]:
    """The policies compared on a real gallery, with the hubness, λ and portrait quality its build stored."""
    gallery, xb, identities = gallery_arrays(gallery_path)
    names = dict(gallery.db.execute("SELECT id, display_name FROM faces"))
    quality = gallery.quality[:, 0] if gallery.quality is not None else None
    measured = gallery.manifest.measured_lambda
    result = exposure_of(xb, identities, gallery.hubness, [names[i] for i in range(len(xb))], k, lambdas, deltas,
                         sample, 0.5 if measured is None else measured, quality=quality)
    return {"gallery": str(gallery.root), "manifest_fairness": gallery.manifest.to_json()["fairness"],
            "query_ms": query_cost(gallery, xb, k), **result}


def query_cost(gallery: Gallery, xb: np.ndarray, k: int, queries: int = QUERY_COST_VISITORS) -> dict[str, Any]:
    """What each policy costs a visitor's query, as the kiosk runs it (`face_engine.query.choose`:
    search, re-rank, read the shown faces' records), one query at a time on one thread."""
    xq = xb[np.random.default_rng(1).choice(len(xb), min(queries, len(xb)), replace=False)]

    def no_one_shown_yet(keys: list[str]) -> list[int]:
        return [0] * len(keys)

    timed: dict[str, Any] = {}
    with one_thread():
        for name, policy, counts in (("exact", EXACT, None), ("fair", FairPolicy(), None),
                                     ("fair_ledger", FairPolicy(), no_one_shown_yet)):
            choose(gallery, xq[:1], k, True, policy, counts)  # warm
            times = []
            for q in xq:
                started = time.perf_counter()
                choose(gallery, q[None], k, True, policy, counts)
                times.append((time.perf_counter() - started) * 1e3)
            timed[name] = {"p50": float(np.median(times)), "mean": float(np.mean(times))}
    timed["fair_over_exact_mean_ms"] = timed["fair"]["mean"] - timed["exact"]["mean"]
    return timed


def run_exposure_synthetic(fit_gallery: str, n: int, k: int, lambdas: Sequence[float] = LAMBDAS,
                           deltas: Sequence[float] = (LEDGER_DELTA,), sample: int | None = None,
                           references: int = SYNTHETIC_REFERENCES) -> dict[str, Any]:
    """The policies compared on n synthetic faces fitted to a real gallery (bench scale's model);
    r_g over a random sample of `references` faces, as the build does when a gallery is that large."""
    from index_builder.bench.scale import fit, generate

    rng = np.random.default_rng(0)
    _, real, real_identities = gallery_arrays(fit_gallery)
    xb, person = generate(fit(real, real_identities), n, rng)
    identities = [f"p{p}" for p in person]
    return {"fit_gallery": fit_gallery, "synthetic": n,
            **exposure_of(xb, identities, None, identities, k, lambdas, deltas, sample, None,
                          np.sort(rng.choice(n, min(n, references), replace=False)))}


def exposure_of(xb: np.ndarray, identities: list[str], hub: np.ndarray | None, names: list[str], k: int,
                lambdas: Sequence[float], deltas: Sequence[float], sample: int | None, gallery_lambda: float | None,
                references: np.ndarray | None = None, quality: np.ndarray | None = None) -> dict[str, Any]:
    """Every policy on the same visitors of these faces; r_g computed (exactly, or over `references`)
    when `hub` is None; the ledger runs at the gallery's λ (else the chosen one); fair near-ties go to
    the better portrait where `quality` is given, as in the kiosk."""
    persons = person_numbers(identities)
    index = faiss.IndexFlatIP(xb.shape[1])  # exact, so policies are compared and not index errors
    index.add(xb)
    started = time.perf_counter()
    hub_from = "gallery"
    if hub is None:
        hub = hubness(index, xb, persons, references=references)
        hub_from = f"computed in {time.perf_counter() - started:.1f} s over " + \
            (f"a sample of {len(references)} reference faces" if references is not None else "the whole gallery")
    found = visitors(index, xb, persons, np.random.default_rng(0), sample, k)
    started = time.perf_counter()
    if gallery_lambda is None:
        swept = lambda_sweep(lambdas)
        gallery_lambda = choose_fairness(compare(found, persons, hub, k, swept, quality=quality), lambdas)
    chosen = policies(lambdas, gallery_lambda, deltas)
    results = compare(found, persons, hub, k, chosen, quality=quality)
    _, person_of = np.unique(persons, return_inverse=True)
    for result in results.values():
        counts = result.pop("counts")
        per_person = np.bincount(person_of, weights=counts).astype(np.int64)
        top = int(np.argmax(counts))
        result["most_shown"] = most_shown(top, counts, found, persons, hub, names[top])
        result["most_shown_person"] = most_shown_person(int(np.argmax(per_person)), per_person, person_of, names)
        result["lorenz"] = lorenz(counts)
        result["lorenz_per_person"] = lorenz(per_person)
        result["count_histogram"] = np.bincount(counts).tolist()
    showings, people = len(found.strangers[1]) * k, int(person_of.max()) + 1
    return {"vectors": len(xb), "people": people, "k": k, "ledger_lambda": gallery_lambda,
            "even_floor": even_floor(len(xb), showings), "even_floor_per_person": even_floor(people, showings),
            "visitors": {"strangers": len(found.strangers[1]), "probes": len(found.probes[1]),
                         "stranger_persons": len(np.unique(found.stranger_persons))},
            "hubness_from": hub_from, "policy_seconds": round(time.perf_counter() - started, 2), "policies": results}
