"""A public booth's fullscreen: on the monitor staff chose, the display kept awake while the kiosk
runs, no pointer, and no way out for a visitor with a keyboard: keys, close requests (Alt+F4) and
the window manager's leaving fullscreen are ignored. The staff panel's quit is the way out.

A kiosk killed outright (the service stopped, a crash) leaves X's blanking off: the service starts
it again, and a booth's display should stay awake anyway.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QGuiApplication, QScreen
from PySide6.QtWidgets import QApplication, QWidget

log = logging.getLogger(__name__)

KEY_EVENTS = (QEvent.Type.KeyPress, QEvent.Type.KeyRelease, QEvent.Type.ShortcutOverride, QEvent.Type.Shortcut)
APP_NAME = "other-me kiosk"


def nothing() -> None:
    """Undoing what was never done."""


def chosen_screen(index: int) -> QScreen:
    """Screen `index` in the windowing system's order (0 is the primary screen); the primary one,
    with one warning listing the screens found, when there is no such screen."""
    screens = QGuiApplication.screens()
    if 0 <= index < len(screens):
        return screens[index]
    found = ", ".join(f"{number}: {screen.name()} {screen.size().width()}x{screen.size().height()}"
                      for number, screen in enumerate(screens))
    log.warning("screen %d not found (%d found: %s): fullscreen on the primary screen", index, len(screens), found)
    primary = QGuiApplication.primaryScreen()
    assert primary is not None, "a window exists only where there is a screen"
    return primary


def x_blanking_off(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> Callable[[], None]:
    """X's screen saver, blanking and DPMS off (xset); returns what puts back the settings found."""
    if not os.environ.get("DISPLAY") or shutil.which("xset") is None:
        log.info("X's display blanking left as it is (no X display, or no xset)")
        return nothing
    try:
        found = run(["xset", "q"], capture_output=True, text=True, timeout=5, check=True).stdout
        run(["xset", "s", "off", "s", "noblank", "-dpms"], timeout=5, check=True)
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("cannot keep the display awake with xset: %s", error)
        return nothing
    timeout = re.search(r"timeout:\s*(\d+)", found)
    before = ["s", timeout[1] if timeout else "default", "s", "blank" if "blanking:  yes" in found else "noblank",
              "+dpms" if "DPMS is Enabled" in found else "-dpms"]

    def restore() -> None:
        try:
            run(["xset", *before], timeout=5, check=True)
        except (OSError, subprocess.SubprocessError) as error:
            log.warning("cannot restore the display's blanking with xset: %s", error)
    return restore


def desktop_saver_inhibited() -> Callable[[], None]:
    """The desktop's screen saver held off over D-Bus (GNOME, KDE, also on Wayland); returns what
    lets it go. Nothing where there is no session bus or no such service."""
    from PySide6.QtDBus import QDBusConnection, QDBusInterface, QDBusMessage

    bus = QDBusConnection.sessionBus()
    if not bus.isConnected():
        return nothing
    saver = QDBusInterface("org.freedesktop.ScreenSaver", "/org/freedesktop/ScreenSaver",
                           "org.freedesktop.ScreenSaver", bus)
    if not saver.isValid():
        return nothing
    reply = saver.call("Inhibit", APP_NAME, "an exhibition kiosk shows visitors its screen")
    if reply.type() != QDBusMessage.MessageType.ReplyMessage or not reply.arguments():
        log.warning("the desktop's screen saver refused to wait: %s", reply.errorMessage())
        return nothing
    cookie = reply.arguments()[0]

    def let_go() -> None:
        saver.call("UnInhibit", cookie)
    return let_go


def keep_display_awake() -> Callable[[], None]:
    """No blanking or power saving while the kiosk runs; returns what undoes it."""
    if QGuiApplication.platformName() == "offscreen":  # no display to keep awake (tests, a render)
        return nothing
    undo = [x_blanking_off(), desktop_saver_inhibited()]

    def restore() -> None:
        for step in undo:
            step()
    return restore


class Lockdown(QObject):
    """A window's fullscreen at the booth; `staff_open` says when the staff panel or its PIN pad is
    up: only they take keys."""

    def __init__(self, window: QWidget, staff_open: Callable[[], bool]) -> None:
        super().__init__(window)
        self.window, self.staff_open = window, staff_open
        self.engaged = False
        self._restore_display: Callable[[], None] = nothing

    def show_fullscreen(self, screen: int) -> None:
        """Fullscreen on screen number `screen`, even without a window manager (a bare X session)."""
        chosen = chosen_screen(screen)
        self.window.setScreen(chosen)
        self.window.setGeometry(chosen.geometry())
        self.window.showFullScreen()
        if not self.engaged:
            self.engaged = True
            QApplication.setOverrideCursor(Qt.CursorShape.BlankCursor)
            self._restore_display = keep_display_awake()
            QApplication.instance().installEventFilter(self)  # type: ignore[union-attr]

    def release(self) -> None:
        """The pointer back, the display free to sleep, keys and closing allowed."""
        if self.engaged:
            self.engaged = False
            QApplication.instance().removeEventFilter(self)  # type: ignore[union-attr]
            QApplication.restoreOverrideCursor()
            self._restore_display()
            self._restore_display = nothing

    def quit(self) -> None:
        """The staff panel's quit: released, then the window closes."""
        self.release()
        self.window.close()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind in KEY_EVENTS:
            return not self.staff_open()
        if watched is not self.window:
            return False
        if kind == QEvent.Type.Close:
            event.ignore()
            log.info("a request to close the kiosk was ignored: quit from the staff panel")
            return True
        if kind == QEvent.Type.WindowStateChange and self.window.windowState() != Qt.WindowState.WindowFullScreen:
            QTimer.singleShot(0, self.window.showFullScreen)  # after the window manager's change, not inside it
        return False
