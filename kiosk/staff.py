"""The staff panel and its PIN, over the visitor screens: opened by holding the window's top-left
corner for LONG_PRESS_MS, closed by staff or after STAFF_IDLE_SECONDS untouched. The touch screen
never sets a PIN (a visitor could): without one the panel stays closed and the log says how staff
set one (`kiosk --set-pin`, or when installing the service or the autostart entry).

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

from kiosk.camera import camera_problem, found_cameras
from kiosk.config import ConfigError, KioskConfig, PinGuard, load_config, save_config
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

    config_changed = Signal(object)  # KioskConfig: new settings (written to the config file next), or a PIN set since
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
        if not config().pin_hash:
            log.warning(self.no_pin())

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
        """The PIN pad; nothing without a PIN set, but a line in the log saying how to set one."""
        if not self.stored_pin():
            log.warning("the staff panel stays closed: %s", self.no_pin())
            return
        self.is_open, self.touched_at = True, self.clock()
        self.pin.reset(self._pin_message(wrong=False))
        self.stack.setCurrentWidget(self.pin)

    def stored_pin(self) -> str:
        """The PIN hash in force: the config file's when it has one (`kiosk --set-pin` may have set
        it since the kiosk started; saving the panel's settings must not undo that)."""
        if self.config_path is None or not self.config_path.exists():
            return self.config().pin_hash
        try:
            on_file = load_config(self.config_path).pin_hash
        except ConfigError as error:
            log.warning("the staff PIN was not read again: %s", error)
            return self.config().pin_hash
        if on_file and on_file != self.config().pin_hash:
            self.config_changed.emit(replace(self.config(), pin_hash=on_file))
        return self.config().pin_hash

    def no_pin(self) -> str:
        where = f" --config {self.config_path}" if self.config_path is not None else ""
        return (f"no staff PIN is set, and the touch screen never sets one: on this machine run "
                f"kiosk --set-pin{where} (the kiosk need not restart)")

    def on_pin(self, pin: str) -> None:
        if self.guard.attempt(pin, self.config().pin_hash):
            self.show_panel()
        else:
            self.pin.reset(self._pin_message(wrong=True))

    def _pin_message(self, wrong: bool) -> str:
        """What the PIN pad says: how long to wait after wrong PINs, or whether the last PIN was wrong."""
        wait = self.guard.wait_left()
        if wait:
            return tr(self.pin.lang, "pin_wait", seconds=wait)
        return tr(self.pin.lang, "wrong_pin") if wrong else ""

    def show_panel(self) -> None:
        self.page.load(self.config(), found_cameras())
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

    def apply(self, camera: str, lang: str, lookalikes: int, sound: bool) -> None:
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
        self._save(replace(self.config(), camera=camera, lang=lang, lookalikes=lookalikes, sound=sound))
        self.settings_applied.emit(changed_camera)
        self.close()

    def _save(self, config: KioskConfig) -> None:
        self.config_changed.emit(config)
        if self.config_path is not None:
            save_config(config, self.config_path)

    def close(self) -> None:
        """Back to the visitor screens, afresh."""
        self.is_open, self.camera_refusal = False, ""
        self.closed.emit()
