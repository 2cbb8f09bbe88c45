"""The kiosk window: wires the camera thread, the inference worker and the screens to the Flow.

The GUI thread never waits: frames go to the worker only while it is idle (others are dropped),
and everything comes back as plain data through queued signals.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, QThread, QTimer, Signal
from PySide6.QtGui import QFont, QMouseEvent
from PySide6.QtWidgets import QApplication, QMainWindow, QStackedWidget

from kiosk.assets import ASSETS
from kiosk.camera import CaptureThread, open_source
from kiosk.config import KioskConfig, PinGuard, save_config
from kiosk.flow import Analysis, Flow, State, Timing
from kiosk.i18n import tr
from kiosk.ledger import Ledger
from kiosk.screens import LivePage, MessagePage, PinPage, ResultsPage, StaffPage
from kiosk.worker import GalleryWatcher, InferenceWorker, SearchOutcome

log = logging.getLogger(__name__)

DESIGN_HEIGHT = 1080
TICK_MS = 100
WATCH_MS = 2000
LONG_PRESS_MS = 3000
STAFF_CORNER = 0.08  # share of the window's height: the top-left square that opens the staff panel
CJK_FONTS = ["Noto Sans CJK SC", "WenQuanYi Micro Hei", "Source Han Sans SC", "Sans Serif"]


class KioskWindow(QMainWindow):
    request_analyse = Signal(object)
    request_search = Signal(object, int, float)
    request_between_visitors = Signal()
    request_exposure = Signal()
    request_exposure_reset = Signal()
    gallery_offered = Signal(object)
    gallery_problem = Signal(str)

    def __init__(self, config: KioskConfig, config_path: Path | None = None, source=None) -> None:
        super().__init__()
        self.config, self.config_path = config, config_path
        self.lang = config.lang
        self.flow = Flow(Timing(config.idle_seconds, config.results_seconds,
                                countdown_seconds=config.countdown_seconds))
        self.latest_frame: np.ndarray | None = None
        self.latest_frame_time = 0.0
        self.analysed_frame: tuple[np.ndarray, float] | None = None  # the last frame sent to the worker, and its time
        self.worker_busy = False
        self.worker_ready = False
        self.info: dict = {}
        self.gallery_warning = ""
        self.staff_open = False
        self.pin_guard = PinGuard()  # lives as long as the window: closing the PIN pad does not end a wait
        self.frames_seen = 0
        self.analyses = 0
        self.rates = {"camera": 0.0, "drawn": 0.0, "analysed": 0.0}  # per second, over the last second
        self.results_latency_ms: list[float] = []
        self.stage_ms: dict[str, float] = {}  # the worker's latest time per stage, as its answers carried
        self._rates_mark = (time.perf_counter(), 0, 0, 0)
        self._shown_state: State | None = None

        self.splash = MessagePage("title", "getting_ready")
        self.attract = MessagePage("title", "invite", with_language=True)
        self.live = LivePage()
        self.results = ResultsPage()
        self.camera_wait = MessagePage("one_moment", "camera_reconnecting")
        self.pin = PinPage()
        self.staff = StaffPage()
        self.stack = QStackedWidget()
        for page in (self.splash, self.attract, self.live, self.results, self.camera_wait, self.pin, self.staff):
            self.stack.addWidget(page)
        self.setCentralWidget(self.stack)
        self.setWindowTitle("遇见另一个我 · Meet the other me")
        font = QFont()
        font.setFamilies(CJK_FONTS)
        self.setFont(font)
        self.theme = (ASSETS / "theme.qss").read_text(encoding="utf-8")

        self.attract.language_clicked.connect(self.toggle_language)
        self.results.try_again.connect(self.on_try_again)
        self.results.drawn.connect(self.on_results_drawn)
        self.pin.entered.connect(self.on_pin)
        self.pin.cancelled.connect(self.close_staff)
        self.staff.apply.connect(self.apply_staff_settings)
        self.staff.closed.connect(self.close_staff)
        self.staff.quit.connect(self.close)

        self.worker_thread = QThread(self)
        self.worker_thread.setObjectName("inference")
        self.worker = InferenceWorker(config.gallery, config.pack, config.device, config.match_policy(), Ledger())
        self.worker.moveToThread(self.worker_thread)
        self.worker_thread.started.connect(self.worker.start_up)
        self.worker.ready.connect(self.on_worker_ready)
        self.worker.failed.connect(self.on_worker_failed)
        self.worker.analysed.connect(self.on_analysed)
        self.worker.searched.connect(self.on_searched)
        self.worker.gallery_waiting.connect(self.on_gallery_waiting)
        self.worker.gallery_changed.connect(self.on_gallery_changed)
        self.worker.gallery_refused.connect(self.on_gallery_refused)
        self.request_analyse.connect(self.worker.analyse)
        self.request_search.connect(self.worker.search)
        self.request_between_visitors.connect(self.worker.between_visitors)
        self.request_exposure.connect(self.worker.report_exposure)
        self.request_exposure_reset.connect(self.worker.reset_exposure)
        self.worker.exposure.connect(self.staff.show_exposure)
        self.staff.reset_exposure.connect(self.request_exposure_reset.emit)
        self.gallery_offered.connect(self.worker.offer_gallery)
        self.gallery_problem.connect(self.on_gallery_refused)
        self.watcher = GalleryWatcher(config.gallery, self.gallery_offered.emit, self.gallery_problem.emit)

        self.capture: CaptureThread | None = None
        self.start_camera(source if source is not None else open_source(config.camera))
        self.worker_thread.start()

        # PySide6 takes a signal's slot as a keyword (timeout=); its stubs know only the properties
        self.ticker = QTimer(self, interval=TICK_MS, timeout=self.tick)  # type: ignore[call-arg]
        self.ticker.start()
        self.gallery_timer = QTimer(self, interval=WATCH_MS, timeout=self.watcher.check)  # type: ignore[call-arg]
        self.gallery_timer.start()
        self.long_press = QTimer(  # type: ignore[call-arg]
            self, singleShot=True, interval=LONG_PRESS_MS, timeout=self.open_staff)
        app = QApplication.instance()
        assert app is not None, "a window exists only inside a QApplication"
        app.installEventFilter(self)
        self.retranslate()
        self.show_state()

    def show_fullscreen(self) -> None:
        """Fullscreen even without a window manager (a bare X session on a kiosk)."""
        self.setGeometry(self.screen().geometry())
        self.showFullScreen()

    # camera ---------------------------------------------------------------------------------
    def start_camera(self, source) -> None:
        if self.capture is not None:
            self.capture.stop()
        self.capture = CaptureThread(source, self)
        self.capture.frame_ready.connect(self.on_frame)
        self.capture.camera_lost.connect(lambda reason: self._event(self.flow.camera_lost))
        self.capture.camera_back.connect(lambda: self._event(self.flow.camera_back))
        self.capture.start()

    def on_frame(self, frame: np.ndarray) -> None:
        self.latest_frame, self.latest_frame_time = frame, time.perf_counter()
        self.frames_seen += 1
        if self.flow.state in (State.LIVE, State.COUNTDOWN):
            self.live.show_frame(frame)
        watching = self.flow.state in (State.ATTRACT, State.LIVE, State.COUNTDOWN)
        if self.worker_ready and not self.worker_busy and watching:
            self.worker_busy = True
            self.analysed_frame = (frame, self.latest_frame_time)  # a capture takes this one: its faces are known
            self.request_analyse.emit(frame)

    # worker ---------------------------------------------------------------------------------
    def on_worker_ready(self, info: dict) -> None:
        self.info, self.worker_ready = info, True
        log.info("ready: %s", info)
        self._event(self.flow.ready)

    def on_worker_failed(self, message: str) -> None:
        self.splash.line.setText(message)

    def on_analysed(self, analysis: Analysis) -> None:
        self.worker_busy = False
        self.analyses += 1
        self.stage_ms["analyse"] = analysis.analyse_ms
        self.flow.analysed(analysis, time.monotonic())
        self.show_state()

    def capture_now(self) -> None:
        if self.analysed_frame is None:
            self.flow.results(False, time.monotonic())
        else:
            frame, frame_time = self.analysed_frame
            self.request_search.emit(frame, self.config.lookalikes, frame_time)
        self.show_state()

    def on_searched(self, outcome: SearchOutcome) -> None:
        self.stage_ms.update({f"search_{stage}": ms for stage, ms in outcome.timings_ms.items()})
        found = bool(outcome.pairs)
        if found and self.flow.state is State.SEARCHING:
            self.results.show_outcome(outcome, self.config)
        self.flow.results(found, time.monotonic())
        self.show_state()

    def on_results_drawn(self, when: float) -> None:
        if self.results.outcome is not None:
            self.results_latency_ms.append((when - self.results.outcome.frame_time) * 1e3)

    def on_gallery_waiting(self) -> None:
        if self.flow.forgets_visitor:
            self.request_between_visitors.emit()

    def on_gallery_changed(self, info: dict) -> None:
        self.info, self.gallery_warning = info, ""

    def on_gallery_refused(self, reason: str) -> None:
        log.warning("gallery refused: %s", reason)
        self.gallery_warning = tr(self.lang, "gallery_refused", reason=reason)

    # flow -----------------------------------------------------------------------------------
    def _event(self, handler) -> None:
        handler(time.monotonic())
        self.show_state()

    def tick(self) -> None:
        now = time.monotonic()
        elapsed = time.perf_counter() - self._rates_mark[0]
        if elapsed >= 1.0:
            counts = (self.frames_seen, self.live.painted_frames, self.analyses)
            self.rates = {name: (count - before) / elapsed for name, count, before
                          in zip(("camera", "drawn", "analysed"), counts, self._rates_mark[1:], strict=True)}
            self._rates_mark = (time.perf_counter(), *counts)
            if self.staff_open:
                self.refresh_staff()
        if self.staff_open:
            return
        if self.flow.tick(now):
            self.capture_now()
        self.show_state()

    def show_state(self) -> None:
        if self.staff_open:
            return
        state = self.flow.state
        if self.flow.forgets_visitor and self.results.outcome is not None:
            self.results.show_outcome(None, self.config)  # nothing about the last visitor remains
        if state is State.ATTRACT and self._shown_state is not State.ATTRACT:
            self.request_between_visitors.emit()
        self._shown_state = state
        self.live.hint = self.flow.hint
        self.live.ready = state is State.COUNTDOWN
        self.live.countdown = self.flow.countdown_left(time.monotonic()) if state is State.COUNTDOWN else 0
        self.live.searching = state is State.SEARCHING
        page = {State.SPLASH: self.splash, State.ATTRACT: self.attract, State.LIVE: self.live,
                State.COUNTDOWN: self.live, State.SEARCHING: self.live, State.RESULTS: self.results,
                State.CAMERA_WAIT: self.camera_wait}[state]
        if self.stack.currentWidget() is not page:
            self.stack.setCurrentWidget(page)
        self.live.update()

    def on_try_again(self) -> None:
        self._event(self.flow.touch)

    def mousePressEvent(self, event) -> None:
        if self.staff_open or self._in_staff_corner(event.position()):
            return
        if self.flow.touch(time.monotonic()):
            self.capture_now()
        self.show_state()

    # staff ----------------------------------------------------------------------------------
    def _in_staff_corner(self, position) -> bool:
        corner = self.height() * STAFF_CORNER
        return position.x() < corner and position.y() < corner

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.MouseButtonPress and isinstance(event, QMouseEvent) and not self.staff_open:
            position = self.mapFromGlobal(event.globalPosition().toPoint())
            if self._in_staff_corner(position):
                self.long_press.start()
        elif event.type() == QEvent.Type.MouseButtonRelease:
            self.long_press.stop()
        return False

    def open_staff(self) -> None:
        self.staff_open = True
        self.pin.reset(self._pin_message(wrong=False))
        self.stack.setCurrentWidget(self.pin)

    def on_pin(self, pin: str) -> None:
        if self.config.pin_hash and self.pin_guard.attempt(pin, self.config.pin_hash):
            self.staff.load(self.config, ["0", "1"])
            self.refresh_staff()
            self.stack.setCurrentWidget(self.staff)
        else:
            self.pin.reset(self._pin_message(wrong=True))

    def _pin_message(self, wrong: bool) -> str:
        """What the PIN pad says: that no PIN is set, how long to wait after wrong PINs, or whether
        the last PIN was wrong."""
        if not self.config.pin_hash:
            return tr(self.lang, "staff_locked")
        wait = self.pin_guard.wait_left()
        if wait:
            return tr(self.lang, "pin_wait", seconds=wait)
        return tr(self.lang, "wrong_pin") if wrong else ""

    def refresh_staff(self) -> None:
        gallery = (f"{self.info.get('gallery', '')}\n{self.info.get('faces', 0)} faces, "
                   f"{self.info.get('identities', 0)} identities, index {self.info.get('index', '')}, "
                   f"built {self.info.get('built_at', '')}")
        providers = ", ".join(f"{model}: {'/'.join(p.replace('ExecutionProvider', '') for p in used)}"
                              for model, used in self.info.get("providers", {}).items())
        latency = ", ".join(f"{stage} {ms:.0f} ms" for stage, ms in self.stage_ms.items())
        rates = ", ".join(f"{name} {rate:.0f}/s" for name, rate in self.rates.items())
        performance = f"frames: {rates}\n{latency}"
        self.staff.show_status(gallery, f"{self.info.get('pack', '')} — {providers}", performance, self.gallery_warning)
        self.request_exposure.emit()

    def apply_staff_settings(self, camera: str, lang: str, lookalikes: int) -> None:
        changed_camera = camera != self.config.camera
        self.config = replace(self.config, camera=camera, lang=lang, lookalikes=lookalikes)
        if self.config_path is not None:
            save_config(self.config, self.config_path)
        self.lang = lang
        self.retranslate()
        if changed_camera:
            self.start_camera(open_source(camera))

    def close_staff(self) -> None:
        self.staff_open = False
        self.show_state()

    # language and look ----------------------------------------------------------------------
    def toggle_language(self) -> None:
        self.lang = "en" if self.lang == "zh" else "zh"
        self.retranslate()

    def retranslate(self) -> None:
        for page in (self.splash, self.attract, self.live, self.results, self.camera_wait, self.pin, self.staff):
            page.retranslate(self.lang)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        scale = self.height() / DESIGN_HEIGHT
        self.setStyleSheet(scaled_theme(self.theme, scale))

    def closeEvent(self, event) -> None:
        self.ticker.stop()
        self.gallery_timer.stop()
        if self.capture is not None:
            self.capture.stop()
        self.worker_thread.quit()
        self.worker_thread.wait()
        if self.worker.ledger is not None:  # the worker thread has ended: nobody else touches it now
            self.worker.ledger.flush()
        super().closeEvent(event)


def scaled_theme(theme: str, scale: float) -> str:
    """The theme with every @N replaced by N scaled to this window (at least 1 pixel)."""
    return re.sub(r"@(\d+)", lambda m: str(max(1, round(int(m.group(1)) * scale))), theme)
