"""A button that acts only when held: quitting the kiosk by a stray touch would strand the booth."""
from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath
from PySide6.QtWidgets import QPushButton

HOLD_SECONDS = 2.0
STEP_MS = 30  # progress redrawn this often while held


class HoldButton(QPushButton):
    """Emits `held` once it has been pressed for `seconds` without letting go; it fills from the
    left as it is held, and empties when released early (then nothing happens)."""

    held = Signal()

    def __init__(self, seconds: float = HOLD_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.seconds, self.clock = seconds, clock
        self._pressed_at: float | None = None
        self._timer = QTimer(self, interval=STEP_MS, timeout=self._advance)  # type: ignore[call-arg]
        self.pressed.connect(self._start)
        self.released.connect(self._stop)

    def progress(self) -> float:
        """How far the hold has come (0..1)."""
        if self._pressed_at is None:
            return 0.0
        return min(1.0, (self.clock() - self._pressed_at) / self.seconds)

    def _start(self) -> None:
        self._pressed_at = self.clock()
        self._timer.start()

    def _stop(self) -> None:
        self._pressed_at = None
        self._timer.stop()
        self.update()

    def _advance(self) -> None:
        done = self.progress() >= 1.0
        if done:
            self._stop()
            self.held.emit()
        self.update()

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        share = self.progress()
        if share > 0:
            painter = QPainter(self)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            shape = QPainterPath()  # the button's pill shape: the fill stays inside it
            shape.addRoundedRect(QRectF(self.rect()), self.height() / 2, self.height() / 2)
            filled = QPainterPath()
            filled.addRect(QRectF(0, 0, self.width() * share, self.height()))
            painter.setClipPath(shape.intersected(filled))
            painter.fillRect(self.rect(), QColor("#f5c451"))
            painter.setPen(QColor("#0d1326"))  # the label stays readable on the fill
            painter.setFont(self.font())
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.text())
            painter.end()
