"""The message screens (splash, camera wait) and the live view. Each screen shows plain data it is
given and knows nothing of threads or models; the results are in kiosk.results_page, the staff
screens in kiosk.staff_pages, the attract screen in kiosk.attract."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFontMetrics, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QVBoxLayout

from kiosk.i18n import tr
from kiosk.pictograms import PICTOGRAMS, draw_pictogram
from kiosk.widgets import MirroredFrames, Page, label, scaled_font, set_texts

HINT_PX, PRIVACY_PX, COUNTDOWN_PX = 44, 36, 260  # visitors read these at 1.5 m: 36 px or more
# The face guide, in shares of the page's height: an adult's face fills it near the top; a child's, or
# a seated visitor's, is seen lower in the frame, and the guide goes down to meet it. Two places
# only, so the hint always has room (under the high guide, over the low one), and a margin between
# going down and coming back, so a face near the middle never makes it hop.
GUIDE_WIDTH, GUIDE_HEIGHT = 0.40, 0.54
HIGH_GUIDE, LOW_GUIDE = 0.39, 0.60  # the guide's centre
GO_LOW, GO_HIGH = 0.52, 0.45  # the face's centre on screen below which the guide goes down, above which it comes back


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
        set_texts(lang, ((self.title, self.title_key), (self.line, self.line_key), (self.privacy, "privacy")))
        self.subtitle.setText(tr(lang, "subtitle") if self.title_key == "title" else "")
        self.subtitle.setVisible(self.title_key == "title")


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
        self.low = False  # the guide is down, meeting a face seen low in the frame

    def retranslate(self, lang: str) -> None:
        self.lang = lang
        self.update()

    def show_frame(self, frame: np.ndarray) -> None:
        self.frame, self._picture = frame, None
        self.update()

    def forget(self) -> None:
        """Drop the last camera frame: the next visitor must not see the previous one's."""
        self.frame = self._picture = self._last_painted = None
        self.low = False
        self._frames.forget()

    def show_overlay(self, hint: str, ready: bool, countdown: int, searching: bool) -> None:
        """What is drawn over the picture; repainted only when it changed (a 1080p repaint costs the
        inference worker's embed part of a core on a 2-core machine)."""
        overlay = (hint, ready, countdown, searching)
        if overlay != (self.hint, self.ready, self.countdown, self.searching):
            self.hint, self.ready, self.countdown, self.searching = overlay
            self.update()

    def follow(self, face_y: float | None) -> None:
        """Take the guide down to a face seen low at `face_y` (a share of the frame's height), or back
        up to one seen high; None (no face) leaves it where it is."""
        if face_y is None or self.frame is None or not self.height():
            return
        width, height = self.width(), self.height()
        shown = self.frame.shape[0] * max(width / self.frame.shape[1], height / self.frame.shape[0])
        on_screen = ((height - shown) / 2 + face_y * shown) / height
        low = on_screen > GO_LOW if not self.low else on_screen > GO_HIGH
        if low != self.low:
            self.low = low
            self.update()

    def guide(self) -> QRectF:
        """The oval the visitor's face should fill: at an adult's height, or lower to meet a face seen lower."""
        width, height = self.width(), self.height()
        centre = height * (LOW_GUIDE if self.low else HIGH_GUIDE)
        return QRectF(width / 2 - height * GUIDE_WIDTH / 2, centre - height * GUIDE_HEIGHT / 2,
                      height * GUIDE_WIDTH, height * GUIDE_HEIGHT)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        width, height = self.width(), self.height()
        painter.fillRect(self.rect(), QColor("#0d1326"))
        if self.frame is not None:
            self._camera_picture(painter)
        guide = self.guide()
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
        if key:  # under the guide, or over it when the guide went low
            top = 0.10 if self.low else 0.74
            self._banner(painter, key, QRectF(width * 0.12, height * top, width * 0.76, height * 0.13))
        if self.countdown and not self.searching:
            self._countdown(painter, guide)
        self._footer(painter, not (self.countdown or self.searching))
        painter.end()

    def _footer(self, painter: QPainter, any_height: bool) -> None:
        """The privacy line at the right; at the left, until the countdown, that any height will do."""
        width, height = self.width(), self.height()
        line = QRectF(width * 0.03, height * 0.9, width * 0.94, height * 0.075)
        painter.fillRect(QRectF(0, height * 0.88, width, height * 0.12), QColor(13, 19, 38, 190))  # on any picture
        painter.setFont(scaled_font(self, PRIVACY_PX))
        painter.setPen(QColor("#d9dcea"))
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        painter.drawText(line, right, tr(self.lang, "privacy"))
        if any_height:
            sign = QRectF(line.left(), line.top(), line.height(), line.height())
            draw_pictogram(painter, "any_height", sign, QColor("#d9dcea"))
            painter.setPen(QColor("#d9dcea"))
            painter.drawText(line.adjusted(line.height() * 1.25, 0, 0, 0),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, tr(self.lang, "any_height"))

    def _camera_picture(self, painter: QPainter) -> None:
        """The frame, mirrored, filling the page; counted once however often it is repainted."""
        assert self.frame is not None
        if self._picture is None:
            self._picture = self._frames.image(self.frame)
        picture, width, height = self._picture, self.width(), self.height()
        scale = max(width / picture.width(), height / picture.height())
        target = QRectF((width - picture.width() * scale) / 2, (height - picture.height() * scale) / 2,
                        picture.width() * scale, picture.height() * scale)
        painter.drawImage(target, picture, QRectF(picture.rect()))
        if self.frame is not self._last_painted:
            self._last_painted = self.frame
            self.painted_frames += 1

    def _countdown(self, painter: QPainter, guide: QRectF) -> None:
        disc = QPainterPath()  # the digit stands out on any face or shirt
        disc.addEllipse(guide.center(), self.height() * 0.15, self.height() * 0.15)
        painter.fillPath(disc, QColor(13, 19, 38, 160))
        painter.setFont(scaled_font(self, COUNTDOWN_PX, bold=True))
        painter.setPen(QColor("#ffffff"))
        painter.drawText(guide, Qt.AlignmentFlag.AlignCenter, str(self.countdown))

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
