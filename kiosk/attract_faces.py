"""The attract loop's faces, chosen from the gallery: the least shown so far, each person once, and
pairs of different people who look alike ("two strangers, one face").

The pairs are the build's (index_builder.pairs: good portraits, alike but below the same-person
score, each person in one pair), the least shown first; a gallery built before them (format 4 or
older) has its pairs searched here with its own index. Cheap at any gallery size: a random sample of
faces is considered for the mosaic, never the whole gallery.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import faiss
import numpy as np

from face_engine.gallery import FaceRecord, Gallery, person_key_of, read_picture
from face_engine.imaging import ImageError
from face_engine.query import person_of
from face_engine.withheld import hidden_ids

log = logging.getLogger(__name__)


@dataclass
class AttractSet:
    """What the attract screen shows, all from the gallery (the worker builds it)."""

    faces: list[np.ndarray] = field(default_factory=list)  # BGR square gallery portraits, least shown first
    # two faces of different people who look alike, and a plain-text line (e.g. their names)
    pairs: list[tuple[np.ndarray, np.ndarray, str]] = field(default_factory=list)


SAMPLE = 2048  # faces considered per attract set, whatever the gallery's size
PAIR_CANDIDATES = 4  # least-shown faces searched per wanted pair
NEIGHBOURS = 20  # nearest faces looked at for each of them
NAME_LENGTH = 40  # characters of each name on a pair's line

Counts = Callable[[list[str]], list[int]]  # the ledger's `faces_shown`: times each content key was shown


def attract_set(gallery: Gallery, counts: Counts | None, rng: np.random.Generator, faces: int = 48,
                pairs: int = 6) -> AttractSet:
    """Up to `faces` gallery portraits of different people, least shown first (of a random sample;
    ties in random order), and up to `pairs` lookalike pairs of different people, no person in two
    pairs."""
    sample = rng.choice(gallery.count, size=min(gallery.count, SAMPLE), replace=False)
    sample = sample[~np.isin(sample, hidden_ids(gallery))]  # the hide list keeps them off every screen
    least_shown = _least_shown(gallery, sample, counts)  # the sample is shuffled: equal counts in random order
    records = gallery.faces(_one_face_each(gallery, least_shown, faces))
    portraits = [picture for picture in map(_portrait, records) if picture is not None]
    if gallery.pairs is None:
        return AttractSet(portraits, lookalike_pairs(gallery, least_shown[:pairs * PAIR_CANDIDATES], pairs))
    return AttractSet(portraits, stored_pairs(gallery, counts, rng, pairs))


def _least_shown(gallery: Gallery, ids: np.ndarray, counts: Counts | None) -> np.ndarray:
    """`ids` least shown first (by the ledger's counts of each face), equal counts in their order."""
    return ids[np.argsort(_times_shown(gallery, ids.tolist(), counts), kind="stable")]


def _times_shown(gallery: Gallery, ids: list[int], counts: Counts | None) -> np.ndarray:
    """The ledger's count of each face of `ids` (none shown yet without a ledger)."""
    _, keys = gallery.people(ids)
    return np.asarray(counts(keys) if counts else np.zeros(len(keys)), dtype=np.int64)


def _one_face_each(gallery: Gallery, ids: np.ndarray, wanted: int) -> list[int]:
    """The first `wanted` of `ids` whose person (FaceRecord.person_key) is not among the ids before."""
    identities, keys = gallery.people(ids.tolist())
    seen: set[str] = set()
    chosen: list[int] = []
    for face, identity, key in zip(ids.tolist(), identities, keys, strict=True):
        person = person_key_of(identity, key)
        if person not in seen:
            seen.add(person)
            chosen.append(face)
            if len(chosen) == wanted:
                break
    return chosen


def stored_pairs(gallery: Gallery, counts: Counts | None, rng: np.random.Generator,
                 pairs: int) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Up to `pairs` of the build's lookalike pairs (Gallery.pairs), the least shown first (the
    ledger's counts of their two faces; equal counts in random order), none holding a hidden face.
    The build put each person in one pair at most, so a loop shows each person once."""
    assert gallery.pairs is not None
    stored = gallery.pairs[~np.isin(gallery.pairs, hidden_ids(gallery)).any(axis=1)]
    if len(stored) == 0 or pairs <= 0:
        return []
    stored = stored[rng.permutation(len(stored))]
    shown = _times_shown(gallery, stored.ravel().tolist(), counts).reshape(-1, 2).sum(axis=1)
    ordered = stored[np.argsort(shown, kind="stable")].tolist()
    records = {face.id: face for face in gallery.faces(sorted({i for pair in ordered for i in pair}))}
    out: list[tuple[np.ndarray, np.ndarray, str]] = []
    for a, b in ordered:
        if a in records and b in records and (pair := _pair_shown(records[a], records[b])) is not None:
            out.append(pair)
        if len(out) == pairs:
            break
    return out


def lookalike_pairs(gallery: Gallery, candidates: np.ndarray, pairs: int) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """The most alike pairs of (candidate, its nearest face of another person), best first."""
    vectors = _vectors(gallery, candidates)
    if vectors is None or pairs <= 0:
        return []
    D, I = gallery.search(vectors, NEIGHBOURS + 1)
    hidden = set(hidden_ids(gallery).tolist())
    found: list[tuple[float, int, int]] = []
    for candidate, scores, neighbours in zip(candidates.tolist(), D, I, strict=True):
        valid = [(float(score), int(other)) for score, other in zip(scores, neighbours, strict=True)
                 if other >= 0 and other not in hidden]
        found += [(score, candidate, other) for score, other in valid if other != candidate]
    found.sort(key=lambda pair: -pair[0])
    records = {face.id: face for face in gallery.faces(sorted({i for _, a, b in found for i in (a, b)}))}
    out: list[tuple[np.ndarray, np.ndarray, str]] = []
    used: set[Hashable] = set()
    for _, a, b in found:
        one, other = records.get(a), records.get(b)
        if one is None or other is None:
            continue
        people = {person_of(one), person_of(other)}
        if len(people) < 2 or people & used:  # two different people, neither in a pair already
            continue
        pair = _pair_shown(one, other)
        if pair is None:
            continue
        used |= people
        out.append(pair)
        if len(out) == pairs:
            break
    return out


def _vectors(gallery: Gallery, ids: np.ndarray) -> np.ndarray | None:
    """The stored embeddings of `ids`, from the index itself; None where the index cannot give them
    back (the attract loop then shows faces without pairs)."""
    index = gallery.index
    try:
        try:
            return np.asarray(index.reconstruct_batch(ids.astype(np.int64)), np.float32)
        except RuntimeError:  # an inverted-file index gives vectors back only with its direct map
            faiss.extract_index_ivf(index).make_direct_map()
            return np.asarray(index.reconstruct_batch(ids.astype(np.int64)), np.float32)
    except RuntimeError as error:
        log.info("no lookalike pairs for the attract loop: the %s index cannot give vectors back (%s)",
                 gallery.manifest.index.factory, str(error).strip().splitlines()[-1][:120])
        return None


def _pair_shown(one: FaceRecord, other: FaceRecord) -> tuple[np.ndarray, np.ndarray, str] | None:
    """The two portraits of a pair and its caption; None where either portrait is unusable."""
    first, second = _portrait(one), _portrait(other)
    if first is None or second is None:
        return None
    return first, second, f"{_name(one)} · {_name(other)}"


def _name(face: FaceRecord) -> str:
    name = " ".join(face.display_name.split())  # corpus text is data: one plain line, bounded
    return name if len(name) <= NAME_LENGTH else name[: NAME_LENGTH - 1] + "…"


def _portrait(face: FaceRecord) -> np.ndarray | None:
    try:
        return read_picture(face.portrait)
    except (ImageError, OSError) as error:
        log.warning("face %s left out of the attract loop: its portrait is unusable (%s)", face.id, error)
        return None
