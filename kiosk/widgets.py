"""The small widgets and helpers every screen shares, and where pictures become Qt's: `to_pixmap`
for the worker's pictures, `MirroredFrames` for the live view's camera frames."""
from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np
from PySide6.QtCore import QEvent, QRectF, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QImage,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QTextLayout,
    QTextOption,
)
from PySide6.QtWidgets import QAbstractButton, QBoxLayout, QHBoxLayout, QLabel, QSizePolicy, QSpacerItem, QWidget

from kiosk.i18n import LANGUAGES, tr

MIDDLE_LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
TOP_LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop
TOP_CENTRE = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop
LONGEST_SHOWN = 1000  # characters of one text considered for display: more never fits a screen
DESIGN_HEIGHT = 1080  # sizes in pixels are given for a 1920x1080 screen and scaled to the real one
MOST_ENLARGED = 2.0  # a gallery portrait is never drawn wider than twice its source's pixels: beyond, it looks soft
MAT = QColor("#1a2240")  # the portrait tiles' ground (theme.qss), around a portrait drawn smaller than its tile
MAT_LINE = QColor("#6f7aa6")
INK, RECORDING = QColor("#f4f1ea"), QColor("#ff5a4f")


def to_pixmap(bgr: np.ndarray, mirror: bool) -> QPixmap:
    """A picture from the worker (BGR, as the camera and the gallery give it) as one Qt can show and
    keep; `mirror` flips it left-right, as visitors see themselves. The live view's camera frames,
    shown once each, go through MirroredFrames instead."""
    # Made as Qt's RGB32 (BGRA in memory), the pixmaps' own format, so fromImage converts nothing: the
    # results' six pictures take 1.7 ms of the GUI thread, not 3.1 ms as 3-byte BGR888 did (OpenCV's
    # flip and channel pass are one fast pass each).
    pixels = cv2.cvtColor(cv2.flip(bgr, 1) if mirror else bgr, cv2.COLOR_BGR2BGRA)
    image = QImage(pixels.data, pixels.shape[1], pixels.shape[0], pixels.strides[0], QImage.Format.Format_RGB32)
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


def framed(pixmap: QPixmap, side: int, source_side: int = 0) -> QPixmap:
    """A gallery portrait for a `side`-pixel tile: fitted to it, or, when that would draw its source
    (`source_side` pixels across the portrait; 0 = unknown) more than MOST_ENLARGED times larger,
    drawn at that size, centred on the tile's mat inside a thin line, like a small print in a frame."""
    most = round(source_side * MOST_ENLARGED) if source_side > 0 else side
    if most >= side:
        return fit(pixmap, side)
    picture = fit(pixmap, most)
    canvas = QPixmap(side, side)
    canvas.fill(MAT)
    painter = QPainter(canvas)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    left, top = (side - picture.width()) // 2, (side - picture.height()) // 2
    painter.drawPixmap(left, top, picture)
    line = max(1.0, side / 240)
    painter.setPen(QPen(MAT_LINE, line))
    painter.drawRect(QRectF(left - line, top - line, picture.width() + line * 2, picture.height() + line * 2))
    painter.end()
    return canvas


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
        lines = line_count(self.text()) if self.shrink else self.lines
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
        if self.shrink and line_count(shown) != line_count(self.text()):
            self.updateGeometry()
        super().setText(shown)


def line_count(text: str) -> int:
    """Lines of a shown text: none for no text (an empty name takes no room under a portrait)."""
    return text.count("\n") + 1 if text else 0


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


class Gaps:
    """A page's gaps and margins, given in pixels for a 1080-pixel-high screen and set again at each
    window height (`scale`), so a 4K screen shows the same layout twice as large."""

    def __init__(self) -> None:
        self._spacings: list[tuple[QBoxLayout, int]] = []
        self._spaces: list[tuple[QSpacerItem, int, bool]] = []
        self._margins: list[tuple[QBoxLayout, tuple[int, int, int, int]]] = []

    def spacing(self, layout: QBoxLayout, pixels: int) -> None:
        """`pixels` between each of the layout's items."""
        self._spacings.append((layout, pixels))
        layout.setSpacing(pixels)

    def space(self, layout: QBoxLayout, pixels: int) -> None:
        """A gap of `pixels` added to the layout here, along its direction."""
        item = QSpacerItem(0, 0, QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self._spaces.append((item, pixels, isinstance(layout, QHBoxLayout)))
        layout.addItem(item)

    def margins(self, layout: QBoxLayout, left: int, top: int, right: int, bottom: int) -> None:
        self._margins.append((layout, (left, top, right, bottom)))

    def scale(self, height: int) -> None:
        def scaled(pixels: int) -> int:
            return round(pixels * height / DESIGN_HEIGHT)

        for layout, pixels in self._spacings:
            layout.setSpacing(scaled(pixels))
        for item, pixels, across in self._spaces:
            size = scaled(pixels)
            item.changeSize(size if across else 0, 0 if across else size,
                            QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        for layout, sides in self._margins:
            layout.setContentsMargins(*(scaled(side) for side in sides))
        for layout, _ in self._spacings + self._margins:
            layout.invalidate()


class Page(QWidget):
    """A screen whose texts follow the chosen language."""

    def retranslate(self, lang: str) -> None:
        raise NotImplementedError


def set_texts(lang: str, texts: Iterable[tuple[QLabel | QAbstractButton, str]]) -> None:
    """Each widget's text in `lang`, from its i18n key."""
    for widget, key in texts:
        widget.setText(tr(lang, key))


class CameraOn(QWidget):
    """The sign that the camera is on and its frames are analysed: a red dot and a short line on a
    dark pill, over every screen that analyses frames (the window shows and places it). Touches
    pass through it to the screen below."""

    TEXT_PX = 36  # a visitor reads it from 1.5 m

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.text = ""

    def show_text(self, text: str) -> None:
        self.text = text
        self.update()

    def place(self, window_width: int, window_height: int) -> None:
        """Top right, inside the pages' margin, sized for the window's height."""
        self.setFont(self.font_for(self.font(), window_height))
        width, height = self.extent(self.font(), window_height)
        margin = round(window_height * 0.044)
        self.setGeometry(window_width - width - margin, round(window_height * 0.022), width, height)

    @classmethod
    def font_for(cls, font: QFont, window_height: int) -> QFont:
        font = QFont(font)
        font.setPixelSize(max(1, round(cls.TEXT_PX * window_height / DESIGN_HEIGHT)))
        return font

    @classmethod
    def extent(cls, font: QFont, window_height: int) -> tuple[int, int]:
        """Width and height of the sign on a window `window_height` pixels high: as wide as its words
        in the wider language, so it keeps its place when the language changes (pages leave it room)."""
        metrics = QFontMetrics(cls.font_for(font, window_height))
        height = round(window_height * 0.06)
        return max(metrics.horizontalAdvance(tr(lang, "camera_on")) for lang in LANGUAGES) + height * 2, height

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        height = self.height()
        pill = QPainterPath()
        pill.addRoundedRect(QRectF(self.rect()), height / 2, height / 2)
        painter.fillPath(pill, QColor(13, 19, 38, 230))
        painter.setPen(QPen(RECORDING.lighter(120), max(1.0, height / 28)))
        painter.setBrush(RECORDING)
        painter.drawEllipse(QRectF(height * 0.33, height * 0.33, height * 0.34, height * 0.34))
        painter.setPen(INK)
        painter.drawText(QRectF(height * 0.85, 0, self.width() - height * 1.2, height),
                         Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, self.text)
        painter.end()
