"""The GUI thread's side of the inference worker: its thread, the requests sent to it, and the
gallery watch that offers it new gallery versions.

The GUI thread never waits: a frame goes to the worker only while it is idle (others are dropped),
and a capture takes the frame analysed last, whose faces the worker already knows.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QThread, QTimer, Signal

from kiosk.config import KioskConfig
from kiosk.ledger import Ledger
from kiosk.messages import SearchOutcome
from kiosk.worker import GalleryWatcher, InferenceWorker

WATCH_MS = 2000


class WorkerLink(QObject):
    request_analyse = Signal(object)
    request_search = Signal(object, int, float)
    request_between_visitors = Signal()
    gallery_offered = Signal(object)
    gallery_problem = Signal(str)

    def __init__(self, config: KioskConfig, parent: QObject) -> None:
        super().__init__(parent)
        self.ready = False  # the worker has loaded and warmed its models and gallery
        self.busy = False  # a frame is being analysed: the next ones are dropped
        self.analysed_frame: tuple[np.ndarray, float] | None = None  # the last frame sent to the worker, and its time
        self.capture_time: float | None = None  # the frame time of the capture being searched
        self.worker_thread = QThread(self)
        self.worker_thread.setObjectName("inference")
        self.worker = InferenceWorker(config.gallery, config.pack, config.device, config.match_policy(), Ledger())
        self.worker.moveToThread(self.worker_thread)
        self.worker_thread.started.connect(self.worker.start_up)
        self.request_analyse.connect(self.worker.analyse)
        self.request_search.connect(self.worker.search)
        self.request_between_visitors.connect(self.worker.between_visitors)
        self.gallery_offered.connect(self.worker.offer_gallery)
        self.watcher = GalleryWatcher(config.gallery, self.gallery_offered.emit, self.gallery_problem.emit)
        # PySide6 takes a signal's slot as a keyword (timeout=); its stubs know only the properties
        self.gallery_timer = QTimer(self, interval=WATCH_MS, timeout=self.check_gallery)  # type: ignore[call-arg]

    def watch(self, gallery: str) -> None:
        """The gallery to load and watch, when the settings completed at start-up name another."""
        self.worker.gallery_path = gallery
        self.watcher = GalleryWatcher(gallery, self.gallery_offered.emit, self.gallery_problem.emit)

    def start(self) -> None:
        self.worker_thread.start()
        self.gallery_timer.start()

    def check_gallery(self) -> None:
        self.watcher.check()

    def offer(self, frame: np.ndarray, frame_time: float) -> None:
        """Analyse `frame` if the worker is ready and idle; otherwise it is dropped."""
        if self.ready and not self.busy:
            self.busy = True
            self.analysed_frame = (frame, frame_time)  # a capture takes this one: its faces are known
            self.request_analyse.emit(frame)

    def capture(self, k: int) -> bool:
        """Search the frame analysed last for `k` lookalikes a visitor; False when there is none."""
        if self.analysed_frame is None:
            return False
        frame, frame_time = self.analysed_frame
        self.capture_time = frame_time
        self.request_search.emit(frame, k, frame_time)
        return True

    def is_current(self, outcome: SearchOutcome) -> bool:
        """False for the answer to a capture that timed out: it is not this visitor's."""
        return outcome.frame_time == self.capture_time

    def forget(self) -> None:
        """Drop the last analysed frame: nothing about the last visitor stays."""
        self.analysed_frame = None

    def stop(self) -> None:
        """Stop watching the gallery, end the worker's thread, then write its exposure counts."""
        self.gallery_timer.stop()
        self.worker_thread.quit()
        self.worker_thread.wait()
        self.worker.portraits.close()
        if self.worker.ledger is not None:  # the worker thread has ended: nobody else touches it now
            self.worker.ledger.flush()
