"""The attract screen: a slowly drifting mosaic of gallery faces, a pair of gallery faces that look
alike fading in and out ("two strangers, one face"), and one call to action in both languages with
a pictogram. It shows only the gallery, never a visitor's image, and it keeps moving, even with no
faces at all (the pictogram's ripple), so a passer-by sees a live screen, not a poster."""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFontMetrics, QImage, QLinearGradient, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QSizePolicy, QSpacerItem, QVBoxLayout

from kiosk.attract_faces import AttractSet
from kiosk.i18n import LANGUAGES, tr
from kiosk.pictograms import draw_pictogram
from kiosk.widgets import (
    LONGEST_SHOWN,
    MIDDLE_LEFT,
    CameraOn,
    ElidedLabel,
    Gaps,
    Page,
    label,
    scaled_font,
    set_texts,
    to_pixmap,
)

FRAME_MS = 33            # about 30 frames a second
DRIFT = 18.0             # mosaic speed, pixels a second at 1080p: slow enough to look calm
ROWS = 5                 # mosaic rows on screen
DIM = 0.38               # mosaic brightness, so the words over it stay readable
PAIR_SECONDS = 8.0       # one lookalike pair on screen, fades included
FADE_SECONDS = 1.2
RIPPLE_SECONDS = 2.5     # one ring spreading from the pictogram; one second on, it is elsewhere
CALL_GAP = 64            # pixels between the pictogram and the call to action
BACKGROUND = QColor("#0d1326")
GOLD = QColor("#f5c451")


def prepared(bgr: np.ndarray, side: int, brightness: float = 1.0) -> QPixmap:
    """A gallery face scaled once to `side`, darkened to `brightness` and in the screen's own pixel
    format, so that each frame only copies it."""
    image = to_pixmap(bgr, mirror=False).toImage().convertToFormat(QImage.Format.Format_RGB32)
    image = image.scaled(side, side, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation)
    if brightness < 1:
        painter = QPainter(image)
        painter.fillRect(image.rect(), QColor(13, 19, 38, round(255 * (1 - brightness))))
        painter.end()
    return QPixmap.fromImage(image)


def fade(phase: float) -> float:
    """Opacity of a pair `phase` seconds into its turn: in, held, out."""
    return max(0.0, min(1.0, phase / FADE_SECONDS, (PAIR_SECONDS - phase) / FADE_SECONDS))


class CallLabel(ElidedLabel):
    """A line of the call to action: as wide as its words where the screen has room, so it stays
    centred beside its pictogram; on two lines, cut with "…", where it has not."""

    def __init__(self, name: str) -> None:
        super().__init__(name, lines=2, align=MIDDLE_LEFT, shrink=True)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def setText(self, text: str) -> None:
        super().setText(text)
        self.updateGeometry()  # other words, another width

    def sizeHint(self) -> QSize:
        margins = self.contentsMargins()
        words = self.fontMetrics().horizontalAdvance(" ".join(self.full_text.split())) + 2
        return QSize(words + margins.left() + margins.right(), super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        return QSize(0, super().sizeHint().height())


class AttractPage(Page):
    """Title, the moving gallery, the call to action (en and zh together) and the privacy line.

    Touches pass through to the window (a touch anywhere starts). `clock` gives seconds; tests pass a
    fake one to draw the screen at chosen moments."""

    language_clicked = Signal()

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self.lang = "zh"
        self.shown = AttractSet()
        self._since = clock()  # when the set came: its first pair fades in from then
        self._tiles: list[QPixmap] = []
        self._pairs: list[tuple[QPixmap, QPixmap, str]] = []
        self._sizes = (0, 0)  # tile and pair sides the pixmaps were scaled to
        self.title, self.subtitle = label("title"), label("subtitle")
        # what the camera does here and that nothing is kept, in the booth's words (kiosk.cues), both languages
        self.notices = [ElidedLabel("notice", lines=2, align=Qt.AlignmentFlag.AlignCenter, shrink=True)
                        for _ in LANGUAGES]
        # the call to action in both languages, the chosen one first and larger
        self.calls = [CallLabel(name) for name in ("call", "invite")]
        self.language = QPushButton()
        self.language.setObjectName("language")
        self.language.clicked.connect(self.language_clicked)
        # painted spaces (not widgets, which the theme would fill): the lookalike pair; the pictogram
        self.stage = QSpacerItem(0, 0, QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.sign = QSpacerItem(0, 0, QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.camera_room = QSpacerItem(0, 0, QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)  # CameraOn's place
        self.gaps = Gaps()
        self._lay_out()
        self.timer = QTimer(self, interval=FRAME_MS, timeout=self.update)  # type: ignore[call-arg]

    def _lay_out(self) -> None:
        """The language button at the top; the title over the pair's stage; the call to action beside
        its pictogram; the notice under all."""
        top = QHBoxLayout()
        top.addStretch()
        top.addWidget(self.language)
        top.addItem(self.camera_room)
        call = QVBoxLayout()
        for widget in self.calls:
            call.addWidget(widget)
        action = QHBoxLayout()
        action.addStretch()
        action.addItem(self.sign)
        self.gaps.space(action, CALL_GAP)
        action.addLayout(call)
        action.addStretch()
        self.column = QVBoxLayout(self)
        self.gaps.margins(self.column, 48, 24, 48, 24)
        self.column.addLayout(top)
        self.column.addWidget(self.title)
        self.column.addWidget(self.subtitle)
        self.column.addItem(self.stage)
        self.column.addLayout(action)
        self.gaps.space(self.column, 16)
        for line in self.notices:
            self.column.addWidget(line)

    def retranslate(self, lang: str) -> None:
        self.lang = lang
        set_texts(lang, ((self.title, "title"), (self.subtitle, "subtitle"), (self.language, "language")))
        for widget, each in zip(self.calls, sorted(LANGUAGES, key=lambda other: other != lang), strict=True):
            widget.setText(tr(each, "invite"))

    def show_notice(self, lines: list[str]) -> None:
        """The notice to passers-by, the visitor's language first: plain text, as staff typed it."""
        for widget, line in zip(self.notices, lines, strict=True):
            widget.setText(line)

    def show_set(self, shown: AttractSet) -> None:
        self.shown, self._since = shown, self.clock()
        self._sizes = (0, 0)
        self.update()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.timer.start()

    def hideEvent(self, event) -> None:
        super().hideEvent(event)
        self.timer.stop()  # nothing moves, and no CPU is spent, while another screen is up

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        side = round(self.height() * 0.13)
        self.sign.changeSize(side, side, QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.gaps.scale(self.height())
        room = CameraOn.extent(self.font(), self.height())[0] + round(self.height() * 0.03)
        self.camera_room.changeSize(room, 0, QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.column.invalidate()
        self.column.activate()  # now: the next frame paints the pictogram where it belongs

    def _scaled(self) -> None:
        """Scale the set's pictures to this screen once, not at every frame."""
        tile, pair = self.height() // ROWS + 1, round(self.stage.geometry().height() * 0.62)
        if self._sizes == (tile, pair):
            return
        self._sizes = (tile, pair)
        self._tiles = [prepared(face, tile, DIM) for face in self.shown.faces]
        self._pairs = [(prepared(a, pair), prepared(b, pair), " ".join(line[:LONGEST_SHOWN].split()))
                       for a, b, line in self.shown.pairs]

    def paintEvent(self, event) -> None:
        self._scaled()
        now = self.clock()
        painter = QPainter(self)
        if not self._tiles:  # otherwise the mosaic covers every pixel
            painter.fillRect(self.rect(), BACKGROUND)
        self._mosaic(painter, now)
        self._shade(painter)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        self._pair(painter, now)
        self._sign(painter, now)
        painter.end()

    def _mosaic(self, painter: QPainter, now: float) -> None:
        """Rows of faces drifting left and right in turn; each face keeps its place in its row, and
        a face leaving one side comes back on the other."""
        if not self._tiles:
            return
        side = self._sizes[0]
        per_row = self.width() // side + 2
        loop = per_row * side
        shift = now * DRIFT * self.height() / 1080
        for row in range(ROWS):
            direction = 1 if row % 2 == 0 else -1
            for slot in range(per_row):
                x = (slot * side + direction * shift + row * side / 2) % loop - side
                tile = self._tiles[(row * per_row + slot) % len(self._tiles)]
                painter.drawPixmap(round(x), row * side, tile)  # whole pixels: a plain copy

    def _shade(self, painter: QPainter) -> None:
        """Darken the mosaic behind the title and the call to action, so their words stand out."""
        height = self.height()
        for top, bottom, start, end in ((0.0, 0.3, 235, 0), (0.62, 1.0, 0, 245)):
            gradient = QLinearGradient(0, top * height, 0, bottom * height)
            gradient.setColorAt(0, QColor(13, 19, 38, start))
            gradient.setColorAt(1, QColor(13, 19, 38, end))
            painter.fillRect(QRectF(0, top * height, self.width(), (bottom - top) * height), gradient)

    def _pair(self, painter: QPainter, now: float) -> None:
        """The lookalike pair of the moment, fading in and out over a card."""
        if not self._pairs:
            return
        turn, phase = divmod(now - self._since, PAIR_SECONDS)
        first, second, line = self._pairs[int(turn) % len(self._pairs)]
        side, gap = self._sizes[1], self.stage.geometry().height() * 0.06
        area = QRectF(self.stage.geometry())
        scale = self.height() / 1080
        heading_height, line_height = 64 * scale, 60 * scale
        heading = f"{tr('zh', 'two_strangers')} · {tr('en', 'two_strangers')}"
        heading_font = scaled_font(self, 44, bold=True)
        width = max(side * 2 + gap * 3, QFontMetrics(heading_font).horizontalAdvance(heading) + gap * 2)
        card = QRectF(0, 0, width, side + gap * 2 + heading_height + line_height)
        card.moveCenter(area.center())
        painter.setOpacity(fade(phase))
        path = QPainterPath()
        path.addRoundedRect(card, 28 * scale, 28 * scale)
        painter.fillPath(path, QColor(13, 19, 38, 225))
        painter.setPen(QColor("#ffffff"))
        painter.setFont(heading_font)
        painter.drawText(QRectF(card.left(), card.top() + gap * 0.6, card.width(), heading_height),
                         Qt.AlignmentFlag.AlignCenter, heading)
        top = card.top() + gap + heading_height
        painter.setPen(QPen(GOLD, max(3.0, 6 * scale)))
        for index, picture in enumerate((first, second)):
            box = QRectF(card.center().x() + (index - 1) * side + (index - 0.5) * gap, top, side, side)
            painter.drawPixmap(box.topLeft(), picture)
            painter.drawRoundedRect(box, 12 * scale, 12 * scale)
        font = scaled_font(self, 40)
        painter.setFont(font)
        painter.setPen(QColor("#d9dcea"))
        width = int(card.width() - gap * 2)
        painter.drawText(QRectF(card.left() + gap, top + side + gap * 0.3, width, line_height),
                         Qt.AlignmentFlag.AlignCenter,
                         QFontMetrics(font).elidedText(line, Qt.TextElideMode.ElideRight, width))
        painter.setOpacity(1.0)

    def _sign(self, painter: QPainter, now: float) -> None:
        """The pictogram with a ring spreading from it: the one thing that moves on an empty set."""
        box = QRectF(self.sign.geometry())
        spread = (now % RIPPLE_SECONDS) / RIPPLE_SECONDS
        ring = box.width() * (0.55 + 0.25 * spread)
        painter.setPen(QPen(QColor(245, 196, 81, round(200 * (1 - spread))), max(2.0, box.width() * 0.04)))
        painter.drawEllipse(box.center(), ring, ring)
        disc = QPainterPath()
        disc.addEllipse(box.center(), box.width() * 0.52, box.width() * 0.52)
        painter.fillPath(disc, GOLD)
        inner = box.adjusted(box.width() * 0.16, box.width() * 0.16, -box.width() * 0.16, -box.width() * 0.16)
        draw_pictogram(painter, "walk_up", inner, BACKGROUND)
