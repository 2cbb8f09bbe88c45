"""The inference worker: the one thread that owns the onnxruntime sessions and the gallery's index.

It receives frames (the window drops frames while it is busy) and answers with plain data: an
Analysis for the live view, a SearchOutcome for a capture (one visitor, or two of a similar face
size), each with its own timings. A capture of the frame the live view analysed last reuses that
analysis's faces instead of detecting again. Pictures stay BGR and unmirrored, as the camera and
the gallery give them, decoded here off the GUI thread at the results screen's size; only the
screens convert them for Qt.
The attract loop's gallery faces (an AttractSet) are chosen here at start-up and after each swap.
New galleries are loaded on a helper thread, then handed to this worker, which swaps them in when
told the visitor has gone, or before the next capture is searched (so a version that forgets someone
is on screen within a visit), and drops the forgotten from the exposure ledger.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from face_engine.detectors import Detections
from face_engine.engine import FaceEngine
from face_engine.fairness import EXACT, MatchPolicy
from face_engine.gallery import PORTRAIT_SIZE, FaceRecord, Gallery, GalleryError, portrait_crop, read_picture
from face_engine.imaging import ImageError
from face_engine.memory import swap_refusal
from face_engine.query import Lookalike, Stopwatch, candidates, displayed, open_for_query, visitor_faces
from face_engine.withheld import ListError, hidden_ids, home_of, read_forget_list
from kiosk.attract_faces import attract_set
from kiosk.hints import analyse, visitors
from kiosk.ledger import Ledger
from kiosk.messages import Analysis, Match, Pair, SearchOutcome, WorkerInfo

log = logging.getLogger(__name__)
MOST_BROKEN = 20  # unusable portraits replaced in one search: past this the gallery is damaged, and fewer are shown


class InferenceWorker(QObject):
    ready = Signal(object)        # WorkerInfo: what is running
    failed = Signal(str)          # start-up failed: the message for staff
    analysed = Signal(object)     # Analysis
    searched = Signal(object)     # SearchOutcome
    gallery_waiting = Signal()    # a new gallery is ready to be swapped in between visitors
    gallery_changed = Signal(object)  # WorkerInfo, after a swap
    gallery_refused = Signal(str)
    exposure = Signal(object)     # ExposureSummary for the staff panel (Ledger.summary)
    attract = Signal(object)      # AttractSet: gallery faces for the attract loop, after start-up and each swap

    def __init__(self, gallery_path: str, pack: str, device: str, policy: MatchPolicy = EXACT,
                 ledger: Ledger | None = None) -> None:
        super().__init__()
        self.gallery_path, self.pack_name, self.device = gallery_path, pack, device
        self.policy, self.ledger = policy, ledger
        self._keys: list[str] | None = None  # the current gallery's person keys, read once per gallery
        self.engine: FaceEngine | None = None
        self.gallery: Gallery | None = None
        self._pending: Gallery | None = None
        self._previous_centre: np.ndarray | None = None
        # the last frame the live view analysed and its faces: a capture of that frame reuses them
        self._analysed: tuple[np.ndarray, Detections] | None = None
        self.display_side = PORTRAIT_SIZE  # pixels of the results screen's big tile (set_display_side)
        self._rng = np.random.default_rng()
        self._attract_hid: np.ndarray | None = None  # the hidden faces when the attract set was chosen

    @Slot()
    def start_up(self) -> None:
        """Load and warm models and gallery, so the first visitor waits for nothing."""
        try:
            self.gallery, self.engine = open_for_query(self.gallery_path, self.pack_name, self.device)
            self._forget_in_ledger()
            warm = np.full((480, 640, 3), 127, np.uint8)
            self.engine.detect(warm)
            self.engine.recognizer.embed(np.zeros((1, 112, 112, 3), np.uint8))
            self.gallery.search(np.zeros((1, self.engine.dim), np.float32), 1)
            self._emit_attract()
        except GalleryError as error:  # the reason says it all: no traceback for staff to read
            log.error("start-up failed: %s", error)
            self.failed.emit(str(error))
            return
        except Exception as error:  # staff must see any start-up failure on screen, not a dead kiosk
            log.exception("start-up failed")
            self.failed.emit(str(error))
            return
        self.ready.emit(self.info())

    def info(self) -> WorkerInfo:
        assert self.engine is not None and self.gallery is not None
        manifest = self.gallery.manifest
        return WorkerInfo(pack=self.engine.pack.id, providers=self.engine.providers, gallery=str(self.gallery.root),
                          faces=manifest.count, identities=manifest.identities, built_at=manifest.built_at,
                          index=manifest.index.factory)

    @Slot(int)
    def set_display_side(self, side: int) -> None:
        """Pictures come at the results screen's own size, so its thread only wraps them."""
        self.display_side = side

    @Slot(object)
    def analyse(self, frame: np.ndarray) -> None:
        assert self.engine is not None
        start = time.perf_counter()
        analysis = Analysis(faces=0)
        try:
            found = self.engine.detect(frame)
            self._analysed = (frame, found)
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            analysis, self._previous_centre = analyse(gray, found, self._previous_centre)
        except Exception:  # one bad frame must not leave the window waiting for an answer forever
            log.exception("analysis of a frame failed")
        self.analysed.emit(replace(analysis, analyse_ms=(time.perf_counter() - start) * 1e3))

    @Slot(object, int, float)
    def search(self, frame: np.ndarray, k: int, frame_time: float) -> None:
        self._swap_pending()  # nothing of the gallery is on screen while a capture is searched
        try:
            outcome = self._search(frame, k, frame_time)
        except GalleryError as error:  # a damaged metadata row: the reason says it all
            log.error("search failed: %s", error)
            outcome = SearchOutcome(0, failure="fail_search", frame_time=frame_time)
        except Exception:  # the visitor sees "try again", never a frozen kiosk
            log.exception("search failed")
            outcome = SearchOutcome(0, failure="fail_search", frame_time=frame_time)
        self.searched.emit(outcome)

    def _search(self, frame: np.ndarray, k: int, frame_time: float) -> SearchOutcome:
        """Each visitor of `frame` (the largest face, and a second one of similar size) beside their
        own lookalikes, with the pictures already at the results screen's size. A frame the live view
        analysed is not searched for faces again."""
        assert self.engine is not None
        watch = Stopwatch()
        known = self._analysed[1] if self._analysed is not None and self._analysed[0] is frame else None
        detections, xq = visitor_faces(self.engine, frame, watch, known, lambda found: visitors(found, frame.shape))
        if known is not None:
            watch.ms = {"detect": 0.0, **watch.ms}  # reused from the live view's analysis
        shown = self._shown(xq, k, 1 if len(xq) > 1 else k, watch)  # a duo sees each visitor's best only
        watch.lap("portraits")
        if self.ledger is not None:
            self.ledger.record([face for mine in shown for face, _ in mine])  # what the visitors see
        pairs = [Pair(_sized(portrait_crop(frame, box), self.display_side), displayed(match for _, match in mine))
                 for box, mine in zip(detections.boxes, shown, strict=False) if mine]
        faces = len(detections.boxes)
        if not faces:
            return SearchOutcome(0, failure="fail_no_face", timings_ms=watch.ms, frame_time=frame_time)
        if not pairs:
            return SearchOutcome(faces, failure="fail_no_match", timings_ms=watch.ms, frame_time=frame_time)
        return SearchOutcome(faces, pairs, timings_ms=watch.ms, frame_time=frame_time)

    def _shown(self, xq: np.ndarray, k: int, per_visitor: int, watch: Stopwatch
               ) -> list[list[tuple[FaceRecord, Match]]]:
        """For each visitor, the first `per_visitor` of their lookalikes, each beside its Match. A face
        whose portrait is unusable is left out and the policy chooses again, so the next one takes
        its place (up to MOST_BROKEN such faces). The first search is timed as "search"; searches
        for replacements count with the portraits."""
        assert self.gallery is not None
        counts = self.ledger.shown if self.ledger is not None else None
        decoded: dict[int, Match | None] = {}  # each face's portrait decoded once, however often chosen
        broken: list[int] = []
        while True:
            chosen = [mine[:per_visitor] for mine in candidates(self.gallery, xq, k, self.policy, counts, broken)]
            if not broken:
                watch.lap("search")
            for lookalike in (lookalike for mine in chosen for lookalike in mine):
                if lookalike.face.id not in decoded:
                    decoded[lookalike.face.id] = _match(lookalike, self.display_side)
            newly = [face_id for face_id, match in decoded.items() if match is None and face_id not in broken]
            if not newly or len(broken) >= MOST_BROKEN:
                return [[(found.face, match) for found in mine if (match := decoded[found.face.id]) is not None]
                        for mine in chosen]
            broken += newly

    @Slot()
    def report_exposure(self) -> None:
        if self.ledger is None or self.gallery is None:
            return
        if self._keys is None:  # 10^6 rows take a second
            self._keys = self.gallery.person_keys()
        self.exposure.emit(self.ledger.summary(self._keys))

    @Slot()
    def reset_exposure(self) -> None:
        if self.ledger is not None:
            self.ledger.reset()
        self.report_exposure()

    @Slot(object)
    def offer_gallery(self, gallery: Gallery) -> None:
        """A newly published gallery, opened on the loader thread: keep it for the next visitor."""
        assert self.engine is not None
        try:
            gallery.check_compatible(self.engine.pack.recognizer_id)
        except GalleryError as error:
            gallery.close()
            self.gallery_refused.emit(str(error))
            return
        if self._pending is not None:
            self._pending.close()
        self._pending = gallery
        self.gallery_waiting.emit()

    @Slot()
    def between_visitors(self) -> None:
        """Forget the last analysed frame, write the exposure counts, and swap in a pending gallery now
        that nobody is looking at results."""
        self._analysed = None  # nothing of the last visitor stays, not even in memory
        if self.ledger is not None:
            self.ledger.flush(wait=False)  # written on the ledger's own thread: the next visitor waits for no disk
        if not self._swap_pending() and self.gallery is not None and hidden_ids(self.gallery) is not self._attract_hid:
            self._emit_attract()  # the hide list changed: the attract loop shows nobody it hides

    def _swap_pending(self) -> bool:
        """Swap in a pending gallery (between visitors, or before a capture is searched: a visitor
        who keeps the booth busy must not hold back a version that forgets someone); True if one was."""
        if self._pending is None:
            return False
        old, self.gallery, self._pending = self.gallery, self._pending, None
        self._keys = None
        if old is not None:
            old.close()
        log.info("gallery swapped in: %s", self.gallery.root)
        self._forget_in_ledger()
        self.gallery_changed.emit(self.info())
        self._emit_attract()
        return True

    def _forget_in_ledger(self) -> None:
        """Drop the counts of the people the gallery's forget list names (index-builder forget), and
        of the people and faces the gallery no longer holds."""
        assert self.gallery is not None
        if self.ledger is None:
            return
        home = home_of(self.gallery.root)
        try:
            if home is not None:
                forget = read_forget_list(home)
                self.ledger.forget(forget.identities, forget.faces)  # written at once, before anything else
        except ListError as error:
            log.warning("%s: the exposure ledger keeps its counts", error)
        self._prune_ledger()

    def _prune_ledger(self) -> None:
        """Keep only the counts of this gallery's people and faces: the ledger never outgrows it."""
        assert self.gallery is not None and self.ledger is not None
        try:
            self._keys = self.gallery.person_keys()  # the staff panel's summary reads them too
            dropped = self.ledger.keep_only(self._keys, self.gallery.content_keys())
        except GalleryError as error:  # a damaged row: the ledger keeps its counts, the kiosk serves
            log.warning("%s: the exposure ledger keeps its counts", error)
            return
        if dropped:
            log.info("exposure ledger: %d entries of people and faces no longer in the gallery dropped", dropped)

    def _emit_attract(self) -> None:
        """The attract loop's faces from the current gallery: least shown first, with lookalike pairs."""
        assert self.gallery is not None
        self._attract_hid = hidden_ids(self.gallery)
        try:
            chosen = attract_set(self.gallery, self.ledger.faces_shown if self.ledger is not None else None, self._rng)
        except (GalleryError, RuntimeError) as error:  # the attract loop can do without gallery faces
            log.warning("no gallery faces for the attract loop: %s", error)
            return
        self.attract.emit(chosen)


def _match(found: Lookalike, side: int) -> Match | None:
    """A gallery face as the results screen shows it, its portrait decoded and scaled to `side`
    here, off the GUI thread; or None when its portrait file is unusable (the next face takes its
    place: one face lost is better than the visitor's whole result)."""
    face = found.face
    try:
        picture = _sized(read_picture(face.portrait), side)
    except (ImageError, OSError) as error:
        log.warning("face %s replaced in the results: its portrait %s is unusable (%s)", face.id,
                    face.portrait, error)
        return None
    return Match(found.score, face.display_name, face.caption, face.image, picture, found.likeness)


def _sized(picture: np.ndarray, side: int) -> np.ndarray:
    """A square picture at side x side pixels, so the GUI thread only wraps it."""
    if picture.shape[0] == side:
        return picture
    shrink = side < picture.shape[0]
    return cv2.resize(picture, (side, side), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


class GalleryWatcher:
    """Notices when the gallery link points somewhere new and opens that version off the GUI and
    worker threads; `deliver` receives the opened Gallery (a queued signal to the worker)."""

    def __init__(self, path: str, deliver, refuse) -> None:
        self.path, self.deliver, self.refuse = Path(path), deliver, refuse
        self.current = self.path.resolve()

    def check(self) -> None:
        target = self.path.resolve()
        if target == self.current:
            return
        self.current = target
        threading.Thread(target=self._load, args=(target,), daemon=True, name="gallery-loader").start()

    def _load(self, target: Path) -> None:
        refusal = swap_refusal(target)
        if refusal:
            self.refuse(refusal)
            return
        try:
            self.deliver(Gallery(target))
        except (GalleryError, OSError, RuntimeError) as error:
            self.refuse(str(error))
