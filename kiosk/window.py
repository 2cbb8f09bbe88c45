"""The kiosk window: composes the screens, and wires the camera thread, the inference worker (through
its WorkerLink), the staff panel and the screens to the Flow.

The GUI thread never waits: everything comes back from the threads as plain data (kiosk.messages)
through queued signals.
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
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QMainWindow, QStackedWidget

from kiosk.assets import ASSETS
from kiosk.attract import AttractPage
from kiosk.camera import Camera, open_source
from kiosk.config import KioskConfig
from kiosk.cues import ANALYSED, BoothCues
from kiosk.flow import Flow, State, Timing
from kiosk.heartbeat import WindowHeartbeat
from kiosk.i18n import tr
from kiosk.link import WorkerLink
from kiosk.lockdown import Lockdown
from kiosk.log import visit_line
from kiosk.messages import Analysis, SearchOutcome, WorkerInfo
from kiosk.rates import Tally
from kiosk.results_page import ResultsPage
from kiosk.screens import LivePage, MessagePage
from kiosk.staff import BoothStatus, StaffPanel
from kiosk.staff_pages import PinPage, StaffPage
from kiosk.systemd import Watchdog

log = logging.getLogger(__name__)

DESIGN_HEIGHT = 1080
TICK_MS = 100
# Families with a real bold face come before WenQuanYi Micro Hei, which has none: Qt draws text over
# 64 pixels as outlines, where a synthesised bold is lost (a 4K screen's headings came out regular).
# Characters a family lacks (DejaVu's Chinese) come from the next one.
CJK_FONTS = ["Noto Sans CJK SC", "Source Han Sans SC", "DejaVu Sans", "WenQuanYi Micro Hei", "Sans Serif"]


class KioskWindow(QMainWindow):
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
        self.preparing_since: float | None = None
        self.tally, self.heartbeat = Tally(), WindowHeartbeat(self)  # for `kiosk --status` from another room
        self._shown_state: State | None = None
        self._compose_pages()
        self.staff_panel = StaffPanel(self, self.stack, self.pin, self.staff, lambda: self.config, config_path,
                                      self.booth_status, clock)
        self.lockdown, self.watchdog = Lockdown(self, lambda: self.staff_panel.is_open), Watchdog()
        self.cues = BoothCues(self, self.attract, config.sound)
        self.camera = Camera(self)
        self.link = WorkerLink(config, self)
        self._wire_pages()
        self._wire_worker()
        # PySide6 takes a signal's slot as a keyword (timeout=); its stubs know only the properties
        self.ticker = QTimer(self, interval=TICK_MS, timeout=self.tick)  # type: ignore[call-arg]
        self.ticker.start()
        if prepare is None:
            self.start(source if source is not None else open_source(config.camera))
        else:
            self.preparing_since = clock()
            preparation = Preparation(prepare, self)
            preparation.done.connect(self.on_prepared)
            preparation.failed.connect(self.on_worker_failed)
            preparation.start()
        self.retranslate()
        self.show_state()

    def _compose_pages(self) -> None:
        self.splash = MessagePage("title", "getting_ready")
        self.attract = AttractPage()
        self.live = LivePage()
        self.results = ResultsPage()
        self.camera_wait = MessagePage("one_moment", "camera_reconnecting")
        self.pin = PinPage()
        self.staff = StaffPage()
        self.pages = (self.splash, self.attract, self.live, self.results, self.camera_wait, self.pin, self.staff)
        self.stack = QStackedWidget()
        for page in self.pages:
            self.stack.addWidget(page)
        self.setCentralWidget(self.stack)
        self.setWindowTitle("遇见另一个我 · Meet the other me")
        self.setFont(cjk_font())
        self.theme = (ASSETS / "theme.qss").read_text(encoding="utf-8")

    def _wire_pages(self) -> None:
        self.attract.language_clicked.connect(self.toggle_language)
        self.results.try_again.connect(lambda: self._event(self.flow.try_again))
        self.results.touched.connect(lambda: self._event(self.flow.touch))
        self.results.drawn.connect(self.on_results_drawn)
        self.staff.quit.connect(self.lockdown.quit)
        self.staff.restart_camera.connect(lambda: self.camera.start(open_source(self.config.camera)))
        self.staff_panel.config_changed.connect(lambda config: setattr(self, "config", config))
        self.staff_panel.settings_applied.connect(self.on_settings_applied)
        self.staff_panel.closed.connect(lambda: self._event(self.flow.restart))

    def _wire_worker(self) -> None:
        """The camera's and the worker's signals to the window, the staff panel and the screens."""
        worker = self.link.worker
        for signal, slot in ((self.camera.frame_ready, self.on_frame), (self.camera.camera_lost, self.on_camera_lost),
                             (self.camera.camera_back, self.on_camera_back), (worker.ready, self.on_worker_ready),
                             (worker.failed, self.on_worker_failed), (worker.analysed, self.on_analysed),
                             (worker.searched, self.on_searched), (worker.gallery_waiting, self.on_gallery_waiting),
                             (worker.gallery_changed, self.staff_panel.on_gallery_changed),
                             (worker.gallery_refused, self.staff_panel.on_gallery_refused),
                             (self.link.gallery_problem, self.staff_panel.on_gallery_refused),
                             (worker.exposure, self.staff.show_exposure), (worker.attract, self.attract.show_set),
                             (self.results.resized, worker.set_display_side),
                             (self.staff_panel.exposure_wanted, worker.report_exposure),
                             (self.staff.reset_exposure, worker.reset_exposure)):
            signal.connect(slot)

    def show_fullscreen(self) -> None:
        """Fullscreen on the configured screen, locked down for a public booth (kiosk.lockdown)."""
        self.lockdown.show_fullscreen(self.config.screen)

    def show_windowed(self, share: float = 0.9) -> None:
        """A window `share` of the screen's free area, centred on it."""
        area = self.screen().availableGeometry()
        across, down = round(area.width() * (1 - share) / 2), round(area.height() * (1 - share) / 2)
        self.setGeometry(area.adjusted(across, down, -across, -down))
        self.show()

    # start-up -------------------------------------------------------------------------------
    def on_prepared(self, settings: dict) -> None:
        self.preparing_since = None
        self.config = replace(self.config, **settings)
        self.splash.line.setText(tr(self.lang, "getting_ready"))
        self.link.watch(self.config.gallery)
        self.start(open_source(self.config.camera))

    def start(self, source) -> None:
        """The camera, the models and the gallery watch, now that the settings are complete."""
        self.camera.start(source)
        self.link.start()

    # camera ---------------------------------------------------------------------------------
    def on_camera_lost(self, reason: str) -> None:
        self.flow.camera_lost(reason, self.clock())
        self.show_state()

    def on_camera_back(self) -> None:
        self._event(self.flow.camera_back)

    def on_frame(self, frame: np.ndarray) -> None:
        self.latest_frame, frame_time = frame, time.perf_counter()
        self.tally.frames_seen += 1
        if self.flow.state in (State.LIVE, State.COUNTDOWN):
            self.live.show_frame(frame)
        if self.flow.state in ANALYSED:
            self.link.offer(frame, frame_time)

    # worker ---------------------------------------------------------------------------------
    def on_worker_ready(self, info: WorkerInfo) -> None:
        self.staff_panel.info, self.link.ready = info, True
        log.info("ready: %s", info)
        self._event(self.flow.ready)

    def on_worker_failed(self, message: str) -> None:
        self.preparing_since = None
        self.splash.line.setText(message)

    def on_analysed(self, analysis: Analysis) -> None:
        self.link.busy = False
        self.tally.analysed(analysis)
        self.flow.analysed(analysis, self.clock())
        self.live.follow(analysis.face_y)
        self.show_state()

    def capture_now(self) -> None:
        self.cues.captured()
        if not self.link.capture(self.config.lookalikes):
            self.flow.results("fail_no_face", self.clock())
        self.show_state()

    def on_searched(self, outcome: SearchOutcome) -> None:
        if not self.link.is_current(outcome):
            log.warning("a late search answer was dropped (its capture had timed out)")
            return
        self.tally.searched(outcome)
        failure = "" if outcome.pairs else outcome.failure or "fail_search"
        scores = [match.score for pair in outcome.pairs for match in pair.matches]
        total_ms = (time.perf_counter() - outcome.frame_time) * 1e3
        log.info(visit_line(self.tally.visits, outcome.faces, scores, total_ms, failure))
        if not failure and self.flow.state is State.SEARCHING:
            self.results.show_outcome(outcome)
        self.flow.results(failure, self.clock())
        self.show_state()

    def on_results_drawn(self, when: float) -> None:
        if self.results.outcome is not None:
            self.tally.results_drawn(self.results.outcome, when)

    def on_gallery_waiting(self) -> None:
        if self.flow.forgets_visitor:
            self.link.request_between_visitors.emit()

    # flow -----------------------------------------------------------------------------------
    def _event(self, handler) -> None:
        handler(self.clock())
        self.show_state()

    def tick(self) -> None:
        self.watchdog.feed()  # here, on the GUI thread: a hung window stops feeding systemd's watchdog
        now = self.clock()
        if self.tally.measure_rates(self.live.painted_frames, self.stack.currentWidget() is self.live) \
                and self.staff_panel.is_open:
            self.staff_panel.refresh()
        if self.preparing_since is not None:
            self.splash.line.setText(tr(self.lang, "preparing_demo", seconds=int(now - self.preparing_since)))
        if self.staff_panel.is_open:
            self.staff_panel.tick(now)
            return
        if self.flow.tick(now):
            self.capture_now()
        if self.flow.state is State.RESULTS:
            self.results.set_time_left(self.flow.results_left(now))
        self.show_state()

    def show_state(self) -> None:
        if self.staff_panel.is_open:
            return
        state = self.flow.state
        if self.flow.forgets_visitor and state is not self._shown_state:  # nothing about the last visitor remains
            self.results.show_outcome(None)
            self.live.forget()
            self.link.forget()
        if state is State.ATTRACT and self._shown_state is not State.ATTRACT:
            self.link.request_between_visitors.emit()
            if self.lang != self.config.lang:  # the next visitor starts in the booth's language
                self.lang = self.config.lang
                self.retranslate()
        self._shown_state = state
        countdown = self.flow.countdown_left(self.clock()) if state is State.COUNTDOWN else 0
        self.live.show_overlay(self.flow.hint, state is State.COUNTDOWN, countdown, state is State.SEARCHING)
        self.cues.show(state, countdown)
        page = {State.SPLASH: self.splash, State.ATTRACT: self.attract, State.LIVE: self.live,
                State.COUNTDOWN: self.live, State.SEARCHING: self.live, State.RESULTS: self.results,
                State.CAMERA_WAIT: self.camera_wait}[state]
        if self.stack.currentWidget() is not page:
            self.stack.setCurrentWidget(page)
        if page is not self.live:
            self.tally.rates.live_left()

    def mousePressEvent(self, event) -> None:
        if self.staff_panel.is_open or self.staff_panel.in_corner(event.position()):
            return
        if self.flow.touch(self.clock()):
            self.capture_now()
        self.show_state()

    # staff ----------------------------------------------------------------------------------
    def booth_status(self) -> BoothStatus:
        return BoothStatus(self.flow.camera_problem, self.tally.visits, self.tally.stage_ms, self.tally.rates.last)

    def on_settings_applied(self, changed_camera: bool) -> None:
        self.lang = self.config.lang
        self.retranslate()
        if changed_camera:
            self.camera.start(open_source(self.config.camera))

    # language and look ----------------------------------------------------------------------
    def toggle_language(self) -> None:
        self.lang = "en" if self.lang == "zh" else "zh"
        self.retranslate()

    def retranslate(self) -> None:
        for page in self.pages:
            page.retranslate(self.lang)
        self.cues.apply(self.config, self.lang)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        scale = self.height() / DESIGN_HEIGHT
        self.setStyleSheet(scaled_theme(self.theme, scale))
        self.cues.place()

    def closeEvent(self, event) -> None:
        self.ticker.stop()
        log.info("kiosk closed after %d visits", self.tally.visits)
        self.camera.stop()
        self.link.stop()
        super().closeEvent(event)


def cjk_font() -> QFont:
    """The application's font: one that has the Chinese texts' characters."""
    font = QFont()
    font.setFamilies(CJK_FONTS)
    return font


class Preparation(QObject):
    """Settings made by `prepare` on a thread of its own while the splash shows (the demo's gallery
    and camera): `done` carries them, `failed` the message for staff."""

    done = Signal(dict)
    failed = Signal(str)

    def __init__(self, prepare: Callable[[], dict[str, str]], parent: QObject) -> None:
        super().__init__(parent)
        self.prepare = prepare

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name="prepare").start()

    def _run(self) -> None:
        try:
            settings = self.prepare()
        except Exception as error:  # shown on the splash, like any start-up failure
            log.exception("preparing failed")
            self.failed.emit(str(error))
            return
        self.done.emit(settings)


def scaled_theme(theme: str, scale: float) -> str:
    """The theme with every @N replaced by N scaled to this window (at least 1 pixel)."""
    return re.sub(r"@(\d+)", lambda m: str(max(1, round(int(m.group(1)) * scale))), theme)
