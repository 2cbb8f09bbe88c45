"""Every message between the inference worker and the GUI: plain data (numpy arrays, numbers and
strings, no Qt), imported by both sides. The worker sends each through a queued signal; the
screens only show them."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class WorkerInfo:
    """What is running, for the staff panel: sent when the worker is ready and after each gallery swap."""

    pack: str = ""
    providers: dict[str, list[str]] = field(default_factory=dict)  # model: the providers it runs on
    gallery: str = ""       # the gallery's folder
    faces: int = 0
    identities: int = 0
    built_at: str = ""
    index: str = ""         # the index's factory string


@dataclass(frozen=True)
class Analysis:
    """What the worker saw in one live frame."""

    faces: int
    near: bool = False    # the largest face is close enough to start
    ready: bool = False   # one face (or a duo), close, lit and frontal: a good capture
    steady: bool = False  # and it has not moved since the previous frame
    hint: str = ""        # i18n key of the hint to show, "" when ready
    analyse_ms: float = 0.0  # how long the worker took over the frame
    duo: bool = False     # two visitors of a similar size, both close: each gets a lookalike
    face_y: float | None = None  # the largest face's centre, a share of the frame's height: the live guide follows it


@dataclass
class Match:
    score: float  # raw cosine with the visitor's face: a pair's matches are in its order
    name: str
    caption: str
    image: str  # the corpus photo, for information only: the corpus may have changed since the build
    portrait: np.ndarray  # BGR, square, from the gallery's portrait file
    likeness: int  # what the visitor reads, 0-100 (face_engine.likeness), rising with score
    source_side: int = 0  # photo pixels across the portrait (FaceRecord.source_side); 0: unknown


@dataclass
class Pair:
    """One visitor beside their lookalikes."""

    visitor: np.ndarray  # BGR square crop of the visitor's own face (no bystanders), as the camera saw it
    matches: list[Match]  # as shown: by score, best first (face_engine.query.displayed); never empty
    source_side: int = 0  # camera pixels across the visitor's crop (as Match.source_side); 0: unknown


@dataclass
class SearchOutcome:
    faces: int                  # faces found in the captured frame
    pairs: list[Pair] = field(default_factory=list)  # largest face first; two in duo mode
    failure: str = ""           # why there are no pairs, as an i18n key ("" when there are)
    timings_ms: dict[str, float] = field(default_factory=dict)
    frame_time: float = 0.0     # time.perf_counter() when the frame was captured


@dataclass(frozen=True)
class ExposureSummary:
    """The exposure ledger's numbers for the current gallery's people (kiosk.ledger.Ledger.summary)."""

    people: int
    shown_people: int
    showings: int
    share_never_shown: float
    gini: float
