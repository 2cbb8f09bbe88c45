"""The staff panel and its PIN, over the visitor screens: opened by holding the window's top-left
corner for LONG_PRESS_MS, closed by staff or after STAFF_IDLE_SECONDS untouched. On first run, with
no PIN set, the pad asks staff to choose one, typed twice.

The window keeps the settings and the booth's state: this controller reads them when it needs them
(`config`, `status`) and hands back what staff chose (`config_changed`, `settings_applied`).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, QTimer, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication, QStackedWidget, QWidget

from kiosk.camera import camera_problem
from kiosk.config import MAX_PIN_DIGITS, MIN_PIN_DIGITS, KioskConfig, PinGuard, hash_pin, save_config
from kiosk.heartbeat import last_build_line
from kiosk.i18n import tr
from kiosk.log import log_path, log_tail
from kiosk.messages import WorkerInfo
from kiosk.staff_pages import PinPage, StaffPage

log = logging.getLogger(__name__)

LONG_PRESS_MS = 3000
STAFF_IDLE_SECONDS = 30.0  # the staff panel and PIN pad close after this long untouched
STAFF_CORNER = 0.08  # share of the window's height: the top-left square that opens the staff panel


@dataclass(frozen=True)
class BoothStatus:
    """What the staff panel reports, as the window knows it now."""

    camera_problem: str = ""  # "" while the camera delivers
    visits: int = 0
    stage_ms: dict[str, float] = field(default_factory=dict)  # the worker's latest time per stage
    rates: dict[str, float] = field(default_factory=dict)  # frames a second: camera, drawn, analysed


def status_texts(status: BoothStatus, info: WorkerInfo, lang: str) -> dict[str, str]:
    """The staff panel's status rows (StaffPage.show_status) but the warning."""
    gallery = (f"{info.gallery}\n{info.faces} faces, {info.identities} identities, index {info.index}, "
               f"built {info.built_at}")
    providers = ", ".join(f"{model}: {'/'.join(p.replace('ExecutionProvider', '') for p in used)}"
                          for model, used in info.providers.items())
    latency = ", ".join(f"{stage} {ms:.0f} ms" for stage, ms in status.stage_ms.items())
    rates = ", ".join(f"{name} {rate:.0f}/s" for name, rate in status.rates.items())
    problem = status.camera_problem
    return {"camera_status": tr(lang, "camera_lost", reason=problem) if problem else tr(lang, "camera_ok"),
            "visits": str(status.visits), "gallery": gallery, "providers": f"{info.pack} — {providers}",
            "performance": f"frames: {rates}\n{latency}", "log": log_tail(log_path())}


class StaffPanel(QObject):
    """Owns what the PIN pad and the staff panel decide; the pages only show and ask."""

    config_changed = Signal(object)  # KioskConfig: a new PIN or new settings, written to the config file next
    settings_applied = Signal(bool)  # the panel's settings are in force (config_changed came first); True: a new camera
    closed = Signal()                # back to the visitor screens, afresh
    exposure_wanted = Signal()       # the panel shows the exposure ledger: ask the worker for its summary

    def __init__(self, window: QWidget, stack: QStackedWidget, pin: PinPage, page: StaffPage,
                 config: Callable[[], KioskConfig], config_path: Path | None,
                 status: Callable[[], BoothStatus], clock: Callable[[], float]) -> None:
        super().__init__(window)
        self.window, self.stack, self.pin, self.page = window, stack, pin, page
        self.config, self.config_path, self.status, self.clock = config, config_path, status, clock
        self.is_open = False
        self.touched_at = 0.0  # clock() of the last touch on the staff panel or PIN pad
        self.guard = PinGuard()  # lives as long as the window: closing the PIN pad does not end a wait
        self.new_pin: str | None = None  # first run: the PIN chosen once, waiting to be entered again
        self.camera_refusal = ""
        self.info = WorkerInfo()  # what the worker runs: pack, providers, gallery
        self.gallery_warning = ""  # why the last gallery offered was refused, until one is swapped in
        self.long_press = QTimer(  # type: ignore[call-arg]
            self, singleShot=True, interval=LONG_PRESS_MS, timeout=self.open)
        pin.entered.connect(self.on_pin)
        pin.cancelled.connect(self.close)
        page.apply.connect(self.apply)
        app = QApplication.instance()
        assert app is not None, "a window exists only inside a QApplication"
        app.installEventFilter(self)

    def in_corner(self, position: QPointF | QPoint) -> bool:
        """True for a point of the window (its coordinates) in the corner that opens the panel."""
        corner = self.window.height() * STAFF_CORNER
        return position.x() < corner and position.y() < corner

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if self.is_open and event.type() in (QEvent.Type.MouseButtonPress, QEvent.Type.KeyPress):
            self.touched_at = self.clock()
        elif event.type() == QEvent.Type.MouseButtonPress and isinstance(event, QMouseEvent):
            position = self.window.mapFromGlobal(event.globalPosition().toPoint())
            if self.in_corner(position):
                self.long_press.start()
        if event.type() == QEvent.Type.MouseButtonRelease:
            self.long_press.stop()
        return False

    def tick(self, now: float) -> None:
        if self.is_open and now - self.touched_at >= STAFF_IDLE_SECONDS:
            log.info("staff panel closed after %.0f s untouched", STAFF_IDLE_SECONDS)
            self.close()

    def open(self) -> None:
        """The PIN pad; on first run, with no PIN set, it asks staff to choose one."""
        self.is_open, self.touched_at, self.new_pin = True, self.clock(), None
        if self.config().pin_hash:
            self.pin.reset(self._pin_message(wrong=False))
        else:
            self.pin.reset("", "set_pin")
        self.stack.setCurrentWidget(self.pin)

    def on_pin(self, pin: str) -> None:
        stored = self.config().pin_hash
        if not stored:
            self.choose_pin(pin)
        elif self.guard.attempt(pin, stored):
            self.show_panel()
        else:
            self.pin.reset(self._pin_message(wrong=True))

    def choose_pin(self, pin: str) -> None:
        """First run: a new PIN, typed twice, saved hashed; then the panel opens."""
        if self.new_pin is None:
            if pin.isascii() and pin.isdigit() and MIN_PIN_DIGITS <= len(pin) <= MAX_PIN_DIGITS:
                self.new_pin = pin
                self.pin.reset("", "set_pin_again")
            else:
                self.pin.reset(tr(self.pin.lang, "pin_too_short"), "set_pin")
        elif pin != self.new_pin:
            self.new_pin = None
            self.pin.reset(tr(self.pin.lang, "pins_differ"), "set_pin")
        else:
            self.new_pin = None
            self._save(replace(self.config(), pin_hash=hash_pin(pin)))
            log.info("staff PIN set on the staff panel")
            self.show_panel()

    def _pin_message(self, wrong: bool) -> str:
        """What the PIN pad says: how long to wait after wrong PINs, or whether the last PIN was wrong."""
        wait = self.guard.wait_left()
        if wait:
            return tr(self.pin.lang, "pin_wait", seconds=wait)
        return tr(self.pin.lang, "wrong_pin") if wrong else ""

    def show_panel(self) -> None:
        self.page.load(self.config(), ["0", "1"])
        self.refresh()
        self.stack.setCurrentWidget(self.page)

    def refresh(self) -> None:
        """The status rows as they stand now, and the exposure summary asked for."""
        texts = status_texts(self.status(), self.info, self.page.lang)
        texts["gallery"] += "\n" + last_build_line(self.config().gallery)  # did last night's rebuild work?
        texts["warning"] = "\n".join(line for line in (self.camera_refusal, self.gallery_warning) if line)
        self.page.show_status(texts)
        self.exposure_wanted.emit()

    def on_gallery_changed(self, info: WorkerInfo) -> None:
        self.info, self.gallery_warning = info, ""

    def on_gallery_refused(self, reason: str) -> None:
        log.warning("gallery refused: %s", reason)
        self.gallery_warning = tr(self.page.lang, "gallery_refused", reason=reason)

    def apply(self, camera: str, lang: str, lookalikes: int) -> None:
        """Save the panel's settings and close it; a camera that does not work is neither used nor
        saved, and the panel stays open saying why."""
        camera = camera.strip()
        changed_camera = camera != self.config().camera
        problem = camera_problem(camera) if changed_camera else ""
        if problem:
            log.warning("camera %r refused: %s", camera, problem)
            self.camera_refusal = tr(self.page.lang, "camera_refused", reason=problem)
            self.refresh()
            return
        self._save(replace(self.config(), camera=camera, lang=lang, lookalikes=lookalikes))
        self.settings_applied.emit(changed_camera)
        self.close()

    def _save(self, config: KioskConfig) -> None:
        self.config_changed.emit(config)
        if self.config_path is not None:
            save_config(config, self.config_path)

    def close(self) -> None:
        """Back to the visitor screens, afresh."""
        self.is_open, self.camera_refusal, self.new_pin = False, "", None
        self.closed.emit()
