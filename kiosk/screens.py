"""The screens. Each shows plain data it is given and knows nothing of threads or models."""
from __future__ import annotations

import time

import cv2
import numpy as np
from PySide6.QtCore import QEvent, QRectF, QSize, Qt, Signal
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
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from kiosk.config import MAX_LOOKALIKES, MAX_PIN_DIGITS, KioskConfig
from kiosk.hold import HoldButton
from kiosk.i18n import LANGUAGES, tr
from kiosk.pictograms import PICTOGRAMS, draw_pictogram
from kiosk.worker import Pair, SearchOutcome

SMALL_MATCHES = MAX_LOOKALIKES - 1  # the best match is shown large
MIDDLE_LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
TOP_LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop
TOP_CENTRE = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop
LONGEST_SHOWN = 1000  # characters of one text considered for display: more never fits a screen
DESIGN_HEIGHT = 1080  # sizes in pixels are given for a 1920x1080 screen and scaled to the real one
HINT_PX, PRIVACY_PX, COUNTDOWN_PX = 44, 36, 260  # visitors read these at 1.5 m: 36 px or more


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


class MessagePage(Page):
    """A title, a line under it and the privacy line: the splash and camera-wait screens."""

    def __init__(self, title_key: str, line_key: str) -> None:
        super().__init__()
        self.title_key, self.line_key = title_key, line_key
        self.title, self.subtitle, self.line = label("title"), label("subtitle"), label("invite")
        self.privacy = label("privacy")
        layout = QVBoxLayout(self)
        layout.addStretch(3)
        for widget in (self.title, self.subtitle):
            layout.addWidget(widget)
        layout.addSpacing(40)
        layout.addWidget(self.line)
        layout.addStretch(4)
        layout.addWidget(self.privacy)

    def retranslate(self, lang: str) -> None:
        self.title.setText(tr(lang, self.title_key))
        self.subtitle.setText(tr(lang, "subtitle") if self.title_key == "title" else "")
        self.subtitle.setVisible(self.title_key == "title")
        self.line.setText(tr(lang, self.line_key))
        self.privacy.setText(tr(lang, "privacy"))


class LivePage(Page):
    """The mirrored camera picture with an oval face guide, the hint, and the countdown."""

    def __init__(self) -> None:
        super().__init__()
        self.frame: np.ndarray | None = None
        self.hint = ""
        self.countdown = 0
        self.ready = False
        self.searching = False
        self.lang = "zh"
        self.painted_frames = 0  # distinct camera frames drawn
        self._last_painted: np.ndarray | None = None
        self._frames = MirroredFrames()
        self._picture: QImage | None = None  # the frame, converted once: a hint or a tick repaints without it

    def retranslate(self, lang: str) -> None:
        self.lang = lang
        self.update()

    def show_frame(self, frame: np.ndarray) -> None:
        self.frame, self._picture = frame, None
        self.update()

    def forget(self) -> None:
        """Drop the last camera frame: the next visitor must not see the previous one's."""
        self.frame = self._picture = self._last_painted = None
        self._frames.forget()

    def show_overlay(self, hint: str, ready: bool, countdown: int, searching: bool) -> None:
        """What is drawn over the picture; repainted only when it changed (a 1080p repaint costs the
        inference worker's embed part of a core on a 2-core machine)."""
        overlay = (hint, ready, countdown, searching)
        if overlay != (self.hint, self.ready, self.countdown, self.searching):
            self.hint, self.ready, self.countdown, self.searching = overlay
            self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        width, height = self.width(), self.height()
        painter.fillRect(self.rect(), QColor("#0d1326"))
        if self.frame is not None:
            if self._picture is None:
                self._picture = self._frames.image(self.frame)
            picture = self._picture
            scale = max(width / picture.width(), height / picture.height())
            target = QRectF((width - picture.width() * scale) / 2, (height - picture.height() * scale) / 2,
                            picture.width() * scale, picture.height() * scale)
            painter.drawImage(target, picture, QRectF(picture.rect()))
            if self.frame is not self._last_painted:
                self._last_painted = self.frame
                self.painted_frames += 1
        guide = QRectF(width / 2 - height * 0.22, height * 0.12, height * 0.44, height * 0.58)
        shade = QPainterPath()
        shade.addRect(QRectF(self.rect()))
        oval = QPainterPath()
        oval.addEllipse(guide)
        painter.fillPath(shade.subtracted(oval), QColor(13, 19, 38, 150))
        colour = QColor("#5fd38d") if self.ready else QColor("#f5c451") if self.hint else QColor("#ffffff")
        painter.setPen(QPen(colour, max(4, height // 160)))
        painter.drawEllipse(guide)
        if self.searching:
            key = "searching"
        elif self.countdown:
            key = ""
        else:
            key = self.hint or "tap_to_capture"
        if key:
            self._banner(painter, key, QRectF(width * 0.12, height * 0.74, width * 0.76, height * 0.13))
        if self.countdown and not self.searching:
            disc = QPainterPath()  # the digit stands out on any face or shirt
            disc.addEllipse(guide.center(), height * 0.15, height * 0.15)
            painter.fillPath(disc, QColor(13, 19, 38, 160))
            painter.setFont(scaled_font(self, COUNTDOWN_PX, bold=True))
            painter.setPen(QColor("#ffffff"))
            painter.drawText(guide, Qt.AlignmentFlag.AlignCenter, str(self.countdown))
        painter.setFont(scaled_font(self, PRIVACY_PX))
        painter.setPen(QColor("#c9cde0"))
        painter.drawText(QRectF(0, height * 0.9, width, height * 0.08), Qt.AlignmentFlag.AlignCenter,
                         tr(self.lang, "privacy"))
        painter.end()

    def _banner(self, painter: QPainter, key: str, box: QRectF) -> None:
        """The hint's pictogram and words side by side, centred on a dark pill; long words wrap."""
        path = QPainterPath()
        path.addRoundedRect(box, box.height() / 2, box.height() / 2)
        painter.fillPath(path, QColor(13, 19, 38, 225))
        side = box.height() * 0.8 if key in PICTOGRAMS else 0.0
        gap = side * 0.3
        font = scaled_font(self, HINT_PX, bold=True)
        text = tr(self.lang, key)
        room = box.width() - box.height() - side - gap  # the pill's round ends stay clear
        width = min(QFontMetrics(font).horizontalAdvance(text) + 2, room)
        left = box.center().x() - (side + gap + width) / 2
        draw_pictogram(painter, key, QRectF(left, box.center().y() - side / 2, side, side), QColor("#f5c451"))
        painter.setFont(font)
        painter.setPen(QColor("#ffffff"))
        painter.drawText(QRectF(left + side + gap, box.top(), width, box.height()),
                         Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, text)


class RingButton(QPushButton):
    """A push button with a timer ring in its left padding: the share of time the screen has left,
    draining clockwise from twelve o'clock."""

    def __init__(self) -> None:
        super().__init__()
        self.time_left = 1.0

    def set_time_left(self, fraction: float) -> None:
        fraction = min(1.0, max(0.0, fraction))
        if fraction != self.time_left:
            self.time_left = fraction
            self.update()

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        radius = self.height() * 0.27
        ring = QRectF(self.height() * 0.55 - radius, self.height() / 2 - radius, radius * 2, radius * 2)
        ink = self.palette().color(self.foregroundRole())
        track = QColor(ink)
        track.setAlpha(60)
        width = max(2.0, self.height() * 0.08)
        painter.setPen(QPen(track, width))
        painter.drawEllipse(ring)
        pen = QPen(ink, width)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        painter.setPen(pen)
        painter.drawArc(ring, 90 * 16, -round(self.time_left * 360 * 16))
        painter.end()


class MatchTile(QWidget):
    """A small match: portrait, name (two lines at most) and percent; a touch on it enlarges it."""

    def __init__(self) -> None:
        super().__init__()
        self.portrait = Portrait("small_portrait")
        self.name = ElidedLabel("small_name", lines=2, align=MIDDLE_LEFT)
        self.percent = label("small_percent", MIDDLE_LEFT)
        words = QVBoxLayout()
        words.addStretch()
        words.addWidget(self.name)
        words.addWidget(self.percent)
        words.addStretch()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.portrait, alignment=Qt.AlignmentFlag.AlignVCenter)
        layout.addSpacing(16)
        layout.addLayout(words, 1)


class DuoColumn(QWidget):
    """One of two visitors beside their best lookalike, with the percent and the name under them."""

    def __init__(self) -> None:
        super().__init__()
        self.you, self.best = Portrait("visitor"), Portrait("portrait")
        self.percent = label("duo_percent")
        self.name = ElidedLabel("name", lines=2, align=TOP_CENTRE)
        pictures = QHBoxLayout()
        pictures.addStretch()
        pictures.addWidget(self.you)
        pictures.addSpacing(20)
        pictures.addWidget(self.best)
        pictures.addStretch()
        layout = QVBoxLayout(self)
        layout.addStretch()
        layout.addLayout(pictures)
        layout.addWidget(self.percent)
        layout.addWidget(self.name)
        layout.addStretch()

    def show_pair(self, pair: Pair, side: int, config: KioskConfig, lang: str) -> None:
        best = pair.matches[0]
        self.you.setPixmap(fit(to_pixmap(pair.visitor, mirror=True), side))
        self.best.setPixmap(fit(to_pixmap(best.portrait, mirror=False), side))
        self.percent.setText(tr(lang, "similarity", percent=config.percent(best.score)))
        self.name.setText(best.name)

    def clear(self) -> None:
        for widget in (self.you, self.best, self.percent, self.name):
            widget.clear()


class ResultsPage(Page):
    """The visitor beside one lookalike, large, the best first; the next ones small, and a touch on
    one brings it into the big tile. Two visitors (duo) each get their best lookalike, side by side.
    Only the button tries again: touches anywhere else are kept here, never passed to the window.
    The button's ring shows how long the screen stays (`set_time_left`)."""

    try_again = Signal()
    touched = Signal()  # anywhere but the button: someone is there, pointing (it never restarts)
    drawn = Signal(float)  # perf_counter() time of the first paint of a new outcome
    resized = Signal(int)  # the big tiles' new side (big_side)

    def __init__(self) -> None:
        super().__init__()
        self.outcome: SearchOutcome | None = None
        self.config = KioskConfig()
        self.lang = "zh"
        self.selected = 0  # which of the first visitor's matches is in the big tile
        self._small_ranks: list[int] = []  # the match shown in each small tile
        self._announce = False
        self.heading = label("heading", MIDDLE_LEFT)
        self.you, self.you_caption = Portrait("visitor"), label("caption")
        self.best, self.best_name = Portrait("portrait"), ElidedLabel("name", lines=2, align=MIDDLE_LEFT, shrink=True)
        self.percent = label("percent", MIDDLE_LEFT)
        self.best_caption = ElidedLabel("caption", lines=2, align=TOP_LEFT, shrink=True)
        self.more = label("caption", MIDDLE_LEFT)
        self.button = RingButton()
        self.button.setObjectName("try_again")
        self.button.clicked.connect(self.try_again)
        self.privacy = label("privacy", MIDDLE_LEFT)
        self.tiles = [MatchTile() for _ in range(SMALL_MATCHES)]
        self.small = [(tile.portrait, tile.name, tile.percent) for tile in self.tiles]
        self.single, self.duo = QWidget(), QWidget()
        self.duo_columns = [DuoColumn(), DuoColumn()]

        pair = QHBoxLayout()
        for portrait, caption in ((self.you, self.you_caption), (self.best, None)):
            column = QVBoxLayout()
            column.addWidget(portrait, alignment=Qt.AlignmentFlag.AlignCenter)
            if caption is not None:
                column.addWidget(caption)
            column.addStretch()
            pair.addLayout(column)
            pair.addSpacing(30)
        about = QVBoxLayout()
        for widget in (self.percent, self.best_name, self.best_caption):
            about.addWidget(widget)
        about.addStretch()  # a longer name or caption moves nothing else
        pair.addLayout(about, 1)
        row = QHBoxLayout()
        row.setSpacing(24)
        for tile in self.tiles:
            row.addWidget(tile, 1)
        single = QVBoxLayout(self.single)
        single.setContentsMargins(0, 0, 0, 0)
        single.addLayout(pair)
        single.addStretch()
        single.addWidget(self.more)
        single.addLayout(row)
        duo = QHBoxLayout(self.duo)
        duo.setContentsMargins(0, 0, 0, 0)
        for side in self.duo_columns:
            duo.addWidget(side, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.privacy, 1)
        bottom.addWidget(self.button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(48, 24, 48, 32)
        layout.addWidget(self.heading)
        layout.addWidget(self.single, 1)
        layout.addWidget(self.duo, 1)
        layout.addLayout(bottom)
        self.duo.hide()

    def retranslate(self, lang: str) -> None:
        self.lang = lang
        self.you_caption.setText(tr(lang, "you"))
        self.more.setText(tr(lang, "browse_hint"))
        self.button.setText(tr(lang, "try_again"))
        self.privacy.setText(tr(lang, "privacy"))
        self._fill()

    def show_outcome(self, outcome: SearchOutcome | None, config: KioskConfig) -> None:
        self.outcome, self.config = outcome, config
        self.selected = 0
        self._announce = outcome is not None
        self.button.set_time_left(1.0)
        self._fill()

    def set_time_left(self, fraction: float) -> None:
        """How long the results stay, as a share of their whole time: 1 just shown, 0 closing."""
        self.button.set_time_left(fraction)

    def select(self, rank: int) -> None:
        """Bring the first visitor's match of this rank (0 = best) into the big tile."""
        self.selected = rank
        self._fill()

    def mousePressEvent(self, event) -> None:
        event.accept()  # kept here: pointing at a portrait never restarts (only the button does)
        self.touched.emit()
        touched = self.childAt(event.position().toPoint())
        while touched is not None and touched is not self:
            if touched in self.tiles:
                index = self.tiles.index(touched)
                if index < len(self._small_ranks):
                    self.select(self._small_ranks[index])
                return
            touched = touched.parentWidget()

    def _fill(self) -> None:
        outcome = self.outcome
        pairs = outcome.pairs if outcome is not None else []
        duo = len(pairs) > 1
        self.single.setVisible(not duo)
        self.duo.setVisible(duo)
        self._fill_duo(pairs if duo else [])
        self._fill_single(pairs[0] if len(pairs) == 1 else None)
        if duo:
            self.heading.setText(tr(self.lang, "duo_heading"))
        elif self.selected:
            self.heading.setText(tr(self.lang, "match_rank", rank=self.selected + 1))
        else:
            self.heading.setText(tr(self.lang, "best_match"))

    def _fill_duo(self, pairs: list[Pair]) -> None:
        side = int(min(self.height() * 0.36, self.width() * 0.21)) or 360
        for column, pair in zip(self.duo_columns, pairs, strict=False):
            column.show_pair(pair, side, self.config, self.lang)
        for column in self.duo_columns[len(pairs):]:
            column.clear()

    def big_side(self) -> int:
        """Pixels of the big tiles' side: the worker prepares pictures at this size."""
        return int(min(self.height() * 0.46, self.width() * 0.26)) or 330  # a 5:4 screen leaves room beside

    def _fill_single(self, pair: Pair | None) -> None:
        big = self.big_side()
        little = int(min(self.height() * 0.13, self.width() * 0.07)) or 94
        if pair is None:
            for widget in (self.you, self.best, self.best_name, self.best_caption, self.percent):
                widget.clear()
            for widgets in self.small:
                for widget in widgets:
                    widget.clear()
            self._small_ranks = []
            return
        chosen = pair.matches[min(self.selected, len(pair.matches) - 1)]
        self.you.setPixmap(fit(to_pixmap(pair.visitor, mirror=True), big))  # as they saw themselves live
        self.best.setPixmap(fit(to_pixmap(chosen.portrait, mirror=False), big))
        self.percent.setText(tr(self.lang, "similarity", percent=self.config.percent(chosen.score)))
        self.best_name.setText(chosen.name)
        self.best_caption.setText(chosen.caption)
        self._small_ranks = [rank for rank in range(len(pair.matches)) if rank != self.selected][:SMALL_MATCHES]
        self.more.setVisible(bool(self._small_ranks))
        for index, (portrait, name, percent) in enumerate(self.small):
            if index < len(self._small_ranks):
                match = pair.matches[self._small_ranks[index]]
                portrait.setPixmap(fit(to_pixmap(match.portrait, mirror=False), little))
                name.setText(match.name)
                percent.setText(f"{self.config.percent(match.score)}%")
            else:
                for widget in (portrait, name, percent):
                    widget.clear()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.resized.emit(self.big_side())
        self._fill()

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self._announce:
            self._announce = False
            self.drawn.emit(time.perf_counter())


class PinPage(Page):
    """A touch keypad for the staff PIN."""

    entered = Signal(str)
    cancelled = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.digits = ""
        self.lang, self.heading_key = "zh", "enter_pin"
        self.heading, self.shown, self.message = label("heading"), label("name"), label("warning")
        grid = QGridLayout()
        for position, key in enumerate("123456789C0✓"):
            button = QPushButton(key)
            button.setObjectName("key")
            button.clicked.connect(lambda _=False, k=key: self.press(k))
            grid.addWidget(button, position // 3, position % 3)
        self.cancel = QPushButton()
        self.cancel.setObjectName("secondary")
        self.cancel.clicked.connect(self.cancelled)
        panel = QFrame()
        panel.setObjectName("panel")
        inner = QVBoxLayout(panel)
        for widget in (self.heading, self.shown, self.message):
            inner.addWidget(widget)
        inner.addLayout(grid)
        inner.addWidget(self.cancel)
        layout = QHBoxLayout(self)
        layout.addStretch()
        layout.addWidget(panel)
        layout.addStretch()

    def press(self, key: str) -> None:
        if key == "C":
            self.digits = ""
        elif key == "✓":
            self.entered.emit(self.digits)
            self.digits = ""
        elif len(self.digits) < MAX_PIN_DIGITS:
            self.digits += key
        self.shown.setText("•" * len(self.digits) or " ")

    def reset(self, message: str = "", heading_key: str = "enter_pin") -> None:
        """An empty pad saying `message`, headed by `heading_key` (entering, or choosing a new PIN)."""
        self.digits = ""
        self.shown.setText(" ")
        self.message.setText(message)
        self.heading_key = heading_key
        self.heading.setText(tr(self.lang, heading_key))

    def retranslate(self, lang: str) -> None:
        self.lang = lang
        self.heading.setText(tr(lang, self.heading_key))
        self.cancel.setText(tr(lang, "cancel"))


class StaffPage(Page):
    """Camera, language, number of lookalikes; the camera's status, visits served, gallery, providers,
    live performance and the log's last lines; restart the camera, or quit by holding the button."""

    apply = Signal(str, str, int)  # camera, language, lookalikes: the window checks, saves and closes
    quit = Signal()
    reset_exposure = Signal()
    restart_camera = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.heading = label("heading")
        self.camera = QComboBox()
        self.camera.setEditable(True)
        self.language = QComboBox()
        self.language.addItems(["中文 (zh)", "English (en)"])
        self.lookalikes = QSpinBox()
        self.lookalikes.setRange(1, 1 + SMALL_MATCHES)
        self.labels = {key: label("caption", Qt.AlignmentFlag.AlignLeft) for key in
                       ("camera", "language_setting", "lookalikes", "camera_status", "visits", "gallery", "providers",
                        "performance", "exposure", "log")}
        self.camera_status, self.visits, self.gallery, self.providers, self.performance, self.exposure = (
            label("status", Qt.AlignmentFlag.AlignLeft) for _ in range(6))
        self.log = QPlainTextEdit()  # plain text: a log line is never rendered as markup
        self.log.setObjectName("log")
        self.log.setReadOnly(True)
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.exposure_numbers: dict = {}
        self.lang = "zh"
        self.reset_button, self.restart_button = QPushButton(), QPushButton()
        for button in (self.reset_button, self.restart_button):
            button.setObjectName("secondary")
        self.reset_button.clicked.connect(self.reset_exposure)
        self.restart_button.clicked.connect(self.restart_camera)
        self.warning = label("warning", Qt.AlignmentFlag.AlignLeft)
        self.close_button, self.quit_button = QPushButton(), HoldButton()
        self.quit_button.setObjectName("secondary")
        self.close_button.clicked.connect(self._apply)
        self.quit_button.held.connect(self.quit)
        panel = QFrame()
        panel.setObjectName("panel")
        grid = QGridLayout(panel)
        grid.addWidget(self.heading, 0, 0, 1, 2)
        rows = (("camera", self.camera), ("language_setting", self.language), ("lookalikes", self.lookalikes),
                ("camera_status", self.camera_status), ("visits", self.visits), ("gallery", self.gallery),
                ("providers", self.providers), ("performance", self.performance), ("exposure", self.exposure),
                ("log", self.log))
        for row, (key, widget) in enumerate(rows, 1):
            grid.addWidget(self.labels[key], row, 0)
            grid.addWidget(widget, row, 1)
        grid.addWidget(self.warning, len(rows) + 1, 0, 1, 2)
        buttons = QHBoxLayout()
        buttons.addWidget(self.quit_button)
        buttons.addWidget(self.restart_button)
        buttons.addWidget(self.reset_button)
        buttons.addStretch()
        buttons.addWidget(self.close_button)
        grid.addLayout(buttons, len(rows) + 2, 0, 1, 2)
        grid.setColumnStretch(1, 1)
        grid.setRowStretch(len(rows), 1)  # the log takes the room left
        layout = QVBoxLayout(self)
        layout.addWidget(panel)

    def load(self, config: KioskConfig, cameras: list[str]) -> None:
        self.camera.clear()
        self.camera.addItems(list(dict.fromkeys([config.camera, *cameras])))
        self.language.setCurrentIndex(LANGUAGES.index(config.lang))
        self.lookalikes.setValue(config.lookalikes)

    def show_status(self, status: dict[str, str]) -> None:
        """Plain texts for the status rows: camera_status, visits, gallery, providers, performance,
        log, and warning (what staff must act on)."""
        for key in ("camera_status", "visits", "gallery", "providers", "performance", "warning"):
            getattr(self, key).setText(status[key])
        if self.log.toPlainText() != status["log"]:
            self.log.setPlainText(status["log"])
            self.log.verticalScrollBar().setValue(self.log.verticalScrollBar().maximum())

    def show_exposure(self, numbers: dict) -> None:
        """The exposure ledger's summary (kiosk.ledger.Ledger.summary)."""
        self.exposure_numbers = numbers
        self.exposure.setText(tr(self.lang, "exposure_status", **numbers) if numbers else "")

    def _apply(self) -> None:
        self.apply.emit(self.camera.currentText(), LANGUAGES[self.language.currentIndex()], self.lookalikes.value())

    def retranslate(self, lang: str) -> None:
        self.lang = lang
        self.heading.setText(tr(lang, "staff_panel"))
        for key, widget in self.labels.items():
            widget.setText(tr(lang, key))
        self.close_button.setText(tr(lang, "close"))
        self.quit_button.setText(tr(lang, "hold_to_quit"))
        self.reset_button.setText(tr(lang, "reset_exposure"))
        self.restart_button.setText(tr(lang, "restart_camera"))
        self.show_exposure(self.exposure_numbers)
