"""One query through the kiosk's path: decode, detect, embed the largest face, search; timed per stage."""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import numpy as np

from face_engine.detectors import Detections
from face_engine.engine import FaceEngine
from face_engine.fairness import EXACT, MatchPolicy
from face_engine.gallery import FaceRecord, Gallery, person_key_of
from face_engine.imaging import read_image


class Lookalike(NamedTuple):
    score: float  # inner product (cosine) with the visitor's face: what the visitor is shown
    face: FaceRecord
    fair_score: float  # what the policy ranked by (the score itself under exact)


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


def open_for_query(gallery_path: str | os.PathLike[str], pack: str | None, device: str) -> tuple[Gallery, FaceEngine]:
    """A gallery and an engine that can query it: the pack that built the gallery unless `pack`
    names another, which must have the same recognizer (GalleryError otherwise)."""
    from models.packs import resolve_pack

    gallery = Gallery(gallery_path)
    engine = FaceEngine(resolve_pack(pack or gallery.manifest.pack_source), device, spin=False)  # one query at a time
    gallery.check_compatible(engine.pack.recognizer_id)
    return gallery, engine


def lookalikes(engine: FaceEngine, gallery: Gallery, image: np.ndarray, k: int, distinct: bool,
               watch: Stopwatch, policy: MatchPolicy = EXACT, counts: Counts | None = None,
               detections: Detections | None = None, visitors: Callable[[Detections], int] | None = None
               ) -> tuple[Detections, list[list[Lookalike]]]:
    """The detections of `image` (found here unless given: the kiosk's live view found them already)
    and, for each visitor, the k gallery faces shown to them, best first. Visitors are the largest
    faces, as many as `visitors(detections)` says (one by default); no gallery person is shown to
    two visitors. With `distinct`, each person appears once in a visitor's list."""
    if detections is None:
        detections = engine.detect(image)
        watch.lap("detect")
    wanted = min(len(detections.boxes), visitors(detections) if visitors else 1)
    xq = engine.embed(image, detections.take(slice(0, wanted)))
    watch.lap("embed")
    # each visitor's own list, long enough for the others' picks to be taken out of it
    candidates = [choose(gallery, query[None], k * len(xq), distinct, policy, counts) for query in xq]
    watch.lap("search")
    return detections, take_turns(candidates, k)


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
    return face.identity or face.id  # no name: a person of its own


def choose(gallery: Gallery, xq: np.ndarray, k: int, distinct: bool, policy: MatchPolicy = EXACT,
           counts: Counts | None = None) -> list[Lookalike]:
    """The k faces shown for the query vector xq (1, dim): `policy`, as `gallery` runs it (policy_on),
    picks them from a raw shortlist with the gallery's hubness and quality scores where it has them."""
    policy = policy_on(gallery, policy)
    D, I = gallery.search(xq, policy.shortlist_length(k, distinct))
    ids = I[0][I[0] >= 0]
    identities, keys = gallery.people(ids.tolist())
    keys = [person_key_of(*both) for both in zip(identities, keys, strict=True)]  # the ledger counts people
    persons = [name or int(i) for name, i in zip(identities, ids, strict=True)]  # no name: a person of its own
    # a gallery without hubness scores runs the exact policy, which reads none
    hub = gallery.hubness[ids] if gallery.hubness is not None else np.zeros(len(ids), np.float32)
    quality = gallery.quality[ids, 0] if gallery.quality is not None else None
    picks = policy.pick(D[0][: len(ids)], persons, hub, k, distinct, counts(keys) if counts else None, quality)
    faces = gallery.faces([int(ids[pick.position]) for pick in picks])
    return [Lookalike(pick.score, face, pick.fair_score) for pick, face in zip(picks, faces, strict=True)]


def policy_on(gallery: Gallery, policy: MatchPolicy) -> MatchPolicy:
    """`policy` as `gallery` runs it: exact where the gallery has no hubness scores, the fair one at
    the λ its build measured unless told another."""
    return policy.on_gallery(gallery.hubness is not None, gallery.manifest.measured_lambda)


def search_photo(engine: FaceEngine, gallery: Gallery, source: str | os.PathLike[str] | bytes | np.ndarray,
                 k: int, distinct: bool = False, policy: MatchPolicy = EXACT) -> dict[str, Any]:
    """The `search --json` object for one photo. Raises ImageError for an unusable file."""
    watch = Stopwatch()
    image = read_image(source)
    watch.lap("decode")
    detections, found = lookalikes(engine, gallery, image, k, distinct, watch, policy)
    matches = found[0] if found else []
    return {
        "image": str(source) if not isinstance(source, (bytes, np.ndarray)) else "<memory>",
        "faces": len(detections.boxes),
        "policy": policy_on(gallery, policy).name,
        "matches": [{"rank": rank, "score": round(score, 4), "fair_score": round(fair_score, 4),
                     "name": face.display_name, "identity": face.identity,
                     "caption": face.caption, "image": face.image, "thumbnail": face.thumbnail,
                     "portrait": face.portrait,
                     "quality": None if gallery.quality is None else round(float(gallery.quality[face.id, 0]), 3)}
                    for rank, (score, face, fair_score) in enumerate(matches, 1)],
        "timings_ms": watch.ms,
    }
