"""How attention spreads over a gallery under each matching policy, measured with the gallery's own
faces as visitors: the build's hubness step (r_P and the λ it chooses) and `bench exposure` share
this measurement (face_engine.fairness holds the policies themselves). Exposure is counted per face
and per person; the policies aim at the person's (a person with 40 photos is one person).

Visitors: (a) every gallery face in turn, their own person left out: a stranger to the gallery, for
exposure and for the strangers' top-1 score loss (averaged per person, so that a person with 530
photos counts once); (c) in-gallery probes (a face of someone with 2+ faces, only itself left out),
for identity rank-1. A policy with the ledger replays the visitors in random order, as a day at the
booth, and its loss is measured on that day, with the counts the day had built up. Rank-1 and the
loss are read from what the visitor sees first: the shown face with the highest raw score.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import faiss
import numpy as np

from face_engine.fairness import (
    EXACT,
    HUBNESS_FLOOR_SECONDS,
    HUBNESS_K,
    HUBNESS_SHARE,
    LAMBDAS,
    SHORTLIST,
    SHORTLIST_GROWTH,
    FairPolicy,
    MatchPolicy,
    People,
    Progress,
    gini,
    hubness,
    person_numbers,
    reference_count,
    search_others,
)
from face_engine.gallery import FairnessReport

RANK1_SLACK = 0.001  # the chosen λ keeps identity rank-1 within 0.1 pt of exact
MAX_SCORE_LOSS = 0.01  # and costs strangers at most this much raw top-1 score
BUILD_VISITORS = 2000  # visitors of each kind the build measures λ on: cheap at 10^6


class Replayed(NamedTuple):
    """A policy as the measurement replays it: with the kiosk's ledger or without."""

    policy: MatchPolicy
    ledger: bool = False

    @property
    def name(self) -> str:
        return self.policy.label(self.ledger)


def lambda_sweep(lambdas: Sequence[float] = LAMBDAS) -> list[Replayed]:
    """Exact, then the fair policy at each λ, without the ledger."""
    return [Replayed(EXACT)] + [Replayed(FairPolicy(lam)) for lam in lambdas]


@dataclass
class Visitors:
    """The shortlists (raw scores D, ids I, best first; -1 where short) of each kind of visitor."""

    strangers: tuple[np.ndarray, np.ndarray]  # (a): exposure and score loss
    stranger_persons: np.ndarray              # each stranger's person, for the loss per person
    probes: tuple[np.ndarray, np.ndarray]     # (c): rank-1
    probe_persons: np.ndarray


def visitors(index: faiss.Index, xb: np.ndarray, persons: np.ndarray, rng: np.random.Generator,
             sample: int | None = None, people_wanted: int = 1) -> Visitors:
    """Shortlists for both kinds of visitor; `sample` caps how many of each (None: all). A shortlist is
    SHORTLIST faces, searched again SHORTLIST_GROWTH times deeper until it holds `people_wanted`
    people, as the kiosk's grows (a person with many near photos would otherwise fill it)."""
    people = People.of(persons)
    n = len(xb)
    strangers = np.arange(n) if sample is None or sample >= n else np.sort(rng.choice(n, sample, replace=False))
    probes = np.flatnonzero(people.photos_of(persons) >= 2)
    if sample is not None and sample < len(probes):
        probes = np.sort(rng.choice(probes, sample, replace=False))

    def others(rows: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        D, I = search_others(index, xb[strangers[rows]], persons[strangers[rows]], people, depth)
        return np.nan_to_num(D, nan=-np.inf), I

    def all_but_itself(rows: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        return _leave_one_out(index, xb, probes[rows], depth)

    return Visitors(_grown(others, len(strangers), persons, people_wanted, n), persons[strangers],
                    _grown(all_but_itself, len(probes), persons, people_wanted, n), persons[probes])


Search = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]  # the shortlists of some visitors, `depth` long


def _grown(search: Search, visitors: int, persons: np.ndarray, people_wanted: int, faces: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """D, I of every visitor's shortlist (-inf and -1 past its end): SHORTLIST long, and longer for
    those short of `people_wanted` people until they are not or hold every face there is."""
    depth = min(SHORTLIST, faces)
    D, I = search(np.arange(visitors), depth)
    short = _short_of_people(I, persons, people_wanted, depth)
    while short.any() and depth < faces:
        depth = min(faces, depth * SHORTLIST_GROWTH)
        rows = np.flatnonzero(short)
        found_D, found_I = search(rows, depth)
        D = np.pad(D, ((0, 0), (0, depth - D.shape[1])), constant_values=-np.inf)
        I = np.pad(I, ((0, 0), (0, depth - I.shape[1])), constant_values=-1)
        D[rows], I[rows] = found_D, found_I
        short[rows] = _short_of_people(found_I, persons, people_wanted, depth)
    return D, I


def _short_of_people(I: np.ndarray, persons: np.ndarray, wanted: int, depth: int) -> np.ndarray:
    """Rows holding fewer than `wanted` people that a deeper search could lengthen (all `depth` found)."""
    nobody = np.iinfo(np.int64).min  # sorts before every person
    who = np.sort(np.where(I >= 0, persons[np.maximum(I, 0)], nobody), axis=1)
    found = who != nobody
    people = found[:, 0] + np.sum(found[:, 1:] & (who[:, 1:] != who[:, :-1]), axis=1)
    short: np.ndarray = (people < wanted) & (np.sum(I >= 0, axis=1) == depth)
    return short


def _leave_one_out(index: faiss.Index, xb: np.ndarray, probes: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    D, I = index.search(xb[probes], min(index.ntotal, depth + 1))
    itself = I == probes[:, None]
    order = np.argsort(itself, axis=1, kind="stable")[:, :depth]
    return np.take_along_axis(D, order, axis=1), np.take_along_axis(I, order, axis=1)


class Shown(NamedTuple):
    """What a replay showed: showings of each gallery face, each visitor's displayed first (the shown
    face with the highest raw score: -1 and -inf when nothing was shown) and how many visitors saw
    fewer people than asked."""

    counts: np.ndarray
    top_id: np.ndarray
    top_score: np.ndarray
    short: int


def shown(D: np.ndarray, I: np.ndarray, persons: np.ndarray, hub: np.ndarray, k: int, replayed: Replayed,
          order: np.ndarray | None = None, quality: np.ndarray | None = None) -> Shown:
    """What each visitor (replayed in `order` when given) is shown, as the kiosk shows it: the policy
    picks who, the visitor sees them by raw score, and with the ledger each pick counts once more for
    its PERSON. With `quality` (each gallery face's portrait quality), fair near-ties go to the better
    portrait, as in the kiosk."""
    counts = np.zeros(len(persons), dtype=np.int64)
    _, person_of = np.unique(persons, return_inverse=True)
    person_counts = np.zeros(person_of.max() + 1 if len(persons) else 0, dtype=np.int64)
    top_id = np.full(len(I), -1, dtype=np.int64)
    top_score = np.full(len(I), -np.inf)
    wanted = min(k, len(person_counts) - 1)  # a stranger's own person is not in their shortlist
    short = 0
    for visitor in (range(len(I)) if order is None else order):
        ids = I[visitor][I[visitor] >= 0]
        picks = replayed.policy.pick(D[visitor][: len(ids)], persons[ids].tolist(), hub[ids], k,
                                     counts=person_counts[person_of[ids]] if replayed.ledger else None,
                                     quality=None if quality is None else quality[ids])
        chosen = ids[[pick.position for pick in picks]]
        counts[chosen] += 1
        person_counts[person_of[chosen]] += 1
        short += len(picks) < wanted
        if picks:
            first = max(picks, key=lambda pick: pick.score)
            top_id[visitor], top_score[visitor] = ids[first.position], first.score
    return Shown(counts, top_id, top_score, short)


def measure(found: Visitors, persons: np.ndarray, hub: np.ndarray, k: int, replayed: Replayed,
            rng: np.random.Generator, quality: np.ndarray | None = None) -> dict[str, Any]:
    """The policy's keys on these visitors, per face and per person (what the policy aims at), with
    its exposure counts per face under "counts" and the strangers' displayed top-1 raw scores under
    "top1". Rank-1 is the in-gallery probes' displayed first among k shown."""
    D, I = found.strangers
    order = rng.permutation(len(I)) if replayed.ledger else None
    started = time.perf_counter()
    strangers = shown(D, I, persons, hub, k, replayed, order, quality)
    ms_per_visitor = (time.perf_counter() - started) * 1e3 / max(len(I), 1)
    probe_top = shown(*found.probes, persons, hub, k, replayed, quality=quality).top_id
    counts = strangers.counts
    _, person_of = np.unique(persons, return_inverse=True)
    per_person = np.bincount(person_of, weights=counts).astype(np.int64)
    return {
        "gini": gini(counts), "gini_per_person": gini(per_person),
        "share_never_shown": float(np.mean(counts == 0)),
        "share_never_shown_per_person": float(np.mean(per_person == 0)),
        "max_count": int(counts.max()), "max_count_per_person": int(per_person.max()),
        "rank1": float(np.mean((probe_top >= 0) & (persons[probe_top] == found.probe_persons)))
        if len(probe_top) else None,
        "share_short_lists": strangers.short / max(len(I), 1),
        "top1": strangers.top_score, "counts": counts, "choose_ms_per_visitor": round(ms_per_visitor, 4),
    }


def compare(found: Visitors, persons: np.ndarray, hub: np.ndarray, k: int, chosen: Sequence[Replayed],
            seed: int = 0, quality: np.ndarray | None = None) -> dict[str, dict[str, Any]]:
    """Every policy measured on the same visitors (the first must be exact); the strangers' displayed
    top-1 score loss against exact's, per person (`stranger_score_loss`) and per face."""
    results = {replayed.name: measure(found, persons, hub, k, replayed, np.random.default_rng(seed), quality)
               for replayed in chosen}
    baseline = results["exact"]["top1"]
    _, person = np.unique(found.stranger_persons, return_inverse=True)
    for result in results.values():
        top1 = result.pop("top1")
        both = np.isfinite(baseline) & np.isfinite(top1)
        drop = np.where(both, baseline - np.where(both, top1, 0), 0)
        faces_per_person = np.bincount(person, weights=both)
        per_person = np.bincount(person, weights=drop)[faces_per_person > 0] / faces_per_person[faces_per_person > 0]
        result["stranger_score_loss"] = float(per_person.mean()) if len(per_person) else 0.0
        result["stranger_score_loss_per_face"] = float(drop[both].mean()) if both.any() else 0.0
    return results


def choose_fairness(results: dict[str, dict[str, Any]], lambdas: Sequence[float] = LAMBDAS) -> float:
    """The λ (of the sweep `results` measured: lambda_sweep(lambdas)) with the lowest Gini per
    person whose rank-1 stays within RANK1_SLACK of exact and whose strangers lose at most
    MAX_SCORE_LOSS of top-1 score (λ 0 always qualifies)."""
    exact, *swept = lambda_sweep(lambdas)
    exact_rank1 = results[exact.name]["rank1"] or 0.0
    fine = [(results[fair.name]["gini_per_person"], float(lam)) for lam, fair in zip(lambdas, swept, strict=True)
            if (results[fair.name]["rank1"] or 0.0) >= exact_rank1 - RANK1_SLACK
            and results[fair.name]["stranger_score_loss"] <= MAX_SCORE_LOSS]
    return float(min(fine)[1]) if fine else 0.0


def gallery_fairness(index: faiss.Index, xb: np.ndarray, identities: list[str], k: int, index_seconds: float,
                     progress: Progress | None = None, quality: np.ndarray | None = None
                     ) -> tuple[np.ndarray, FairnessReport]:
    """The build's step: r_P of every face's person (exact k-NN over the whole gallery with its own index when
    that fits in HUBNESS_SHARE of the index stage's `index_seconds` or HUBNESS_FLOOR_SECONDS, else
    over a random sample of reference faces that does) and the λ chosen on BUILD_VISITORS visitors of
    each kind, replayed as the kiosk shows them (with each face's portrait `quality` when given): the
    manifest's `fairness`."""
    persons = person_numbers(identities)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    references = reference_count(index, xb, persons, max(HUBNESS_SHARE * index_seconds, HUBNESS_FLOOR_SECONDS))
    sample = None if references is None else np.sort(rng.choice(len(xb), references, replace=False))
    hub = hubness(index, xb, persons, HUBNESS_K, progress, sample)
    seconds = time.perf_counter() - started
    nearest = "each person's k nearest other people"
    method = (f"{nearest} over the whole gallery, with its own index ({_describe(index)})" if sample is None
              else f"{nearest} among a random sample of {references} reference faces (exact search; the whole "
              f"gallery would take over {HUBNESS_SHARE:.0%} of the index stage)")
    found = visitors(index, xb, persons, rng, BUILD_VISITORS, k)
    results = compare(found, persons, hub, k, lambda_sweep(), quality=quality)
    return hub, FairnessReport(k=HUBNESS_K, seconds=round(seconds, 2), method=method, references=references or len(xb),
                               lambda_=choose_fairness(results), choice_visitors=BUILD_VISITORS,
                               choice_seconds=round(time.perf_counter() - started - seconds, 2),
                               measured={name: {key: value for key, value in result.items() if key != "counts"}
                                         for name, result in results.items()})


def _describe(index: faiss.Index) -> str:
    kind = type(faiss.downcast_index(index)).__name__
    return f"{kind}, exact" if kind.startswith("IndexFlat") else f"{kind}, approximate"
