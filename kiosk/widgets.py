"""The small widgets and helpers every screen shares, and where pictures become Qt's: `to_pixmap`
for the worker's pictures, `MirroredFrames` for the live view's camera frames."""
from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np
from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QFont, QFontMetrics, QImage, QPixmap, QTextLayout, QTextOption
from PySide6.QtWidgets import QAbstractButton, QLabel, QSizePolicy, QWidget

from kiosk.i18n import tr

MIDDLE_LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
TOP_LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop
TOP_CENTRE = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop
LONGEST_SHOWN = 1000  # characters of one text considered for display: more never fits a screen
DESIGN_HEIGHT = 1080  # sizes in pixels are given for a 1920x1080 screen and scaled to the real one


def to_pixmap(bgr: np.ndarray, mirror: bool) -> QPixmap:
    """A picture from the worker (BGR, as the camera and the gallery give it) as one Qt can show and
    keep; `mirror` flips it left-right, as visitors see themselves. The live view's camera frames,
    shown once each, go through MirroredFrames instead."""
    # Both are one fast pass (0.4 ms for a 500-pixel portrait): reversing each row's bytes mirrors it and
    # turns BGR into RGB at once; Qt reads BGR as it is. Swapping channels alone in numpy took 2.5 ms.
    if mirror:
        pixels, layout = np.ascontiguousarray(bgr[:, ::-1, ::-1]), QImage.Format.Format_RGB888
    else:
        pixels, layout = np.ascontiguousarray(bgr), QImage.Format.Format_BGR888
    image = QImage(pixels.data, pixels.shape[1], pixels.shape[0], pixels.strides[0], layout)
    return QPixmap.fromImage(image.copy())  # the copy outlives `pixels`, whose memory the QImage borrows


class MirroredFrames:
    """Camera frames as Qt images, mirrored, made in two buffers kept from frame to frame: fresh
    buffers cost 9 ms of the GUI thread per 720p frame on this machine (page faults), 30 times a
    second; refilling these costs 0.3 ms."""

    def __init__(self) -> None:
        self._flipped: np.ndarray | None = None
        self._bgra: np.ndarray | None = None

    def image(self, frame: np.ndarray) -> QImage:
        """The frame mirrored, valid until the next call: it borrows this object's buffer."""
        height, width = frame.shape[:2]
        if self._flipped is None or self._bgra is None or self._flipped.shape != frame.shape:
            self._flipped, self._bgra = np.empty_like(frame), np.empty((height, width, 4), np.uint8)
        cv2.flip(frame, 1, dst=self._flipped)
        cv2.cvtColor(self._flipped, cv2.COLOR_BGR2BGRA, dst=self._bgra)  # Qt's RGB32 is BGRA in memory
        return QImage(self._bgra.data, width, height, self._bgra.strides[0], QImage.Format.Format_RGB32)

    def forget(self) -> None:
        self._flipped = self._bgra = None


def fit(pixmap: QPixmap, side: int) -> QPixmap:
    return pixmap.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)


def label(name: str, align=Qt.AlignmentFlag.AlignCenter, wrap: bool = True) -> QLabel:
    """A label of plain text: markup in a name or caption from a corpus is shown as typed, never
    rendered (an <img> would show any local file)."""
    widget = QLabel()
    widget.setObjectName(name)
    widget.setAlignment(align)
    widget.setWordWrap(wrap)
    widget.setTextFormat(Qt.TextFormat.PlainText)
    return widget


def scaled_font(widget: QWidget, pixels: int, bold: bool = False) -> QFont:
    """`widget`'s font at `pixels` for a 1080-pixel-high screen, scaled to the widget's height: for
    words a page paints itself (the theme sizes those of its labels)."""
    font = QFont(widget.font())
    font.setPixelSize(max(1, round(pixels * widget.height() / DESIGN_HEIGHT)))
    font.setBold(bold)
    return font


class Portrait(QLabel):
    """A picture of a face. Its size is a wish, never a minimum: pictures are scaled to the screen's
    height, and a minimum would let them push the window taller, and so themselves larger."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.setObjectName(name)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setTextFormat(Qt.TextFormat.PlainText)  # it shows no text, and would show none as markup

    def minimumSizeHint(self) -> QSize:
        return QSize(0, 0)


class ElidedLabel(QLabel):
    """Plain corpus text (a name, a caption) in at most `lines` lines, the last one cut with "…",
    in the width the layout gives it: however long the text, the label never grows beyond that,
    so the screen keeps its layout. Its height is `lines` lines, or with `shrink` the lines shown.
    `full_text` keeps the text as given."""

    def __init__(self, name: str, lines: int = 1, align=Qt.AlignmentFlag.AlignCenter, shrink: bool = False) -> None:
        super().__init__()
        self.setObjectName(name)
        self.setAlignment(align)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.lines, self.shrink = lines, shrink
        self.full_text = ""

    def setText(self, text: str) -> None:
        self.full_text = text
        self.setAccessibleName(text[:LONGEST_SHOWN])
        self._elide()

    def clear(self) -> None:
        self.setText("")

    def sizeHint(self) -> QSize:
        margins = self.contentsMargins()
        lines = self.text().count("\n") + 1 if self.shrink else self.lines
        return QSize(margins.left() + margins.right(),
                     lines * self.fontMetrics().lineSpacing() + margins.top() + margins.bottom())

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide()

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:  # the theme is scaled to each window size
            self.updateGeometry()
            self._elide()

    def _elide(self) -> None:
        shown = elided(self.full_text, self.font(), self.contentsRect().width(), self.lines)
        if self.shrink and shown.count("\n") != self.text().count("\n"):
            self.updateGeometry()
        super().setText(shown)


def elided(text: str, font: QFont, width: int, lines: int) -> str:
    """`text` in at most `lines` lines, each at most `width` pixels wide, the last cut with "…"
    when the rest does not fit. Runs of white space, line breaks too, become one space."""
    text = " ".join(text[:LONGEST_SHOWN].split())
    layout = QTextLayout(text, font)
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    layout.setTextOption(option)
    layout.beginLayout()
    shown, start = [], 0
    for _ in range(lines - 1):
        line = layout.createLine()
        if not line.isValid():
            break
        line.setLineWidth(width)
        start = line.textStart() + line.textLength()
        shown.append(text[line.textStart():start].rstrip())
    layout.endLayout()
    shown.append(QFontMetrics(font).elidedText(text[start:], Qt.TextElideMode.ElideRight, width))
    return "\n".join(line for line in shown if line)


class Page(QWidget):
    """A screen whose texts follow the chosen language."""

    def retranslate(self, lang: str) -> None:
        raise NotImplementedError


def set_texts(lang: str, texts: Iterable[tuple[QLabel | QAbstractButton, str]]) -> None:
    """Each widget's text in `lang`, from its i18n key."""
    for widget, key in texts:
        widget.setText(tr(lang, key))
