"""The kiosk window: wires the camera thread, the inference worker and the screens to the Flow.

The GUI thread never waits: frames go to the worker only while it is idle (others are dropped),
and everything comes back as plain data through queued signals.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, QThread, QTimer, Signal
from PySide6.QtGui import QFont, QMouseEvent
from PySide6.QtWidgets import QApplication, QMainWindow, QStackedWidget

from kiosk.assets import ASSETS
from kiosk.attract import AttractPage
from kiosk.camera import CaptureThread, camera_problem, open_source
from kiosk.config import MAX_PIN_DIGITS, MIN_PIN_DIGITS, KioskConfig, PinGuard, hash_pin, save_config
from kiosk.flow import Analysis, Flow, State, Timing
from kiosk.i18n import tr
from kiosk.ledger import Ledger
from kiosk.log import log_path, log_tail, visit_line
from kiosk.screens import LivePage, MessagePage, PinPage, ResultsPage, StaffPage
from kiosk.worker import GalleryWatcher, InferenceWorker, SearchOutcome

log = logging.getLogger(__name__)

DESIGN_HEIGHT = 1080
TICK_MS = 100
WATCH_MS = 2000
LONG_PRESS_MS = 3000
STAFF_IDLE_SECONDS = 30.0  # the staff panel and PIN pad close after this long untouched
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
    prepared = Signal(dict)  # settings made by `prepare` off the GUI thread (the demo's gallery and camera)

    def __init__(self, config: KioskConfig, config_path: Path | None = None, source=None,
                 prepare: Callable[[], dict[str, str]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`prepare`, when given, runs on a thread while the splash shows; the settings it returns
        complete `config` before the camera and the models start. `clock` gives the Flow's time."""
        super().__init__()
        self.config, self.config_path, self.clock = config, config_path, clock
        self.lang = config.lang  # the visitor's choice; back to config.lang at every attract screen
        self.flow = Flow(Timing(config.idle_seconds, config.results_seconds,
                                countdown_seconds=config.countdown_seconds, away_seconds=config.away_seconds))
        self.latest_frame: np.ndarray | None = None
        self.latest_frame_time = 0.0
        self.analysed_frame: tuple[np.ndarray, float] | None = None  # the last frame sent to the worker, and its time
        self.capture_time: float | None = None  # the frame time of the capture being searched
        self.worker_busy = False
        self.worker_ready = False
        self.info: dict = {}
        self.gallery_warning = ""
        self.staff_open = False
        self.staff_touched = 0.0  # clock() of the last touch on the staff panel or PIN pad
        self.pin_guard = PinGuard()  # lives as long as the window: closing the PIN pad does not end a wait
        self.new_pin: str | None = None  # first run: the PIN chosen once, waiting to be entered again
        self.camera_refusal = ""
        self.visits = 0
        self.preparing_since: float | None = None
        self._live_whole_second = False  # the live view showed since the last rates mark
        self.frames_seen = 0
        self.analyses = 0
        self.rates = {"camera": 0.0, "drawn": 0.0, "analysed": 0.0}  # per second, over the last second
        self.results_latency_ms: list[float] = []
        self.stage_ms: dict[str, float] = {}  # the worker's latest time per stage, as its answers carried
        self._rates_mark = (time.perf_counter(), 0, 0, 0)
        self._shown_state: State | None = None

        self.splash = MessagePage("title", "getting_ready")
        self.attract = AttractPage()
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
        self.results.touched.connect(lambda: self._event(self.flow.touch))
        self.results.drawn.connect(self.on_results_drawn)
        self.pin.entered.connect(self.on_pin)
        self.pin.cancelled.connect(self.close_staff)
        self.staff.apply.connect(self.apply_staff_settings)
        self.staff.quit.connect(self.close)
        self.staff.restart_camera.connect(lambda: self.start_camera(open_source(self.config.camera)))
        self.prepared.connect(self.on_prepared)

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
        self.results.resized.connect(self.worker.set_display_side)
        self.request_between_visitors.connect(self.worker.between_visitors)
        self.request_exposure.connect(self.worker.report_exposure)
        self.request_exposure_reset.connect(self.worker.reset_exposure)
        self.worker.exposure.connect(self.staff.show_exposure)
        self.worker.attract.connect(self.attract.show_set)
        self.staff.reset_exposure.connect(self.request_exposure_reset.emit)
        self.gallery_offered.connect(self.worker.offer_gallery)
        self.gallery_problem.connect(self.on_gallery_refused)
        self.watcher = GalleryWatcher(config.gallery, self.gallery_offered.emit, self.gallery_problem.emit)

        # PySide6 takes a signal's slot as a keyword (timeout=); its stubs know only the properties
        self.ticker = QTimer(self, interval=TICK_MS, timeout=self.tick)  # type: ignore[call-arg]
        self.ticker.start()
        self.gallery_timer = QTimer(self, interval=WATCH_MS, timeout=self.check_gallery)  # type: ignore[call-arg]
        self.capture: CaptureThread | None = None
        if prepare is None:
            self.start(source if source is not None else open_source(config.camera))
        else:
            self.preparing_since = clock()
            threading.Thread(target=self._prepare, args=(prepare,), daemon=True, name="prepare").start()
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

    def show_windowed(self, share: float = 0.9) -> None:
        """A window `share` of the screen's free area, centred on it."""
        area = self.screen().availableGeometry()
        self.resize(int(area.width() * share), int(area.height() * share))
        frame = self.frameGeometry()
        frame.moveCenter(area.center())
        self.move(frame.topLeft())
        self.show()

    # start-up -------------------------------------------------------------------------------
    def _prepare(self, prepare: Callable[[], dict[str, str]]) -> None:
        try:
            settings = prepare()
        except Exception as error:  # shown on the splash, like any start-up failure
            log.exception("preparing failed")
            self.worker.failed.emit(str(error))
            return
        self.prepared.emit(settings)

    def on_prepared(self, settings: dict) -> None:
        self.preparing_since = None
        self.config = replace(self.config, **settings)
        self.splash.line.setText(tr(self.lang, "getting_ready"))
        self.worker.gallery_path = self.config.gallery
        self.watcher = GalleryWatcher(self.config.gallery, self.gallery_offered.emit, self.gallery_problem.emit)
        self.start(open_source(self.config.camera))

    def start(self, source) -> None:
        """The camera, the models and the gallery watch, now that the settings are complete."""
        self.start_camera(source)
        self.worker_thread.start()
        self.gallery_timer.start()

    def check_gallery(self) -> None:
        self.watcher.check()

    # camera ---------------------------------------------------------------------------------
    def start_camera(self, source) -> None:
        """A new capture thread; only its own signals count from now on (the old one's queued ones
        are ignored), and its first frame says the camera works."""
        old, self.capture = self.capture, None
        if old is not None:
            old.stop()
            old.deleteLater()
        self.capture = CaptureThread(source, self)
        self.capture.frame_ready.connect(self.on_frame)
        self.capture.camera_lost.connect(self.on_camera_lost)
        self.capture.camera_back.connect(self.on_camera_back)
        self.capture.start()

    def on_camera_lost(self, reason: str) -> None:
        if self.sender() is self.capture:
            self.flow.camera_lost(reason, self.clock())
            self.show_state()

    def on_camera_back(self) -> None:
        if self.sender() is self.capture:
            self._event(self.flow.camera_back)

    def on_frame(self, frame: np.ndarray) -> None:
        if self.sender() is not self.capture:
            return
        self.latest_frame, self.latest_frame_time = frame, time.perf_counter()
        self.frames_seen += 1
        if self.flow.state in (State.LIVE, State.COUNTDOWN):
            self.live.show_frame(frame)
        # on the results too: they close when the face has gone
        watching = self.flow.state in (State.ATTRACT, State.LIVE, State.COUNTDOWN, State.RESULTS)
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
        self.preparing_since = None
        self.splash.line.setText(message)

    def on_analysed(self, analysis: Analysis) -> None:
        self.worker_busy = False
        self.analyses += 1
        self.stage_ms["analyse"] = analysis.analyse_ms
        self.flow.analysed(analysis, self.clock())
        self.show_state()

    def capture_now(self) -> None:
        if self.analysed_frame is None:
            self.flow.results("fail_no_face", self.clock())
        else:
            frame, frame_time = self.analysed_frame
            self.capture_time = frame_time
            self.request_search.emit(frame, self.config.lookalikes, frame_time)
        self.show_state()

    def on_searched(self, outcome: SearchOutcome) -> None:
        if outcome.frame_time != self.capture_time:  # the answer to a capture that timed out: not this visitor's
            log.warning("a late search answer was dropped (its capture had timed out)")
            return
        self.stage_ms.update({f"search_{stage}": ms for stage, ms in outcome.timings_ms.items()})
        failure = "" if outcome.pairs else outcome.failure or "fail_search"
        self.visits += 1
        scores = [match.score for pair in outcome.pairs for match in pair.matches]
        total_ms = (time.perf_counter() - outcome.frame_time) * 1e3
        log.info(visit_line(self.visits, outcome.faces, scores, total_ms, failure))
        if not failure and self.flow.state is State.SEARCHING:
            self.results.show_outcome(outcome, self.config)
        self.flow.results(failure, self.clock())
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
        handler(self.clock())
        self.show_state()

    def tick(self) -> None:
        now = self.clock()
        self.measure_rates()
        if self.preparing_since is not None:
            self.splash.line.setText(tr(self.lang, "preparing_demo", seconds=int(now - self.preparing_since)))
        if self.staff_open:
            if now - self.staff_touched >= STAFF_IDLE_SECONDS:
                log.info("staff panel closed after %.0f s untouched", STAFF_IDLE_SECONDS)
                self.close_staff()
            return
        if self.flow.tick(now):
            self.capture_now()
        if self.flow.state is State.RESULTS:
            self.results.set_time_left(self.flow.results_left(now))
        self.show_state()

    def measure_rates(self) -> None:
        """Frames a second over the last second. "drawn" counts only seconds the live view showed
        throughout: elsewhere (the staff panel over it among them) nothing is drawn, by design."""
        elapsed = time.perf_counter() - self._rates_mark[0]
        if elapsed < 1.0:
            return
        counts = (self.frames_seen, self.live.painted_frames, self.analyses)
        rates = {name: (count - before) / elapsed for name, count, before
                 in zip(("camera", "drawn", "analysed"), counts, self._rates_mark[1:], strict=True)}
        showing_live = self.stack.currentWidget() is self.live
        if not (self._live_whole_second and showing_live):
            rates["drawn"] = self.rates["drawn"]
        self.rates = rates
        self._rates_mark = (time.perf_counter(), *counts)
        self._live_whole_second = showing_live
        if self.staff_open:
            self.refresh_staff()

    def show_state(self) -> None:
        if self.staff_open:
            return
        state = self.flow.state
        if self.flow.forgets_visitor and state is not self._shown_state:  # nothing about the last visitor remains
            self.results.show_outcome(None, self.config)
            self.live.forget()
            self.analysed_frame = None
        if state is State.ATTRACT and self._shown_state is not State.ATTRACT:
            self.request_between_visitors.emit()
            if self.lang != self.config.lang:  # the next visitor starts in the booth's language
                self.lang = self.config.lang
                self.retranslate()
        self._shown_state = state
        self.live.show_overlay(self.flow.hint, state is State.COUNTDOWN,
                               self.flow.countdown_left(self.clock()) if state is State.COUNTDOWN else 0,
                               state is State.SEARCHING)
        page = {State.SPLASH: self.splash, State.ATTRACT: self.attract, State.LIVE: self.live,
                State.COUNTDOWN: self.live, State.SEARCHING: self.live, State.RESULTS: self.results,
                State.CAMERA_WAIT: self.camera_wait}[state]
        if self.stack.currentWidget() is not page:
            self.stack.setCurrentWidget(page)
        if page is not self.live:
            self._live_whole_second = False

    def on_try_again(self) -> None:
        self._event(self.flow.try_again)

    def mousePressEvent(self, event) -> None:
        if self.staff_open or self._in_staff_corner(event.position()):
            return
        if self.flow.touch(self.clock()):
            self.capture_now()
        self.show_state()

    # staff ----------------------------------------------------------------------------------
    def _in_staff_corner(self, position) -> bool:
        corner = self.height() * STAFF_CORNER
        return position.x() < corner and position.y() < corner

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if self.staff_open and event.type() in (QEvent.Type.MouseButtonPress, QEvent.Type.KeyPress):
            self.staff_touched = self.clock()
        elif event.type() == QEvent.Type.MouseButtonPress and isinstance(event, QMouseEvent):
            position = self.mapFromGlobal(event.globalPosition().toPoint())
            if self._in_staff_corner(position):
                self.long_press.start()
        if event.type() == QEvent.Type.MouseButtonRelease:
            self.long_press.stop()
        return False

    def open_staff(self) -> None:
        """The PIN pad; on first run, with no PIN set, it asks staff to choose one."""
        self.staff_open, self.staff_touched, self.new_pin = True, self.clock(), None
        if self.config.pin_hash:
            self.pin.reset(self._pin_message(wrong=False))
        else:
            self.pin.reset("", "set_pin")
        self.stack.setCurrentWidget(self.pin)

    def on_pin(self, pin: str) -> None:
        if not self.config.pin_hash:
            self.choose_pin(pin)
        elif self.pin_guard.attempt(pin, self.config.pin_hash):
            self.show_staff()
        else:
            self.pin.reset(self._pin_message(wrong=True))

    def choose_pin(self, pin: str) -> None:
        """First run: a new PIN, typed twice, saved hashed; then the panel opens."""
        if self.new_pin is None:
            if pin.isascii() and pin.isdigit() and MIN_PIN_DIGITS <= len(pin) <= MAX_PIN_DIGITS:
                self.new_pin = pin
                self.pin.reset("", "set_pin_again")
            else:
                self.pin.reset(tr(self.lang, "pin_too_short"), "set_pin")
        elif pin != self.new_pin:
            self.new_pin = None
            self.pin.reset(tr(self.lang, "pins_differ"), "set_pin")
        else:
            self.new_pin = None
            self.config = replace(self.config, pin_hash=hash_pin(pin))
            if self.config_path is not None:
                save_config(self.config, self.config_path)
            log.info("staff PIN set on the staff panel")
            self.show_staff()

    def show_staff(self) -> None:
        self.staff.load(self.config, ["0", "1"])
        self.refresh_staff()
        self.stack.setCurrentWidget(self.staff)

    def _pin_message(self, wrong: bool) -> str:
        """What the PIN pad says: how long to wait after wrong PINs, or whether the last PIN was wrong."""
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
        problem = self.flow.camera_problem
        self.staff.show_status({
            "camera_status": tr(self.lang, "camera_lost", reason=problem) if problem else tr(self.lang, "camera_ok"),
            "visits": str(self.visits), "gallery": gallery, "providers": f"{self.info.get('pack', '')} — {providers}",
            "performance": f"frames: {rates}\n{latency}", "log": log_tail(log_path()),
            "warning": "\n".join(line for line in (self.camera_refusal, self.gallery_warning) if line)})
        self.request_exposure.emit()

    def apply_staff_settings(self, camera: str, lang: str, lookalikes: int) -> None:
        """Save the panel's settings and close it; a camera that does not work is neither used nor
        saved, and the panel stays open saying why."""
        camera = camera.strip()
        changed_camera = camera != self.config.camera
        problem = camera_problem(camera) if changed_camera else ""
        if problem:
            log.warning("camera %r refused: %s", camera, problem)
            self.camera_refusal = tr(self.lang, "camera_refused", reason=problem)
            self.refresh_staff()
            return
        self.config = replace(self.config, camera=camera, lang=lang, lookalikes=lookalikes)
        if self.config_path is not None:
            save_config(self.config, self.config_path)
        self.lang = lang
        self.retranslate()
        if changed_camera:
            self.start_camera(open_source(camera))
        self.close_staff()

    def close_staff(self) -> None:
        """Back to the visitor screens, afresh."""
        self.staff_open, self.camera_refusal, self.new_pin = False, "", None
        self._event(self.flow.restart)

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
        log.info("kiosk closed after %d visits", self.visits)
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
