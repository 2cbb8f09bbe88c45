"""The attract loop's lookalike pairs ("two strangers, one face"), mined once per build from the
whole gallery and stored in it (face_engine.gallery, PAIRS_FILE).

The rule, in order:
1. One portrait per person: their best by the build's quality score, and only a good one (at least
   the gallery's median quality, and turned no more than halfway to a three-quarter view), so both
   faces of a pair are seen well and alike.
2. Not a mislabelled photo: a face nearer another person's centre (the mean of their faces) than
   its own is left out (LFW's "Pat Cox" photo shows Berlusconi in front); so is a pair in which a
   face reaches the score at which the pack calls two faces the same person, against the other
   face or against the other person's centre.
3. Likeness first: in a gallery of MIN_PEOPLE_FOR_SHARE people or more, a pair must lie within the
   top TOP_SHARE of cross-person pairs (their score at least that quantile of random cross-person
   pairs); in a smaller one, its best pairs are taken whatever their rank.
4. Each person in at most one pair, the most alike pairs first.

Cost: at most MAX_PEOPLE people are considered (a random sample beyond), each searched exactly
against the others' portraits and the people's centres.
"""
from __future__ import annotations

from typing import NamedTuple

import faiss
import numpy as np

from models.catalogue import SAME_PERSON_COSINE

MAX_PAIRS = 60  # stored: the kiosk shows a few per loop, rotating through them
MAX_PEOPLE = 10_000  # people considered at most; larger galleries are sampled
NEIGHBOURS = 32  # nearest portraits of other people looked at for each person
TOP_SHARE = 0.01  # a pair lies within this top share of cross-person pairs ...
MIN_PEOPLE_FOR_SHARE = 50  # ... in a gallery of this many people or more
RANDOM_PAIRS = 200_000  # cross-person pairs sampled to place that quantile
MIN_FRONTAL = 0.5  # face_engine.quality's frontal part: 0.5 is halfway to a three-quarter view
QUALITY, FRONTAL = 0, 2  # columns of face_engine.quality.COLUMNS


def same_person_cosine(pack: str, strangers_best_99th: float | None) -> float:
    """The cosine at which the pack calls two faces one person (models.catalogue), or for a pack
    with none known, the gallery's 99th percentile of strangers' best matches (face_engine.likeness);
    1.0 (no limit) where neither is known."""
    if pack in SAME_PERSON_COSINE:
        return SAME_PERSON_COSINE[pack]
    return strangers_best_99th if strangers_best_99th is not None else 1.0


def mine_pairs(xb: np.ndarray, persons: np.ndarray, quality: np.ndarray, same_person: float,
               rng: np.random.Generator, wanted: int = MAX_PAIRS) -> np.ndarray:
    """(pairs, 2) int64 face ids of lookalike pairs of different people, most alike first, by the
    module's rule. `xb`: the gallery's vectors (L2-normalised), `persons`: a number per face
    (face_engine.fairness.person_numbers), `quality`: (count, 4) face_engine.quality.COLUMNS."""
    people = _People.of(xb, persons)
    centres, owner = people.centres()
    faces = _portraits(persons, quality, rng)
    faces = faces[~_nearer_another(xb[faces], persons[faces], centres, owner, people)]
    if len(faces) < 2:
        return np.zeros((0, 2), np.int64)
    vectors = np.ascontiguousarray(xb[faces], dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    D, I = index.search(vectors, min(NEIGHBOURS + 1, len(faces)))
    floor = _likeness_floor(xb, persons, rng)
    found = [(float(score), int(a), int(b)) for a, (scores, others) in enumerate(zip(D, I, strict=True))
             for score, b in zip(scores, others, strict=True) if a < b and floor <= score < same_person]
    found.sort(reverse=True)
    return _one_pair_each(found, faces, persons, xb, centres, owner, same_person, wanted)


class _People(NamedTuple):
    """The sum of each person's face vectors and their number of faces, by person number."""

    unique: np.ndarray
    sums: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, xb: np.ndarray, persons: np.ndarray) -> _People:
        unique, inverse, counts = np.unique(persons, return_inverse=True, return_counts=True)
        sums = np.zeros((len(unique), xb.shape[1]), np.float64)
        np.add.at(sums, inverse, xb)
        return cls(unique, sums, counts)

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """The L2-normalised mean face of each person with two faces or more, and the person of each."""
        several = self.counts >= 2
        centres = self.sums[several] / np.linalg.norm(self.sums[several], axis=1, keepdims=True)
        return np.ascontiguousarray(centres, dtype=np.float32), self.unique[several]


def _portraits(persons: np.ndarray, quality: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each person's best portrait by quality, where it is a good one (the module's rule 1); at most
    MAX_PEOPLE people, sampled at random beyond."""
    good = (quality[:, QUALITY] >= np.median(quality[:, QUALITY])) & (quality[:, FRONTAL] >= MIN_FRONTAL)
    candidates = np.flatnonzero(good)
    order = candidates[np.lexsort((-quality[candidates, QUALITY], persons[candidates]))]
    best = order[np.r_[True, persons[order][1:] != persons[order][:-1]]] if len(order) else order
    if len(best) > MAX_PEOPLE:
        best = np.sort(rng.choice(best, MAX_PEOPLE, replace=False))
    return best


def _nearer_another(queries: np.ndarray, mine: np.ndarray, centres: np.ndarray, owner: np.ndarray,
                    people: _People) -> np.ndarray:
    """For each face, whether another person's centre is nearer to it than its own person's centre
    less the face itself (a face without another of its person has no centre of its own: False)."""
    if len(centres) == 0:
        return np.zeros(len(queries), bool)
    foreign = _best_other_centre(queries, mine, centres, owner)
    row = np.searchsorted(people.unique, mine)
    rest = people.sums[row] - queries
    norms = np.maximum(np.linalg.norm(rest, axis=1), 1e-12)
    own = np.einsum("ij,ij->i", queries, rest) / norms
    suspect: np.ndarray = (people.counts[row] >= 2) & (foreign > own)
    return suspect


def _best_other_centre(queries: np.ndarray, mine: np.ndarray, centres: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Each face's best cosine with the centre of a person not its own."""
    index = faiss.IndexFlatIP(centres.shape[1])
    index.add(centres)
    D, I = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(2, len(centres)))
    own = owner[I] == mine[:, None]
    best = np.where(own, -np.inf, D).max(axis=1)
    return np.asarray(best, np.float64)


def _likeness_floor(xb: np.ndarray, persons: np.ndarray, rng: np.random.Generator) -> float:
    """The score of the top TOP_SHARE of cross-person pairs (estimated on RANDOM_PAIRS random ones),
    or -1 (no floor) for a gallery of fewer than MIN_PEOPLE_FOR_SHARE people."""
    if len(np.unique(persons)) < MIN_PEOPLE_FOR_SHARE:
        return -1.0
    a, b = rng.integers(0, len(xb), RANDOM_PAIRS), rng.integers(0, len(xb), RANDOM_PAIRS)
    cross = persons[a] != persons[b]
    scores = np.einsum("ij,ij->i", xb[a[cross]], xb[b[cross]])
    return float(np.quantile(scores, 1 - TOP_SHARE))


def _one_pair_each(found: list[tuple[float, int, int]], faces: np.ndarray, persons: np.ndarray, xb: np.ndarray,
                   centres: np.ndarray, owner: np.ndarray, same_person: float, wanted: int) -> np.ndarray:
    """The pairs of `found` (score, position, position in `faces`), best first, that neither reach
    the same-person score against the other's centre nor hold a person already paired."""
    where = {int(person): i for i, person in enumerate(owner)}
    used: set[int] = set()
    chosen: list[tuple[int, int]] = []
    for _, a, b in found:
        one, other = int(faces[a]), int(faces[b])
        people = {int(persons[one]), int(persons[other])}
        if len(people) < 2 or people & used:
            continue
        if any(int(persons[y]) in where and float(xb[x] @ centres[where[int(persons[y])]]) >= same_person
               for x, y in ((one, other), (other, one))):
            continue
        used |= people
        chosen.append((one, other))
        if len(chosen) == wanted:
            break
    return np.array(chosen, np.int64).reshape(-1, 2)
