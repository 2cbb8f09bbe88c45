"""Fair attention: hubness scores of gallery people, and the matching policies that pick the shown
faces (exact, and the fair one that uses those scores).

Fairness is owed to people, not to photos: a person with 40 photos is one person. Raw nearest
neighbours in high dimensions make hubs: a few people sit close to everyone and take the attention,
and a person with many photos covers more of the face space, so is nearer to more visitors. Local
scaling (CSLS) on people lowers the score of each face of person P by P's hubness r_P, the mean
similarity of P to its k nearest OTHER people (one person's nearness to another: their closest pair
of faces), so many photos raise r_P as they raise P's chance of being near. The fair policy shows
the closest person (what the visitor came for: their "closest" is true), and picks the other places
from a raw shortlist by cos - λ·r_P, each person once, breaking near-ties (in the kiosk) toward the
less-shown PEOPLE: the exposure ledger counts people, and moves a smaller match within a wide margin
of the best fair score left (where attention spreads). The policy decides who is shown, never the
order: the visitor sees the shown people by raw similarity, best first.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, NamedTuple

import faiss
import numpy as np

from face_engine.quality import TIE_EPSILON, near_tie_order

HUBNESS_K = 10
SHORTLIST = 50  # raw neighbours re-ranked per visitor
# a shortlist short of people (one person's many near photos fill it) is searched again this many
# times longer: the kiosk's (face_engine.query.shortlist) and the replayed visitors' (index_builder.attention)
SHORTLIST_GROWTH = 4
CANDIDATES_PER_RESULT = 5  # searched per wanted result when each person may appear only once
LAMBDAS = (0.0, 0.25, 0.5, 0.75, 1.0)
NEIGHBOURS_PER_PERSON = 3  # faces searched per wanted nearest person (more where one person crowds them)
DEPTH_CAP = 256  # extra search depth for one person's own photos; rows still short are searched wider
BATCH = 4096
HUBNESS_SHARE = 0.2  # hubness may take at most this share of the build's index stage,
HUBNESS_FLOOR_SECONDS = 10.0  # or this long: exact below it (all of LFW's 13k faces take ~3 s)
MIN_REFERENCES = 2_000  # the smallest sample of reference faces for hubness (about 6,000 fit at 10^6 here)
TIMED_QUERIES = 1024  # queries timed to project hubness's cost
LEDGER_DELTA = 0.0  # raw-score margin within which a ledger may swap the closest person for a less-shown one
LEDGER_DELTA_MORE = 0.15  # fair-score margin for the smaller matches (LFW: Gini per person 0.57 -> 0.08)

Progress = Callable[[int], None]


def person_numbers(identities: Sequence[str]) -> np.ndarray:
    """One integer per face, equal for faces of the same named person; an unnamed face is a person
    of its own."""
    numbers: dict[str, int] = {}
    out = np.empty(len(identities), dtype=np.int64)
    for i, name in enumerate(identities):
        out[i] = numbers.setdefault(name, len(numbers)) if name else -1 - i
    return out


class People(NamedTuple):
    """Each gallery face's person number, and the photo count of that person."""

    persons: np.ndarray
    unique: np.ndarray  # the person numbers, sorted
    counts: np.ndarray  # the photos of each

    @classmethod
    def of(cls, persons: np.ndarray) -> People:
        unique, counts = np.unique(persons, return_counts=True)
        return cls(persons, unique, counts)

    def photos_of(self, persons: np.ndarray) -> np.ndarray:
        """How many gallery faces each of `persons` has (0 for a person not in the gallery)."""
        at = np.minimum(np.searchsorted(self.unique, persons), len(self.unique) - 1)
        return np.where(self.unique[at] == persons, self.counts[at], 0)


def search_others(index: faiss.Index, xq: np.ndarray, query_persons: np.ndarray, people: People,
                  depth: int) -> tuple[np.ndarray, np.ndarray]:
    """D, I (nq, depth) of the nearest gallery faces of people other than each query's own (D nan
    and I -1 where the gallery has fewer). Searched to `depth` plus the largest person's photo count
    (capped); the few rows that come up short are searched again, wider."""
    n = index.ntotal
    width = min(n, depth + min(int(people.counts.max()), DEPTH_CAP))
    found_D, found_I = index.search(xq, width)
    D, I = _keep_others(found_D, found_I, query_persons, people.persons, depth)
    own = people.photos_of(query_persons)
    short = (width < n) & (np.sum(I >= 0, axis=1) < np.minimum(depth, n - own))
    while short.any():
        width = min(n, width * 4)
        rows = np.flatnonzero(short)
        found_D, found_I = index.search(xq[rows], width)
        D[rows], I[rows] = _keep_others(found_D, found_I, query_persons[rows], people.persons, depth)
        short[rows] = (width < n) & (np.sum(I[rows] >= 0, axis=1) < np.minimum(depth, n - own[rows]))
    return D, I


def _keep_others(D: np.ndarray, I: np.ndarray, query_persons: np.ndarray, persons: np.ndarray,
                 depth: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `depth` results of other people in each row, in rank order."""
    valid = (I >= 0) & (persons[np.maximum(I, 0)] != query_persons[:, None])
    order = np.argsort(~valid, axis=1, kind="stable")[:, :depth]  # valid ones first, in rank order
    kept = np.take_along_axis(valid, order, axis=1)
    return (np.where(kept, np.take_along_axis(D, order, axis=1), np.float32(np.nan)),
            np.where(kept, np.take_along_axis(I, order, axis=1), -1))


def hubness(index: faiss.Index, xb: np.ndarray, persons: np.ndarray, k: int = HUBNESS_K,
            progress: Progress | None = None, references: np.ndarray | None = None) -> np.ndarray:
    """r_P of every face's person (float32, gallery order; the same for every face of a person): the
    mean similarity of P to its k nearest other people, a person's nearness to another being their
    closest pair of faces. Found in batches with the gallery's own index; or, given the positions of
    a sample of `references`, among the people of those faces (exact search)."""
    if references is not None:
        index = faiss.IndexFlatIP(xb.shape[1])
        index.add(np.ascontiguousarray(xb[references], dtype=np.float32))
    people = People.of(persons if references is None else persons[references])
    S = np.full((len(xb), k), np.nan, dtype=np.float32)
    W = np.zeros((len(xb), k), dtype=np.int64)
    for start in range(0, len(xb), BATCH):
        rows = slice(start, start + BATCH)
        S[rows], W[rows] = nearest_people(index, np.ascontiguousarray(xb[rows], dtype=np.float32), persons[rows],
                                          people, k)
        if progress:
            progress(len(S[rows]))
    return _per_person_mean_of_nearest(persons, S, W, k)


def nearest_people(index: faiss.Index, xq: np.ndarray, query_persons: np.ndarray, people: People,
                   k: int) -> tuple[np.ndarray, np.ndarray]:
    """S, W (nq, k): each query's k nearest other people, best first (S the similarity of the
    person's nearest face, W the person number; S nan where the gallery has fewer). Searched
    NEIGHBOURS_PER_PERSON faces deep per person; rows whose faces crowd out people are searched wider."""
    depth = min(index.ntotal, k * NEIGHBOURS_PER_PERSON)
    D, I = search_others(index, xq, query_persons, people, depth)
    S, W = _distinct_people(D, I, people.persons, k)
    short = np.isnan(S[:, -1]) & (np.sum(I >= 0, axis=1) == depth)  # all `depth` found, but not k people
    while short.any() and depth < index.ntotal:
        depth = min(index.ntotal, depth * 4)
        rows = np.flatnonzero(short)
        D, I = search_others(index, xq[rows], query_persons[rows], people, depth)
        S[rows], W[rows] = _distinct_people(D, I, people.persons, k)
        short[rows] = np.isnan(S[rows, -1]) & (np.sum(I >= 0, axis=1) == depth)
    return S, W


def _distinct_people(D: np.ndarray, I: np.ndarray, persons: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's first k different people in rank order (a person's first face is its nearest)."""
    valid = I >= 0
    who = np.where(valid, persons[np.maximum(I, 0)], 0)
    by_person = np.argsort(who, axis=1, kind="stable")  # each person's faces together, in rank order
    sorted_who = np.take_along_axis(who, by_person, axis=1)
    repeat = np.zeros_like(valid)
    np.put_along_axis(repeat, by_person[:, 1:], sorted_who[:, 1:] == sorted_who[:, :-1], axis=1)
    first = valid & ~repeat
    order = np.argsort(~first, axis=1, kind="stable")[:, :k]
    kept = np.take_along_axis(first, order, axis=1)
    S = np.full((len(D), k), np.nan, dtype=np.float32)
    W = np.zeros((len(D), k), dtype=np.int64)
    S[:, : order.shape[1]] = np.where(kept, np.take_along_axis(D, order, axis=1), np.nan)
    W[:, : order.shape[1]] = np.where(kept, np.take_along_axis(who, order, axis=1), 0)
    return S, W


def _per_person_mean_of_nearest(persons: np.ndarray, S: np.ndarray, W: np.ndarray, k: int) -> np.ndarray:
    """For each face, its person's r_P: the k nearest other people over all of that person's faces'
    nearest people (each neighbour once, at its nearest), averaged; 0 where none was found."""
    found = ~np.isnan(S)
    p, q, s = np.repeat(persons, S.shape[1])[found.ravel()], W[found], S[found].astype(np.float64)
    order = np.lexsort((-s, q, p))  # by person, then neighbour, nearest first
    p, q, s = p[order], q[order], s[order]
    first = np.ones(len(p), dtype=bool)
    first[1:] = (p[1:] != p[:-1]) | (q[1:] != q[:-1])
    p, s = p[first], s[first]
    order = np.lexsort((-s, p))  # each person's neighbours, nearest first
    p, s = p[order], s[order]
    starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
    rank = np.arange(len(p)) - np.repeat(starts, np.diff(np.r_[starts, len(p)]))
    owners, inverse = np.unique(p[rank < k], return_inverse=True)
    if not len(owners):
        return np.zeros(len(persons), dtype=np.float32)
    means = np.bincount(inverse, weights=s[rank < k]) / np.bincount(inverse)
    at = np.minimum(np.searchsorted(owners, persons), len(owners) - 1)
    return np.where(owners[at] == persons, means[at], 0.0).astype(np.float32)


def reference_count(index: faiss.Index, xb: np.ndarray, persons: np.ndarray, budget_seconds: float,
                    k: int = HUBNESS_K) -> int | None:
    """How many reference faces hubness can afford within `budget_seconds`: None when the exact
    search over the whole gallery fits (projected from one timed batch), else a sample size (at
    least MIN_REFERENCES), projected from one batch timed against a flat sample."""
    n = len(xb)
    rows = np.arange(min(n, TIMED_QUERIES))
    started = time.perf_counter()
    search_others(index, xb[rows], persons[rows], People.of(persons), k)
    if (time.perf_counter() - started) * n / len(rows) <= budget_seconds or n <= MIN_REFERENCES:
        return None
    sample = np.arange(MIN_REFERENCES)
    flat = faiss.IndexFlatIP(xb.shape[1])
    flat.add(np.ascontiguousarray(xb[sample], dtype=np.float32))
    started = time.perf_counter()
    search_others(flat, xb[rows], persons[rows], People.of(persons[sample]), k)
    per_pair = (time.perf_counter() - started) / (len(rows) * MIN_REFERENCES)
    return int(min(n, max(MIN_REFERENCES, budget_seconds / (per_pair * n))))


class Pick(NamedTuple):
    """A shown face: its place in the shortlist, raw score and fair score."""

    position: int
    score: float
    fair_score: float


@dataclass(frozen=True)
class MatchPolicy(ABC):
    """How the shown list is chosen from one visitor's raw shortlist: the query path, the kiosk and
    `bench exposure` all pick through `pick`, so a new policy is one more subclass."""

    name: ClassVar[str]  # what search --json reports and the kiosk's config names

    @abstractmethod
    def shortlist_length(self, k: int, distinct: bool) -> int:
        """How many raw neighbours to search for k shown faces."""

    @abstractmethod
    def pick(self, scores: np.ndarray, persons: Sequence[Hashable], hub: np.ndarray, k: int, distinct: bool = True,
             counts: Sequence[int] | None = None, quality: np.ndarray | None = None) -> list[Pick]:
        """The k faces to show from a shortlist (raw `scores`, best first; each candidate's person and
        its person's hubness r_P; with `counts`, the times each candidate's PERSON was shown so far;
        with `quality`, its portrait quality), each person once when `distinct`. Which faces, not
        their order: the visitor sees them by raw score, best first."""

    @abstractmethod
    def label(self, ledger: bool) -> str:
        """The policy's name with its parameters, as `bench exposure` reports it (`ledger`: replayed
        with the kiosk's counts)."""

    def on_gallery(self, has_hubness: bool, measured_lambda: float | None) -> MatchPolicy:
        """The policy as a gallery runs it: one without hubness scores, or with the λ its build measured."""
        return self


@dataclass(frozen=True)
class ExactPolicy(MatchPolicy):
    """Plain kNN: the shortlist in its own order."""

    name: ClassVar[str] = "exact"

    def shortlist_length(self, k: int, distinct: bool) -> int:
        return k * CANDIDATES_PER_RESULT if distinct else k

    def pick(self, scores: np.ndarray, persons: Sequence[Hashable], hub: np.ndarray, k: int, distinct: bool = True,
             counts: Sequence[int] | None = None, quality: np.ndarray | None = None) -> list[Pick]:
        """The shortlist in its own order, each person once when `distinct`; hubness, counts and
        quality play no part."""
        picks: list[Pick] = []
        seen: set[Hashable] = set()
        for position, score in enumerate(scores):
            if distinct and persons[position] in seen:
                continue
            seen.add(persons[position])
            picks.append(Pick(position, float(score), float(score)))
            if len(picks) == k:
                break
        return picks

    def label(self, ledger: bool) -> str:
        return self.name


@dataclass(frozen=True)
class FairPolicy(MatchPolicy):
    """The closest person first, by raw score (what the visitor came for); the other places by fair
    score score - fairness·r_P (fairness None: the λ the gallery's build chose), each person once.
    Their near-ties go to the better portrait, and with a ledger's counts (per person) a place goes to the
    least-shown person within a margin: `delta` of the closest's raw score for the first (0 by
    default: the closest is always shown), `delta_more` of the best fair score left for the others."""

    fairness: float | None = None
    delta: float = LEDGER_DELTA
    delta_more: float = LEDGER_DELTA_MORE

    name: ClassVar[str] = "fair"

    def shortlist_length(self, k: int, distinct: bool) -> int:
        return max(k * CANDIDATES_PER_RESULT, SHORTLIST)

    def pick(self, scores: np.ndarray, persons: Sequence[Hashable], hub: np.ndarray, k: int, distinct: bool = True,
             counts: Sequence[int] | None = None, quality: np.ndarray | None = None) -> list[Pick]:
        """The closest face (by raw score: shown first, so its portrait does not matter), then the
        other people by fair score, each person once whatever `distinct` says. With `quality`,
        near-ties in fair score go to the better portrait (face_engine.quality.near_tie_order). With
        `counts` (each candidate's person's showings), a place goes to the least-shown person within
        its margin. A fairness of None (not resolved with on_gallery) counts as 0."""
        raw = np.asarray(scores, dtype=np.float64)
        fair = raw - (self.fairness or 0.0) * np.asarray(hub, dtype=np.float64)
        if not len(raw) or k < 1:
            return []
        closest = _each_persons_best(np.argsort(-raw, kind="stable"), persons)
        first = _least_shown_within(closest, raw, self.delta, counts)
        by_fair = _each_persons_best(_best_first(fair, quality, persons), persons)
        left = [p for p in by_fair if persons[p] != persons[first]]
        picks = [Pick(first, float(raw[first]), float(fair[first]))]
        while left and len(picks) < k:
            chosen = _least_shown_within(left, fair, self.delta_more, counts)
            left.remove(chosen)
            picks.append(Pick(chosen, float(raw[chosen]), float(fair[chosen])))
        return picks

    def label(self, ledger: bool) -> str:
        name = f"{self.name}_{self.fairness:g}"
        return f"{name}_ledger_{self.delta:g}_{self.delta_more:g}" if ledger else name

    def on_gallery(self, has_hubness: bool, measured_lambda: float | None) -> MatchPolicy:
        """Exact where the gallery has no hubness scores; the gallery's λ (0 where none was measured)
        unless this policy names one."""
        if not has_hubness:
            return EXACT
        return self if self.fairness is not None else replace(self, fairness=measured_lambda or 0.0)


def _best_first(values: np.ndarray, quality: np.ndarray | None, persons: Sequence[Hashable]) -> np.ndarray:
    """Positions best first, near-ties to the better portrait given `quality`: of each person's faces
    only those a near-tie from the person's best, the only ones that can stand for them (a grown
    shortlist holds hundreds of one person's photos, and the near-tie order costs n² steps)."""
    if quality is None:
        return np.argsort(-values, kind="stable")
    best: dict[Hashable, float] = {}
    for person, value in zip(persons, values.tolist(), strict=True):
        best[person] = max(value, best.get(person, value))
    kept = np.array([p for p, person in enumerate(persons) if values[p] >= best[person] - TIE_EPSILON], dtype=np.int64)
    order: np.ndarray = kept[near_tie_order(values[kept], quality[kept])]
    return order


def _each_persons_best(order: np.ndarray, persons: Sequence[Hashable]) -> list[int]:
    """The first position of each person in `order`, in that order."""
    seen: set[Hashable] = set()
    best = []
    for position in order:
        if persons[position] not in seen:
            seen.add(persons[position])
            best.append(int(position))
    return best


def _least_shown_within(ordered: list[int], values: np.ndarray, margin: float, counts: Sequence[int] | None) -> int:
    """The first of `ordered` or, with `counts` and a margin, the least shown of those whose value is
    within `margin` of the best (the first in order of equals)."""
    if counts is None or margin <= 0:
        return ordered[0]
    top = max(values[p] for p in ordered)
    return min((p for p in ordered if values[p] >= top - margin), key=lambda p: counts[p])


EXACT = ExactPolicy()
# The policies by the name a command line or the kiosk's config gives, with the λ given there.
_BY_NAME: dict[str, Callable[[float | None], MatchPolicy]] = {"exact": lambda fairness: EXACT, "fair": FairPolicy}
POLICIES = tuple(_BY_NAME)


def policy_named(name: str, fairness: float | None = None) -> MatchPolicy:
    """The policy called `name` (one of POLICIES); the fair one at λ `fairness` (None: the gallery's)."""
    return _BY_NAME[name](fairness)


def gini(counts: np.ndarray) -> float:
    """0 when every face (or person) is shown equally often, towards 1 when a few take all the attention."""
    x = np.sort(np.asarray(counts, dtype=float))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    return float((2 * np.sum(np.arange(1, n + 1) * x)) / (n * x.sum()) - (n + 1) / n)
