"""`bench exposure`: how fairly attention spreads over a gallery, policy beside policy, on the same
visitors (face_engine.fairness holds the policies).

Visitors: (a) every gallery face in turn, their own person left out (a visitor is not in the
gallery), for exposure; (b) held-out strangers (whole people, their own person left out of the
results), for the raw-score loss of the shown best match against exact's; (c) in-gallery probes
(a face of someone with 2+ faces, only itself left out), for identity rank-1. Per policy: Gini of
how often each face is shown in the top k (and per person), the share never shown, the most shown,
rank-1 and the strangers' top-1 score loss. The ledger policy replays the visitors in random order,
as a day at the booth, each slot going to the least-shown face within delta of the best.

The build uses the same measurement, on a sample of visitors, to choose the gallery's λ.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from face_engine.fairness import (
    HUBNESS_FLOOR_SECONDS,
    HUBNESS_K,
    HUBNESS_SHARE,
    LAMBDAS,
    LEDGER_DELTA,
    SHORTLIST,
    People,
    Progress,
    exact,
    gini,
    hubness,
    person_numbers,
    reference_count,
    rerank,
    search_others,
)
from index_builder.bench.common import gallery_arrays
from index_builder.indexes import held_out_strangers

RANK1_SLACK = 0.001  # the chosen λ keeps identity rank-1 within 0.1 pt of exact
MAX_SCORE_LOSS = 0.01  # and costs strangers at most this much raw top-1 score
LORENZ_POINTS = 101
SYNTHETIC_REFERENCES = 100_000  # reference faces for r_g of a synthetic gallery
BUILD_VISITORS = 2000  # visitors of each kind the build measures λ on: cheap at 10^6


@dataclass(frozen=True)
class Policy:
    name: str
    fairness: float | None  # λ; None: exact
    delta: float = 0.0      # > 0: with the ledger


def policies(lambdas: Sequence[float] = LAMBDAS, ledger_fairness: float = 0.5,
             deltas: Sequence[float] = (LEDGER_DELTA,)) -> list[Policy]:
    return ([Policy("exact", None)] + [Policy(f"fair_{lam:g}", lam) for lam in lambdas]
            + [Policy(f"fair_{ledger_fairness:g}_ledger_{delta:g}", ledger_fairness, delta) for delta in deltas])


@dataclass
class Visitors:
    """The shortlists (raw scores D, ids I, best first; -1 where short) of each kind of visitor."""

    strangers: tuple[np.ndarray, np.ndarray]     # (a): exposure
    held_out: tuple[np.ndarray, np.ndarray]      # (b): score loss
    probes: tuple[np.ndarray, np.ndarray]        # (c): rank-1
    probe_persons: np.ndarray


def visitors(index: faiss.Index, xb: np.ndarray, persons: np.ndarray, identities: list[str],
             rng: np.random.Generator, sample: int | None = None) -> Visitors:
    """Shortlists for every kind of visitor; `sample` caps how many of each (None: all)."""
    people = People.of(persons)
    n = len(xb)
    exposure = np.arange(n) if sample is None or sample >= n else np.sort(rng.choice(n, sample, replace=False))
    held = held_out_strangers(identities, rng)
    several = np.flatnonzero(people.photos_of(persons) >= 2)
    probes = several
    if sample is not None and sample < len(several):
        probes = np.sort(rng.choice(several, sample, replace=False))
    return Visitors(_shortlists(index, xb, exposure, persons, people), _shortlists(index, xb, held, persons, people),
                    _leave_one_out(index, xb, probes), persons[probes])


def _shortlists(index: faiss.Index, xb: np.ndarray, queries: np.ndarray, persons: np.ndarray,
                people: People) -> tuple[np.ndarray, np.ndarray]:
    D, I = search_others(index, xb[queries], persons[queries], people, SHORTLIST)
    return np.nan_to_num(D, nan=-np.inf), I


def _leave_one_out(index: faiss.Index, xb: np.ndarray, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    D, I = index.search(xb[probes], min(index.ntotal, SHORTLIST + 1))
    itself = I == probes[:, None]
    order = np.argsort(itself, axis=1, kind="stable")[:, :SHORTLIST]
    return np.take_along_axis(D, order, axis=1), np.take_along_axis(I, order, axis=1)


def shown(D: np.ndarray, I: np.ndarray, persons: np.ndarray, hub: np.ndarray, k: int, policy: Policy,
          order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each visitor (replayed in `order` when given), the faces shown: counts per gallery face,
    and each visitor's top-1 id and raw score (-1 and -inf when nothing was shown)."""
    counts = np.zeros(len(persons), dtype=np.int64)
    top_id = np.full(len(I), -1, dtype=np.int64)
    top_score = np.full(len(I), -np.inf)
    for visitor in (range(len(I)) if order is None else order):
        ids = I[visitor][I[visitor] >= 0]
        scores = D[visitor][: len(ids)]
        who = persons[ids].tolist()
        if policy.fairness is None:
            picks = exact(scores, who, k, distinct=True)
        else:
            seen = counts[ids] if policy.delta else None
            picks = rerank(scores, who, hub[ids], k, policy.fairness, seen, policy.delta)
        for pick in picks:
            counts[ids[pick.position]] += 1
        if picks:
            top_id[visitor], top_score[visitor] = ids[picks[0].position], picks[0].score
    return counts, top_id, top_score


def measure(found: Visitors, persons: np.ndarray, hub: np.ndarray, k: int, policy: Policy,
            rng: np.random.Generator) -> dict[str, Any]:
    """The policy's keys on these visitors, with its exposure counts under "counts"."""
    D, I = found.strangers
    order = rng.permutation(len(I)) if policy.delta else None
    started = time.perf_counter()
    counts, _, _ = shown(D, I, persons, hub, k, policy, order)
    ms_per_visitor = (time.perf_counter() - started) * 1e3 / max(len(I), 1)
    _, probe_top, _ = shown(*found.probes, persons, hub, 1, policy)
    _, _, held_score = shown(*found.held_out, persons, hub, 1, policy)
    _, per_person = np.unique(persons, return_inverse=True)
    return {
        "gini": gini(counts), "gini_per_person": gini(np.bincount(per_person, weights=counts)),
        "share_never_shown": float(np.mean(counts == 0)), "max_count": int(counts.max()),
        "rank1": float(np.mean((probe_top >= 0) & (persons[probe_top] == found.probe_persons)))
        if len(probe_top) else None,
        "held_out_top1": held_score, "counts": counts, "choose_ms_per_visitor": round(ms_per_visitor, 4),
    }


def compare(found: Visitors, persons: np.ndarray, hub: np.ndarray, k: int, chosen: Sequence[Policy],
            seed: int = 0) -> dict[str, dict[str, Any]]:
    """Every policy measured on the same visitors; stranger_score_loss against exact's top-1."""
    results = {policy.name: measure(found, persons, hub, k, policy, np.random.default_rng(seed)) for policy in chosen}
    baseline = results["exact"]["held_out_top1"]
    for result in results.values():
        top1 = result.pop("held_out_top1")
        both = np.isfinite(baseline) & np.isfinite(top1)
        result["stranger_score_loss"] = float(np.mean(baseline[both] - top1[both])) if both.any() else 0.0
    return results


def choose_fairness(results: dict[str, dict[str, Any]], chosen: Sequence[Policy]) -> float:
    """The λ with the lowest Gini whose rank-1 stays within RANK1_SLACK of exact and whose strangers
    lose at most MAX_SCORE_LOSS of top-1 score (λ 0 always qualifies)."""
    exact_rank1 = results["exact"]["rank1"] or 0.0
    fine = [(results[p.name]["gini"], p.fairness) for p in chosen if p.fairness is not None and not p.delta
            and (results[p.name]["rank1"] or 0.0) >= exact_rank1 - RANK1_SLACK
            and results[p.name]["stranger_score_loss"] <= MAX_SCORE_LOSS]
    return float(min(fine)[1]) if fine else 0.0


def gallery_fairness(index: faiss.Index, xb: np.ndarray, identities: list[str], k: int, index_seconds: float,
                     progress: Progress | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The build's step: r_g of every face (exact k-NN over the whole gallery with its own index when
    that fits in HUBNESS_SHARE of the index stage's `index_seconds` or HUBNESS_FLOOR_SECONDS, else
    over a random sample of reference faces that does) and the λ chosen on BUILD_VISITORS visitors of each kind: the
    manifest's `fairness`."""
    persons = person_numbers(identities)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    references = reference_count(index, xb, persons, max(HUBNESS_SHARE * index_seconds, HUBNESS_FLOOR_SECONDS))
    sample = None if references is None else np.sort(rng.choice(len(xb), references, replace=False))
    hub = hubness(index, xb, persons, HUBNESS_K, progress, sample)
    seconds = time.perf_counter() - started
    method = (f"k-NN of other people over the whole gallery, with its own index ({_describe(index)})"
              if sample is None else f"k-NN of other people among a random sample of {references} reference faces "
              f"(exact search; the whole gallery would take over {HUBNESS_SHARE:.0%} of the index stage)")
    found = visitors(index, xb, persons, identities, rng, BUILD_VISITORS)
    chosen = policies()[:-1]
    results = compare(found, persons, hub, k, chosen)
    return hub, {"k": HUBNESS_K, "seconds": round(seconds, 2), "method": method, "references": references or len(xb),
                 "lambda": choose_fairness(results, chosen), "choice_visitors": BUILD_VISITORS,
                 "choice_seconds": round(time.perf_counter() - started - seconds, 2),
                 "measured": {name: {key: value for key, value in result.items() if key != "counts"}
                              for name, result in results.items()}}


def _describe(index: faiss.Index) -> str:
    kind = type(faiss.downcast_index(index)).__name__
    return f"{kind}, exact" if kind.startswith("IndexFlat") else f"{kind}, approximate"


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


def lorenz(counts: np.ndarray) -> list[float]:
    """The share of all showings taken by the least-shown faces, at LORENZ_POINTS even steps."""
    cumulative = np.concatenate([[0.0], np.cumsum(np.sort(counts))])
    total = cumulative[-1] or 1.0
    at = np.linspace(0, len(counts), LORENZ_POINTS).round().astype(int)
    curve: list[float] = (cumulative[at] / total).round(4).tolist()
    return curve


def run_exposure(gallery_path: str, k: int, lambdas: Sequence[float] = LAMBDAS,
                 deltas: Sequence[float] = (LEDGER_DELTA,), sample: int | None = None) -> dict[str, Any]:
    """The policies compared on a real gallery, with the hubness and λ its build stored."""
    gallery, xb, identities = gallery_arrays(gallery_path)
    names = dict(gallery.db.execute("SELECT id, display_name FROM faces"))
    result = exposure_of(xb, identities, gallery.hubness, [names[i] for i in range(len(xb))], k, lambdas, deltas,
                         sample, float(gallery.manifest.fairness.get("lambda", 0.5)))
    return {"gallery": str(gallery.root), "manifest_fairness": gallery.manifest.fairness, **result}


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
                references: np.ndarray | None = None) -> dict[str, Any]:
    """Every policy on the same visitors of these faces; r_g computed (exactly, or over `references`)
    when `hub` is None; the ledger runs at the gallery's λ (else the chosen one)."""
    persons = person_numbers(identities)
    index = faiss.IndexFlatIP(xb.shape[1])  # exact, so policies are compared and not index errors
    index.add(xb)
    started = time.perf_counter()
    hub_from = "gallery"
    if hub is None:
        hub = hubness(index, xb, persons, references=references)
        hub_from = f"computed in {time.perf_counter() - started:.1f} s over " + \
            (f"a sample of {len(references)} reference faces" if references is not None else "the whole gallery")
    found = visitors(index, xb, persons, identities, np.random.default_rng(0), sample)
    started = time.perf_counter()
    if gallery_lambda is None:
        swept = policies(lambdas, 0.5, ())
        gallery_lambda = choose_fairness(compare(found, persons, hub, k, swept), swept)
    chosen = policies(lambdas, gallery_lambda, deltas)
    results = compare(found, persons, hub, k, chosen)
    for result in results.values():
        counts = result.pop("counts")
        top = int(np.argmax(counts))
        result["most_shown"] = most_shown(top, counts, found, persons, hub, names[top])
        result["lorenz"] = lorenz(counts)
        result["count_histogram"] = np.bincount(counts).tolist()
    return {"vectors": len(xb), "k": k, "ledger_lambda": gallery_lambda,
            "visitors": {"strangers": len(found.strangers[1]), "held_out": len(found.held_out[1]),
                         "probes": len(found.probes[1])},
            "hubness_from": hub_from, "policy_seconds": round(time.perf_counter() - started, 2), "policies": results}
