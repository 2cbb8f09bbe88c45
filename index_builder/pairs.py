"""The attract loop's lookalike pairs ("two strangers, one face"), mined once per build from the
whole gallery and stored in it (face_engine.gallery, PAIRS_FILE).

The rule, in order:
1. One portrait per person: their best by the build's quality score, and only a good one (at least
   the gallery's median quality, and turned no more than halfway to a three-quarter view), so both
   faces of a pair are seen well and alike.
2. Not the same person twice: a pair scores below the score at which the gallery calls two faces
   the same person (same_person_cosine: where its likeness table reaches SAME_PERSON_LIKENESS, a
   score only one stranger in fifty reaches with their best match; above it on LFW: identical
   twins, brothers, and photos of one person under two names).
   A face nearer another person's centre (the mean of their faces) than its own is left out (LFW's
   "Pat Cox" photo, cut around the largest face, shows Berlusconi); so is a pair where one face is
   as near the other person's centre as that person's own least typical photos are (LFW's one
   "Lane Bryant" photo shows Roseanne Barr, of whom it has three).
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

from face_engine.likeness import LEVELS, Calibration

MAX_PAIRS = 60  # stored: the kiosk shows a few per loop, rotating through them
MAX_PEOPLE = 10_000  # people considered at most; larger galleries are sampled
NEIGHBOURS = 32  # nearest portraits of other people looked at for each person
TOP_SHARE = 0.01  # a pair lies within this top share of cross-person pairs ...
MIN_PEOPLE_FOR_SHARE = 50  # ... in a gallery of this many people or more
RANDOM_PAIRS = 200_000  # cross-person pairs sampled to place that quantile
MIN_FRONTAL = 0.5  # face_engine.quality's frontal part: 0.5 is halfway to a three-quarter view
QUALITY, FRONTAL = 0, 2  # columns of face_engine.quality.COLUMNS
ATYPICAL = 0.1  # a person's own photos this far down their nearness to the person's centre: the least typical
SAME_PERSON_LIKENESS = 98  # face_engine.likeness: two faces this alike may be one person
# What the pairs depend on besides the gallery: a build with another rule is a new gallery
RULE = (MAX_PAIRS, MAX_PEOPLE, NEIGHBOURS, TOP_SHARE, MIN_PEOPLE_FOR_SHARE, MIN_FRONTAL, ATYPICAL, SAME_PERSON_LIKENESS)


def same_person_cosine(likeness: Calibration) -> float:
    """The score at which a gallery calls two faces the same person: where its likeness table
    (face_engine.likeness; the gallery's own, or its pack's) reaches SAME_PERSON_LIKENESS. A pack's
    1:1 verification threshold (sface's 0.363) is no such line in a gallery: a stranger's best
    match there scores 0.42 (the table's 50), so two strangers scoring 0.5 are no mislabelled photo."""
    return float(likeness.cosines[LEVELS.index(SAME_PERSON_LIKENESS)])


def mine_pairs(xb: np.ndarray, persons: np.ndarray, quality: np.ndarray, same_person: float,
               rng: np.random.Generator, wanted: int = MAX_PAIRS) -> np.ndarray:
    """(pairs, 2) int64 face ids of lookalike pairs of different people, most alike first, by the
    module's rule. `xb`: the gallery's vectors (L2-normalised), `persons`: a number per face
    (face_engine.fairness.person_numbers), `quality`: (count, 4) face_engine.quality.COLUMNS."""
    people = _People.of(xb, persons)
    centres, owner = people.centres()
    limits = np.minimum(people.atypical(xb, persons), same_person)  # in centres' order
    faces = _portraits(persons, quality, rng)
    faces = faces[~_another_persons(xb[faces], persons[faces], centres, owner, limits, people)]
    if len(faces) < 2:
        return np.zeros((0, 2), np.int64)
    vectors = np.ascontiguousarray(xb[faces], dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    D, I = index.search(vectors, min(NEIGHBOURS + 1, len(faces)))
    floor = _likeness_floor(xb, persons, rng)
    found = _candidates(D, I, floor, same_person)
    by_person = dict(zip(owner.tolist(), limits.tolist(), strict=True))
    return _one_pair_each(found, faces, persons, xb, centres, by_person, wanted)


def _candidates(D: np.ndarray, I: np.ndarray, floor: float, same_person: float) -> list[tuple[float, int, int]]:
    """(score, a, b) of each pair of the neighbour lists D, I scoring from `floor` to below
    `same_person`, once whichever of its two faces found the other, the most alike first."""
    pairs: dict[tuple[int, int], float] = {}
    for a, (scores, others) in enumerate(zip(D, I, strict=True)):
        for score, b in zip(scores.tolist(), others.tolist(), strict=True):
            if b >= 0 and a != b and floor <= score < same_person:
                pairs[min(a, b), max(a, b)] = score
    return sorted(((score, a, b) for (a, b), score in pairs.items()), reverse=True)


class _People(NamedTuple):
    """The sum of each person's face vectors and their number of faces, by person number."""

    unique: np.ndarray
    sums: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, xb: np.ndarray, persons: np.ndarray) -> _People:
        unique, inverse, counts = np.unique(persons, return_inverse=True, return_counts=True)
        sums = np.zeros((len(unique), xb.shape[1]), np.float32)  # 0.5 GB for 10^6 people
        np.add.at(sums, inverse, xb)
        return cls(unique, sums, counts)

    def atypical(self, xb: np.ndarray, persons: np.ndarray) -> np.ndarray:
        """For each person with two faces or more (in centres' order), how near their least typical
        faces (the ATYPICAL quantile) are to the centre of their other faces."""
        row = np.searchsorted(self.unique, persons)
        several = self.counts[row] >= 2
        rest = self.sums[row[several]] - xb[several]
        nearness = np.einsum("ij,ij->i", xb[several], rest) / np.maximum(np.linalg.norm(rest, axis=1), 1e-12)
        order = np.lexsort((nearness, row[several]))  # by person, then nearness
        starts = np.searchsorted(row[several][order], np.flatnonzero(self.counts >= 2))
        counts = self.counts[self.counts >= 2]
        picked: np.ndarray = nearness[order][starts + np.floor(ATYPICAL * (counts - 1)).astype(np.int64)]
        return picked

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


def _another_persons(queries: np.ndarray, mine: np.ndarray, centres: np.ndarray, owner: np.ndarray,
                     limits: np.ndarray, people: _People) -> np.ndarray:
    """For each face, whether it shows another person: the nearest centre of another person is
    nearer to it than its own person's centre (less the face itself; a person of one face has none),
    or as near as that person's limit (their own least typical photos', or the same-person score)."""
    if len(centres) == 0:
        return np.zeros(len(queries), bool)
    foreign, which = _best_other_centre(queries, mine, centres, owner)
    row = np.searchsorted(people.unique, mine)
    rest = people.sums[row] - queries
    norms = np.maximum(np.linalg.norm(rest, axis=1), 1e-12)
    own = np.einsum("ij,ij->i", queries, rest) / norms
    suspect: np.ndarray = ((people.counts[row] >= 2) & (foreign > own)) | (foreign >= limits[which])
    return suspect


def _best_other_centre(queries: np.ndarray, mine: np.ndarray, centres: np.ndarray,
                       owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each face's best cosine with the centre of a person not its own, and that centre's row."""
    index = faiss.IndexFlatIP(centres.shape[1])
    index.add(centres)
    D, I = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(2, len(centres)))
    scores = np.where(owner[I] == mine[:, None], -np.inf, D)
    best = scores.argmax(axis=1)
    rows = np.arange(len(queries))
    return np.asarray(scores[rows, best], np.float64), I[rows, best]


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
                   centres: np.ndarray, limits: dict[int, float], wanted: int) -> np.ndarray:
    """The pairs of `found` (score, position, position in `faces`), best first, that hold no person
    already paired and where neither face reaches the other person's limit (`limits`, by person,
    for those with a centre: the lesser of the same-person score and their own least typical
    photos' nearness) against that person's centre."""
    where = {person: i for i, person in enumerate(limits)}
    used: set[int] = set()
    chosen: list[tuple[int, int]] = []
    for _, a, b in found:
        one, other = int(faces[a]), int(faces[b])
        people = {int(persons[one]), int(persons[other])}
        if len(people) < 2 or people & used:
            continue
        if any(int(persons[y]) in where and float(xb[x] @ centres[where[int(persons[y])]]) >= limits[int(persons[y])]
               for x, y in ((one, other), (other, one))):
            continue
        used |= people
        chosen.append((one, other))
        if len(chosen) == wanted:
            break
    return np.array(chosen, np.int64).reshape(-1, 2)
