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
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal, Slot

from face_engine.detectors import Detections
from face_engine.engine import FaceEngine
from face_engine.fairness import EXACT, MatchPolicy
from face_engine.gallery import (
    PORTRAIT_LIFT,
    PORTRAIT_MARGIN,
    PORTRAIT_SIZE,
    FaceRecord,
    Gallery,
    GalleryError,
    read_picture,
)
from face_engine.imaging import ImageError
from face_engine.memory import swap_refusal
from face_engine.query import Lookalike, Stopwatch, candidates, displayed, open_for_query, visitor_faces
from face_engine.withheld import ListError, hidden_ids, home_of, read_forget_list
from kiosk.attract_faces import attract_set
from kiosk.config import MAX_LOOKALIKES
from kiosk.hints import analyse, visitors
from kiosk.ledger import Ledger
from kiosk.messages import Analysis, Match, Pair, SearchOutcome, WorkerInfo

log = logging.getLogger(__name__)
MOST_BROKEN = 20  # unusable portraits replaced in one search: past this the gallery is damaged, and fewer are shown
# onnxruntime's threads per model (benchmarks/bench_kiosk.py measured the choices on a 2-core machine):
# detection runs on every live frame while the GUI thread draws them, on one core, leaving it the
# other; the embedding runs after a capture, when the live view stands still, on both.
DETECTOR_THREADS, RECOGNIZER_THREADS = 1, 2
# the visitor's crop is cut while the embedding runs, and the shown portraits are decoded side by
# side once the search is done (both cores are free then): OpenCV lets go of Python's lock
PICTURE_THREADS = 2
RETRY_FORESEEN_MS = 300  # after a capture's answer, its retry's portraits are decoded (the results drawn by then)
KEPT_PORTRAITS = 48       # decoded portraits kept at the screen's size (48 MB at 576 pixels): a retry's, a duo's
# the visitor's square, framed as a gallery portrait (PORTRAIT_MARGIN), narrowed down to this where a
# wider square would take in a bystander's face
TIGHTEST_MARGIN = 1.15
BYSTANDER_SHARE = 0.1     # the share of another face's box a visitor's square may take in


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
        # the last frame the live view analysed, its faces, and while someone stands still at the kiosk
        # their embeddings (None otherwise): a capture of that frame reuses them
        self._analysed: tuple[np.ndarray, Detections, np.ndarray | None] | None = None
        self.display_side = PORTRAIT_SIZE  # pixels of the results screen's big tile (set_display_side)
        self._rng = np.random.default_rng()
        self._attract_hid: np.ndarray | None = None  # the hidden faces when the attract set was chosen
        self.portraits = Portraits()
        self.lookalikes = MAX_LOOKALIKES  # how many a capture asks for (as the last one did)
        self._retry_query: np.ndarray | None = None  # the last capture's embeddings, till its retry's portraits

    @Slot()
    def start_up(self) -> None:
        """Load and warm models and gallery, so the first visitor waits for nothing."""
        try:
            self.gallery, self.engine = open_for_query(self.gallery_path, self.pack_name, self.device,
                                                       RECOGNIZER_THREADS, DETECTOR_THREADS)
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
        analysis, found = Analysis(faces=0), None
        # the last frame was embedded ahead: this still visitor's portraits were decoded then
        still_before = self._analysed is not None and self._analysed[2] is not None
        self._analysed = None
        try:
            found = self.engine.detect(frame)
            self._analysed = (frame, found, None)
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            analysis, self._previous_centre = analyse(gray, found, self._previous_centre)
        except Exception:  # one bad frame must not leave the window waiting for an answer forever
            log.exception("analysis of a frame failed")
        self.analysed.emit(replace(analysis, analyse_ms=(time.perf_counter() - start) * 1e3))
        if found is not None and analysis.near and analysis.steady:
            self._embed_ahead(frame, found, foresee=not still_before)

    def _embed_ahead(self, frame: np.ndarray, found: Detections, foresee: bool) -> None:
        """Someone stands still at the kiosk (near): their faces are embedded now, once the live view
        has its answer, so a capture of this frame (a touch, or the countdown's end) only searches.
        With `foresee` (the first time since they moved), their lookalikes' portraits are decoded too
        (Portraits). The embeddings are replaced at the next frame, and dropped when the visitor goes."""
        assert self.engine is not None
        wanted = visitors(found, frame.shape)
        try:
            xq = visitor_faces(self.engine, frame, Stopwatch(), found, lambda _: wanted)[1]
        except Exception:  # the capture embeds them itself
            log.exception("embedding a still visitor ahead of a capture failed")
            return
        self._analysed = (frame, found, xq)
        if foresee:
            self._decode_ahead(xq)

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
        if self._retry_query is not None:  # once the results are drawn: the picture threads wait till then
            QTimer.singleShot(RETRY_FORESEEN_MS, self._foresee_retry)

    def _foresee_retry(self) -> None:
        """The results are on screen: decode the portraits a retry would show now (the ledger counts
        this visit's showings, so the fair policy chooses others). The visitor's embedding goes."""
        xq, self._retry_query = self._retry_query, None
        if xq is not None:
            self._decode_ahead(xq)

    def _decode_ahead(self, xq: np.ndarray) -> None:
        """Start decoding the portraits the policy would now choose for the embeddings `xq`."""
        try:
            chosen = self._chosen(xq, self.lookalikes, [])
            self.portraits.foresee([lookalike.face for mine in chosen for lookalike in mine], self.display_side)
        except Exception:  # the capture decodes them itself
            log.exception("decoding portraits ahead of a capture failed")

    def _search(self, frame: np.ndarray, k: int, frame_time: float) -> SearchOutcome:
        """Each visitor of `frame` (the largest face, and a second one of similar size) beside their
        own lookalikes, with the pictures already at the results screen's size. A frame the live view
        analysed is not searched for faces again; the visitors' crops are cut while they are embedded."""
        assert self.engine is not None
        watch = Stopwatch()
        watch.ms["capture_to_worker"] = round((time.perf_counter() - frame_time) * 1e3, 2)
        known = self._analysed if self._analysed is not None and self._analysed[0] is frame else None
        if known is None:
            detections = self.engine.detect(frame)
            watch.lap("detect")
        else:
            detections, watch.ms["detect"] = known[1], 0.0  # reused from the live view's analysis
        wanted = visitors(detections, frame.shape)
        crops = [self.portraits.pool.submit(visitor_picture, frame, detections.boxes, face, self.display_side)
                 for face in range(wanted)]
        if known is not None and known[2] is not None and len(known[2]) == wanted:
            xq, watch.ms["align"], watch.ms["embed"] = known[2], 0.0, 0.0  # embedded as the live view analysed it
        else:
            xq = visitor_faces(self.engine, frame, watch, detections, lambda _: wanted)[1]
        self.lookalikes = k
        shown = self._shown(xq, k, watch)
        watch.lap("portraits")
        if self.ledger is not None:
            self.ledger.record([face for mine in shown for face, _ in mine])  # what the visitors see
        pairs = [_pair(crop, displayed(match for _, match in mine)) for crop, mine in zip(crops, shown, strict=False)
                 if mine]
        self._retry_query = xq if pairs else None
        watch.lap("visitor")
        if not len(detections.boxes):
            return SearchOutcome(0, failure="fail_no_face", timings_ms=watch.ms, frame_time=frame_time)
        if not pairs:
            return SearchOutcome(len(detections.boxes), failure="fail_no_match", timings_ms=watch.ms,
                                 frame_time=frame_time)
        return SearchOutcome(len(detections.boxes), pairs, timings_ms=watch.ms, frame_time=frame_time)

    def _chosen(self, xq: np.ndarray, k: int, broken: list[int]) -> list[list[Lookalike]]:
        """The lookalikes the policy chooses for each visitor (a row of xq), never the faces at
        `broken`: k for one visitor; a duo sees each visitor's best only."""
        assert self.gallery is not None
        counts = self.ledger.shown if self.ledger is not None else None
        per_visitor = 1 if len(xq) > 1 else k
        return [mine[:per_visitor] for mine in candidates(self.gallery, xq, k, self.policy, counts, broken)]

    def _shown(self, xq: np.ndarray, k: int, watch: Stopwatch) -> list[list[tuple[FaceRecord, Match]]]:
        """For each visitor, the lookalikes `_chosen`, each beside its Match. A face whose portrait
        is unusable is left out and the policy chooses again, so the next one takes its place (up to
        MOST_BROKEN such faces). The first search is timed as "search"; searches for replacements
        count with the portraits."""
        decoded: dict[int, Match | None] = {}  # each face's portrait decoded once, however often chosen
        broken: list[int] = []
        while True:
            chosen = self._chosen(xq, k, broken)
            if not broken:
                watch.lap("search")
            new = {found.face.id: found for mine in chosen for found in mine if found.face.id not in decoded}
            pictures = self.portraits.pictures([found.face for found in new.values()], self.display_side)
            decoded.update((face_id, _match(found, picture))
                           for (face_id, found), picture in zip(new.items(), pictures, strict=True))
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
        self._analysed = self._retry_query = None  # nothing of the last visitor stays, not even in memory
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
        self.portraits.clear()  # its face ids name other faces now
        if old is not None:
            old.close()
        del old  # its index goes before the new gallery's keys are read: both do not fit beside 10^7 faces
        log.info("gallery swapped in: %s", self.gallery.root)
        self._forget_in_ledger()
        self.gallery_changed.emit(self.info())
        self._emit_attract()
        return True

    def _forget_in_ledger(self) -> None:
        """The exposure ledger without the people and faces this gallery no longer shows."""
        assert self.gallery is not None
        if self.ledger is not None:
            self._keys = forget_in_ledger(self.gallery, self.ledger)

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


def forget_in_ledger(gallery: Gallery, ledger: Ledger) -> list[str] | None:
    """Drop the counts of the people the gallery's forget list names (index-builder forget), and
    of the people and faces the gallery no longer holds (the ledger never outgrows it); the
    gallery's person keys, read for that (the staff panel's summary reads them too), or None."""
    home = home_of(gallery.root)
    try:
        if home is not None:
            forget = read_forget_list(home)
            ledger.forget(forget.identities, forget.faces)  # written at once, before anything else
    except ListError as error:
        log.warning("%s: the exposure ledger keeps its counts", error)
    try:
        keys = gallery.person_keys()
        dropped = ledger.keep_only(keys, gallery.content_keys())
    except GalleryError as error:  # a damaged row: the ledger keeps its counts, the kiosk serves
        log.warning("%s: the exposure ledger keeps its counts", error)
        return None
    if dropped:
        log.info("exposure ledger: %d entries of people and faces no longer in the gallery dropped", dropped)
    return keys


class Portraits:
    """Gallery portraits at the results screen's size, decoded off the GUI thread on PICTURE_THREADS
    threads (which also cut the visitors' crops); the last KEPT_PORTRAITS are kept, so a capture
    finds ready those decoded ahead of it (`foresee`) and a retry's. Used by the worker's thread
    only; `clear` after a gallery swap (face ids name other faces then)."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(PICTURE_THREADS, thread_name_prefix="pictures")
        self._kept: OrderedDict[tuple[int, int], Future[np.ndarray | None]] = OrderedDict()

    def foresee(self, faces: list[FaceRecord], side: int) -> None:
        """Start decoding these faces' portraits, waiting for none."""
        for face in faces:
            self._decoding(face, side)

    def pictures(self, faces: list[FaceRecord], side: int) -> list[np.ndarray | None]:
        """Each face's portrait at side x side, or None where its file is unusable."""
        return [future.result() for future in [self._decoding(face, side) for face in faces]]

    def _decoding(self, face: FaceRecord, side: int) -> Future[np.ndarray | None]:
        key = (face.id, side)
        if key in self._kept:
            self._kept.move_to_end(key)
        else:
            self._kept[key] = self.pool.submit(_portrait, face, side)
            while len(self._kept) > KEPT_PORTRAITS:
                self._kept.popitem(last=False)
        return self._kept[key]

    def clear(self) -> None:
        self._kept.clear()

    def close(self) -> None:
        self.pool.shutdown()


def _portrait(face: FaceRecord, side: int) -> np.ndarray | None:
    """A gallery face's portrait decoded and scaled to `side`; None when its file is unusable (the
    next face takes its place: one face lost is better than the visitor's whole result)."""
    try:
        return _sized(read_picture(face.portrait), side)
    except (ImageError, OSError) as error:
        log.warning("face %s replaced in the results: its portrait %s is unusable (%s)", face.id,
                    face.portrait, error)
        return None


def _match(found: Lookalike, picture: np.ndarray | None) -> Match | None:
    """A gallery face as the results screen shows it; None without its portrait."""
    face = found.face
    if picture is None:
        return None
    return Match(found.score, face.display_name, face.caption, face.image, picture, found.likeness, face.source_side)


def _pair(crop: Future[tuple[np.ndarray, int]], matches: list[Match]) -> Pair:
    picture, across = crop.result()
    return Pair(picture, matches, across)


def visitor_picture(frame: np.ndarray, boxes: np.ndarray, face: int, side: int) -> tuple[np.ndarray, int]:
    """The visitor's own face at side x side pixels, and the camera pixels across it: the square of
    visitor_square, cut from the frame in one resize."""
    x, y, across = visitor_square(frame.shape, boxes, face)
    # a copy, never a view: the results must not keep the whole camera frame alive
    return np.ascontiguousarray(_sized(frame[y:y + across, x:x + across], side)), across


def visitor_square(shape: tuple[int, ...], boxes: np.ndarray, face: int) -> tuple[int, int, int]:
    """(x, y, side) in the frame of the square the results show of face number `face`: centred on
    its box and lifted a little, PORTRAIT_MARGIN times the box's longer side, as the gallery's
    portraits are cut; narrower, down to TIGHTEST_MARGIN, where a wider square would take in more
    than BYSTANDER_SHARE of another face's box; moved inside the frame, never padded."""
    height, width = shape[:2]
    x1, y1, x2, y2 = (float(v) for v in boxes[face])
    longer = max(x2 - x1, y2 - y1, 1.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - (y2 - y1) * PORTRAIT_LIFT
    others = np.delete(boxes, face, axis=0)
    for margin in np.linspace(PORTRAIT_MARGIN, TIGHTEST_MARGIN, 10):
        side = int(min(round(longer * margin), width, height))
        x = int(min(max(round(cx - side / 2), 0), width - side))
        y = int(min(max(round(cy - side / 2), 0), height - side))
        if _taken_in(others, x, y, side) <= BYSTANDER_SHARE:
            break
    return x, y, side


def _taken_in(boxes: np.ndarray, x: int, y: int, side: int) -> float:
    """The largest share of any of `boxes` (n, 4) that the square (x, y, side) covers; 0 for none."""
    if not len(boxes):
        return 0.0
    boxes = boxes.astype(np.float64)
    across = np.clip(np.minimum(boxes[:, 2], x + side) - np.maximum(boxes[:, 0], x), 0, None)
    down = np.clip(np.minimum(boxes[:, 3], y + side) - np.maximum(boxes[:, 1], y), 0, None)
    areas = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6)
    return float((across * down / areas).max())


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
