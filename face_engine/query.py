"""One query through the kiosk's path: decode, detect, align and embed the largest face, search; timed per stage."""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np

from face_engine.detectors import Detections
from face_engine.engine import FaceEngine, crops_of
from face_engine.fairness import EXACT, SHORTLIST_GROWTH, MatchPolicy
from face_engine.gallery import FaceRecord, Gallery, person_key_of
from face_engine.imaging import read_image
from face_engine.withheld import hidden_ids


class Lookalike(NamedTuple):
    score: float  # inner product (cosine) with the visitor's face: the display's order
    face: FaceRecord
    fair_score: float  # what the policy chose by (the score itself under exact)
    likeness: int  # what the visitor is shown: face_engine.likeness, 0-100, rising with score


class Scored(Protocol):
    @property
    def score(self) -> float: ...


S = TypeVar("S", bound=Scored)


def displayed(chosen: Iterable[S]) -> list[S]:
    """The chosen matches as a visitor sees them: by raw score, best first, so by the likeness shown
    (the first is the big "closest" tile). The policy decides which people are shown, never their
    order; equal scores keep the policy's order."""
    return sorted(chosen, key=lambda match: -match.score)


Counts = Callable[[list[str]], list[int]]  # times each person (by person key) was shown so far: the kiosk's ledger


class Stopwatch:
    """Milliseconds per named stage, in order."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.ms[stage] = round((now - self._clock) * 1e3, 2)
        self._clock = now


def open_for_query(gallery_path: str | os.PathLike[str], pack: str | None, device: str, threads: int = 0,
                   detector_threads: int | None = None) -> tuple[Gallery, FaceEngine]:
    """A gallery and an engine that can query it: the pack that built the gallery unless `pack`
    names another, which must have the same recognizer (GalleryError otherwise). `threads` and
    `detector_threads` as FaceEngine takes them."""
    from models.packs import resolve_pack

    gallery = Gallery(gallery_path)
    engine = FaceEngine(resolve_pack(pack or gallery.manifest.pack_source), device, threads, spin=False,
                        detector_threads=detector_threads)  # one query at a time: no spinning threads
    gallery.check_compatible(engine.pack.recognizer_id)
    return gallery, engine


def lookalikes(engine: FaceEngine, gallery: Gallery, image: np.ndarray, k: int, watch: Stopwatch,
               policy: MatchPolicy = EXACT, counts: Counts | None = None, detections: Detections | None = None,
               visitors: Callable[[Detections], int] | None = None) -> tuple[Detections, list[list[Lookalike]]]:
    """The detections of `image` and, for each visitor, k lookalikes (see `visitor_faces` and
    `candidates`)."""
    detections, xq = visitor_faces(engine, image, watch, detections, visitors)
    found = candidates(gallery, xq, k, policy, counts)
    watch.lap("search")
    return detections, found


def visitor_faces(engine: FaceEngine, image: np.ndarray, watch: Stopwatch, detections: Detections | None = None,
                  visitors: Callable[[Detections], int] | None = None) -> tuple[Detections, np.ndarray]:
    """The detections of `image` (found here unless given: the kiosk's live view found them already)
    and the embeddings (visitors, dim) of its visitors: the largest faces, as many as
    `visitors(detections)` says (one by default)."""
    if detections is None:
        detections = engine.detect(image)
        watch.lap("detect")
    wanted = min(len(detections.boxes), visitors(detections) if visitors else 1)
    crops = crops_of(image, detections.take(slice(0, wanted)))
    watch.lap("align")
    xq = engine.recognizer.embed(crops)
    watch.lap("embed")
    return detections, xq


def candidates(gallery: Gallery, xq: np.ndarray, k: int, policy: MatchPolicy = EXACT,
               counts: Counts | None = None, leave_out: Sequence[int] = ()) -> list[list[Lookalike]]:
    """For each visitor (a row of xq), k different people in the policy's order of preference (fewer
    only where the gallery has fewer people), never the faces at `leave_out` ids; no gallery person
    goes to two visitors. `displayed` puts a list in the order shown."""
    # each visitor's own list, long enough for the others' picks to be taken out of it
    lists = [choose(gallery, query[None], k * len(xq), True, policy, counts, leave_out) for query in xq]
    return take_turns(lists, k)


def take_turns(candidates: list[list[Lookalike]], k: int) -> list[list[Lookalike]]:
    """Up to k lookalikes for each visitor from their own candidates (best first), the visitors
    choosing in turn, so no gallery person goes to two visitors and each has their best one left
    (one visitor's list keeps whatever its candidates repeat)."""
    chosen: list[list[Lookalike]] = [[] for _ in candidates]
    shown_to: dict[Hashable, int] = {}  # each person chosen so far, and the visitor they went to
    queues = [iter(mine) for mine in candidates]
    for _ in range(k):
        for visitor, (mine, queue) in enumerate(zip(chosen, queues, strict=True)):
            match = next((match for match in queue if shown_to.get(person_of(match.face), visitor) == visitor), None)
            if match is not None:
                mine.append(match)
                shown_to[person_of(match.face)] = visitor
    return chosen


def person_of(face: FaceRecord) -> Hashable:
    return person(face.identity, face.id)


def person(identity: str, face_id: int) -> Hashable:
    """Who a face shows, within one gallery (what `distinct` and take_turns compare): its identity,
    or for an unnamed face its id (a person of its own). The ledger's name that survives rebuilds is
    FaceRecord.person_key."""
    return identity or face_id


class Shortlist(NamedTuple):
    """The nearest gallery faces to one query, best first: raw scores, ids, persons and person keys
    (FaceRecord.person_key: what the exposure ledger counts)."""

    scores: np.ndarray
    ids: np.ndarray
    persons: list[Hashable]
    keys: list[str]


def shortlist(gallery: Gallery, xq: np.ndarray, length: int, people: int, leave_out: Sequence[int] | np.ndarray = ()
              ) -> Shortlist:
    """The `length` nearest faces to xq (1, dim), searched again SHORTLIST_GROWTH times longer until they hold
    `people` different people or the whole gallery (a person with many near photos would otherwise
    fill it). Faces at `leave_out` ids are never in it."""
    left_out = np.asarray(leave_out, dtype=np.int64)
    while True:
        D, I = gallery.search(xq, length)
        found = (I[0] >= 0) & ~np.isin(I[0], left_out)
        ids = I[0][found]
        identities, keys = gallery.people(ids.tolist())
        persons = [person(name, i) for name, i in zip(identities, ids.tolist(), strict=True)]
        if len(set(persons)) >= people or length >= gallery.count:
            return Shortlist(D[0][found], ids, persons,
                             [person_key_of(*both) for both in zip(identities, keys, strict=True)])
        length = min(gallery.count, length * SHORTLIST_GROWTH)


def choose(gallery: Gallery, xq: np.ndarray, k: int, distinct: bool, policy: MatchPolicy = EXACT,
           counts: Counts | None = None, leave_out: Sequence[int] = ()) -> list[Lookalike]:
    """The k faces chosen for the query vector xq (1, dim), in the policy's order of preference
    (`displayed` gives the order shown): `policy`, as `gallery` runs it (policy_on), picks them from
    a raw shortlist of at least k people, with the gallery's hubness and quality scores where it has
    them. Faces at `leave_out` ids (a benchmark's visitor taken from the gallery) and the faces the
    gallery's hide list keeps off the screen (face_engine.withheld) are never chosen."""
    policy = policy_on(gallery, policy)
    left_out = np.concatenate([np.asarray(leave_out, dtype=np.int64), hidden_ids(gallery)])
    near = shortlist(gallery, xq, policy.shortlist_length(k, distinct), k, left_out)
    # a gallery without hubness scores runs the exact policy, which reads none
    hub = gallery.hubness[near.ids] if gallery.hubness is not None else np.zeros(len(near.ids), np.float32)
    quality = gallery.quality[near.ids, 0] if gallery.quality is not None else None
    picks = policy.pick(near.scores, near.persons, hub, k, distinct, counts(near.keys) if counts else None, quality)
    faces = gallery.faces([int(near.ids[pick.position]) for pick in picks])
    likeness = gallery.calibration.likeness
    return [Lookalike(pick.score, face, pick.fair_score, likeness(pick.score))
            for pick, face in zip(picks, faces, strict=True)]


def policy_on(gallery: Gallery, policy: MatchPolicy) -> MatchPolicy:
    """`policy` as `gallery` runs it: exact where the gallery has no hubness scores, the fair one at
    the λ its build measured unless told another."""
    return policy.on_gallery(gallery.hubness is not None, gallery.manifest.measured_lambda)


def search_photo(engine: FaceEngine, gallery: Gallery, source: str | os.PathLike[str] | bytes | np.ndarray,
                 k: int, policy: MatchPolicy = EXACT) -> dict[str, Any]:
    """The `search --json` object for one photo: k different people (fewer only where the gallery
    has fewer), ranked 1..k as a visitor sees them, by score. Raises ImageError for an unusable file."""
    watch = Stopwatch()
    image = read_image(source)
    watch.lap("decode")
    detections, found = lookalikes(engine, gallery, image, k, watch, policy)
    shown = displayed(found[0]) if found else []
    return {
        "image": str(source) if not isinstance(source, (bytes, np.ndarray)) else "<memory>",
        "faces": len(detections.boxes),
        "policy": policy_on(gallery, policy).name,
        "likeness_table": gallery.calibration.source,
        "matches": [match_json(rank, match, gallery) for rank, match in enumerate(shown, 1)],
        "timings_ms": watch.ms,
    }


def match_json(rank: int, match: Lookalike, gallery: Gallery) -> dict[str, Any]:
    """One match of `search --json`."""
    face = match.face
    return {"rank": rank, "score": round(match.score, 4), "likeness": match.likeness,
            "fair_score": round(match.fair_score, 4), "name": face.display_name, "identity": face.identity,
            "caption": face.caption, "image": face.image, "thumbnail": face.thumbnail, "portrait": face.portrait,
            "quality": None if gallery.quality is None else round(float(gallery.quality[face.id, 0]), 3)}
