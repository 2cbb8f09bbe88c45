"""The likeness a visitor is shown: one number from 0 to 100 for a match's raw cosine similarity.

MEANING is the definition, word for word what README.md, docs/architecture.md and `search --help`
say.

A gallery's build calibrates it (`calibrate`): for a sample of its people, one face each, the best
match among OTHER people (strangers to each other, no held-out set needed) and one random face of
another person (an unrelated pair). The table (the manifest's `likeness`) holds the unrelated pairs'
median cosine, where the likeness is 0, and the best matches' percentiles from the 50th, where it is
that percentile; between 0 and 50 it runs straight in cosine, above the 99th straight to 100 at
cosine 1. A gallery without its own table (built before
format 4, or of too few people for one) uses its model pack's table, made the same way on LFW and
shipped in the pack catalogue (models.catalogue.LFW_LIKENESS).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import faiss
import numpy as np

from face_engine.fairness import People, search_others
from models.catalogue import DEFAULT_PACK, LFW_LIKENESS

log = logging.getLogger(__name__)

MEANING = ("likeness, from 0 to 100, is how alike a match is, measured on this gallery's strangers: 50 is a "
           "typical stranger's best lookalike; above 50, the share of strangers whose best lookalike is less "
           "alike (90: more alike than nine strangers' best in ten); below 50, straight down to 0 at two "
           "unrelated people's typical similarity. A photo of the same person scores near 100. It rises with "
           "the raw cosine score, so sorting by one sorts by the other.")

# The likeness at each point of a calibration table: 0 at the unrelated pairs' median cosine, then the
# percentiles of strangers' best-match cosines.
LEVELS = (0, 50, 55, 60, 65, 70, 75, 80, 85, 90, 95, 98, 99)
CALIBRATION_PEOPLE = 2000  # people sampled (one face each) for a gallery's table: ~0.1 s at 10^6
MIN_CALIBRATION_PEOPLE = 100  # fewer, and a gallery's own percentiles are too coarse: the pack's table
_SPACING = 1e-6  # between tied table points, so the table rises strictly


@dataclass(frozen=True)
class Calibration:
    """The cosine at each of LEVELS (made to rise strictly, to 6 decimals): the unrelated pairs'
    median, then strangers' best-match percentiles; the people it was measured on, and where it comes
    from ("gallery", or the pack table used instead)."""

    cosines: tuple[float, ...]
    people: int = 0
    source: str = "gallery"

    def __post_init__(self) -> None:
        object.__setattr__(self, "cosines", _rising(np.asarray(self.cosines, dtype=np.float64)))

    def likeness(self, score: float) -> int:
        """The shown likeness of a raw cosine `score`, 0-100: straight between the table's points, 0
        below its first, and straight from its last to 100 at cosine 1."""
        cosines = np.minimum(np.asarray(self.cosines, dtype=np.float64), 1.0 - _SPACING)
        value = np.interp(float(score), np.r_[cosines, 1.0], np.r_[LEVELS, 100.0])
        return int(round(float(value)))

    def summary(self) -> str:
        """One line for `index-builder info`: where the table comes from and two of its points."""
        where = f"the gallery's own, from {self.people} people" if self.source == "gallery" else self.source
        unrelated, middle, high = (self.cosines[LEVELS.index(level)] for level in (0, 50, 90))
        return (f"{where}: 0 at cosine {unrelated:.3f} (two unrelated people), 50 at {middle:.3f} (a typical "
                f"stranger's best match), 90 at {high:.3f}")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "cosines": list(self.cosines), "levels": list(LEVELS)}

    @classmethod
    def from_json(cls, data: Any) -> Calibration | None:
        """The table of a manifest's `likeness`; None for an empty or unusable one (the pack's table
        then stands in)."""
        if not isinstance(data, dict) or data.get("levels") != list(LEVELS):
            return None
        cosines = data.get("cosines")
        if not isinstance(cosines, list) or len(cosines) != len(LEVELS) or not all(
                isinstance(c, (int, float)) and -1 <= c <= 1 for c in cosines):
            return None
        people = data.get("people")
        return cls(tuple(cosines), people if isinstance(people, int) else 0)


def _rising(cosines: np.ndarray) -> tuple[float, ...]:
    """The table's cosines to 6 decimals, each at least _SPACING above the one before (tied
    percentiles spaced apart), so the table rises strictly; a rising table comes back unchanged."""
    rising: list[float] = []
    for cosine in np.round(cosines.astype(np.float64), 6):
        rising.append(round(max(float(cosine), rising[-1] + _SPACING), 6) if rising else float(cosine))
    return tuple(rising)


def calibrate(index: faiss.Index, xb: np.ndarray, persons: np.ndarray, rng: np.random.Generator,
              people: int = CALIBRATION_PEOPLE) -> Calibration | None:
    """A gallery's table: for up to `people` people (one random face each), the best match among
    other people (searched with the gallery's own index) and a random face of another person; None
    for a gallery of fewer than MIN_CALIBRATION_PEOPLE people."""
    everyone = People.of(persons)
    if len(everyone.unique) < MIN_CALIBRATION_PEOPLE:
        return None
    sample = one_face_each(persons, rng, people)
    queries = np.ascontiguousarray(xb[sample], dtype=np.float32)
    D, _ = search_others(index, queries, persons[sample], everyone, 1)
    best = D[:, 0][~np.isnan(D[:, 0])]
    partners = unrelated_partners(persons, sample, rng)
    unrelated = np.sum(queries * np.asarray(xb[partners], dtype=np.float32), axis=1)
    return Calibration((float(np.median(unrelated)), *np.percentile(best, LEVELS[1:])), len(best))


def unrelated_partners(persons: np.ndarray, faces: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each of `faces` (positions), a random face of another person (drawn again where a draw
    hits the same person; a gallery of one person has none to give)."""
    partners = rng.integers(0, len(persons), len(faces))
    same = persons[partners] == persons[faces]
    while same.any():
        partners[same] = rng.integers(0, len(persons), int(same.sum()))
        same = persons[partners] == persons[faces]
    return partners


def one_face_each(persons: np.ndarray, rng: np.random.Generator, people: int) -> np.ndarray:
    """Positions of one random face of each of up to `people` random people, sorted."""
    shuffled = rng.permutation(len(persons))
    _, first = np.unique(persons[shuffled], return_index=True)  # a random face of each person
    chosen = shuffled[first]
    if len(chosen) > people:
        chosen = rng.choice(chosen, people, replace=False)
    return np.sort(chosen)


def pack_calibration(pack: str) -> Calibration:
    """The table a gallery of `pack` without its own uses: the pack's LFW table, or the default
    pack's where the catalogue has none for it (logged: its numbers are then only roughly right)."""
    if pack in LFW_LIKENESS:
        return Calibration(LFW_LIKENESS[pack], source=f"pack {pack} on LFW")
    log.warning("no likeness table for pack %s: likeness uses the %s pack's, made on LFW", pack, DEFAULT_PACK)
    return Calibration(LFW_LIKENESS[DEFAULT_PACK], source=f"pack {DEFAULT_PACK} on LFW (none for {pack})")
