"""The results screen: the visitor beside their lookalikes, or two visitors (duo) each beside
their best one."""
from __future__ import annotations

import time

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from kiosk.config import MAX_LOOKALIKES
from kiosk.i18n import tr
from kiosk.messages import Match, Pair, SearchOutcome
from kiosk.widgets import (
    MIDDLE_LEFT,
    TOP_CENTRE,
    TOP_LEFT,
    ElidedLabel,
    Gaps,
    Page,
    Portrait,
    framed,
    label,
    set_texts,
    to_pixmap,
)

SMALL_MATCHES = MAX_LOOKALIKES - 1  # the best match is shown large


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
    """A small match: portrait, name (two lines at most) and likeness; a touch on it enlarges it."""

    def __init__(self, gaps: Gaps) -> None:
        super().__init__()
        self.portrait = Portrait("small_portrait")
        self.name = ElidedLabel("small_name", lines=2, align=MIDDLE_LEFT)
        self.percent = label("small_percent", MIDDLE_LEFT)
        words = QVBoxLayout()
        gaps.spacing(words, 4)
        words.addStretch()
        words.addWidget(self.name)
        words.addWidget(self.percent)
        words.addStretch()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        gaps.spacing(layout, 0)
        layout.addWidget(self.portrait, alignment=Qt.AlignmentFlag.AlignVCenter)
        gaps.space(layout, 20)
        layout.addLayout(words, 1)

    def show_match(self, match: Match | None, side: int) -> None:
        if match is None:
            for widget in (self.portrait, self.name, self.percent):
                widget.clear()
            return
        self.portrait.setPixmap(framed(to_pixmap(match.portrait, mirror=False), side, match.source_side))
        self.name.setText(match.name)
        self.percent.setText(f"{match.likeness}%")


class MuseumLabel(QWidget):
    """The chosen match's name over its caption, as a museum labels a picture: top-aligned in room
    for two lines of each, so a longer name or caption moves nothing else."""

    def __init__(self, gaps: Gaps, align=TOP_LEFT) -> None:
        super().__init__()
        self.name = ElidedLabel("name", lines=2, align=align, shrink=True)
        self.caption = ElidedLabel("caption", lines=2, align=align, shrink=True)
        self.lines = QVBoxLayout(self)
        self.lines.setContentsMargins(0, 0, 0, 0)
        gaps.spacing(self.lines, 4)
        self.lines.addWidget(self.name)
        self.lines.addWidget(self.caption)
        self.lines.addStretch()

    def sizeHint(self) -> QSize:
        room = sum(label.lines * label.fontMetrics().lineSpacing() for label in (self.name, self.caption))
        return QSize(0, room + self.lines.spacing())

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()


class DuoColumn(QWidget):
    """One of two visitors beside their best lookalike, with its likeness, name and caption under them."""

    def __init__(self, gaps: Gaps) -> None:
        super().__init__()
        self.you, self.best = Portrait("visitor"), Portrait("portrait")
        self.percent = label("duo_percent")
        self.about = MuseumLabel(gaps, TOP_CENTRE)
        self.name, self.caption = self.about.name, self.about.caption
        pictures = QHBoxLayout()
        gaps.spacing(pictures, 0)
        pictures.addStretch()
        pictures.addWidget(self.you)
        gaps.space(pictures, 24)
        pictures.addWidget(self.best)
        pictures.addStretch()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        gaps.spacing(layout, 6)
        layout.addStretch()
        layout.addLayout(pictures)
        gaps.space(layout, 12)
        layout.addWidget(self.percent)
        layout.addWidget(self.about)
        layout.addStretch()

    def show_pair(self, pair: Pair, side: int, lang: str) -> None:
        best = pair.matches[0]
        self.you.setPixmap(framed(to_pixmap(pair.visitor, mirror=True), side, pair.source_side))
        self.best.setPixmap(framed(to_pixmap(best.portrait, mirror=False), side, best.source_side))
        self.percent.setText(tr(lang, "similarity", percent=best.likeness))
        self.name.setText(best.name)
        self.caption.setText(best.caption)

    def clear(self) -> None:
        for widget in (self.you, self.best, self.percent, self.name, self.caption):
            widget.clear()


class ResultsPage(Page):
    """The visitor beside one lookalike, large, the best first, its name and caption under it like a
    museum label; beside them its likeness and the next ones, and a touch on one brings it into the
    big tile. Two visitors (duo) each get their best lookalike, side by side. Every size follows the
    window's height (and its width, on a squarer screen). Only the button tries again: touches
    anywhere else are kept here, never passed to the window. The button's ring shows how long the
    screen stays (`set_time_left`)."""

    try_again = Signal()
    touched = Signal()  # anywhere but the button: someone is there, pointing (it never restarts)
    drawn = Signal(float)  # perf_counter() time of the first paint of a new outcome
    resized = Signal(int)  # the big tiles' new side (big_side)

    def __init__(self) -> None:
        super().__init__()
        self.outcome: SearchOutcome | None = None
        self.lang = "zh"
        self.selected = 0  # which of the first visitor's matches is in the big tile
        self._small_ranks: list[int] = []  # the match shown in each small tile
        self._announce = False
        self.heading = label("heading", MIDDLE_LEFT)
        self.you, self.you_caption = Portrait("visitor"), label("caption", MIDDLE_LEFT)
        self.gaps = Gaps()
        self.best, self.about = Portrait("portrait"), MuseumLabel(self.gaps)
        self.best_name, self.best_caption = self.about.name, self.about.caption
        self.percent = label("percent", MIDDLE_LEFT)
        self.more = label("caption", MIDDLE_LEFT)
        self.button = RingButton()
        self.button.setObjectName("try_again")
        self.button.clicked.connect(self.try_again)
        self.privacy = label("privacy", MIDDLE_LEFT)
        self.tiles = [MatchTile(self.gaps) for _ in range(SMALL_MATCHES)]
        self.single, self.duo = QWidget(), QWidget()
        self.duo_columns = [DuoColumn(self.gaps), DuoColumn(self.gaps)]
        self._lay_out_single()
        self._lay_out_page()

    @property
    def small(self) -> list[tuple[Portrait, ElidedLabel, QLabel]]:
        return [(tile.portrait, tile.name, tile.percent) for tile in self.tiles]

    def _lay_out_single(self) -> None:
        """One visitor: their portrait beside the chosen match with its label under it; on the right
        its likeness over the other matches, one under another."""
        pictures = QHBoxLayout()
        self.gaps.spacing(pictures, 32)
        for portrait, words in ((self.you, (self.you_caption,)), (self.best, (self.about,))):
            column = QVBoxLayout()
            self.gaps.spacing(column, 4)
            column.addWidget(portrait, alignment=Qt.AlignmentFlag.AlignCenter)
            self.gaps.space(column, 8)
            for widget in words:
                column.addWidget(widget)
            column.addStretch()
            pictures.addLayout(column)
        others = QVBoxLayout()
        self.gaps.spacing(others, 14)
        others.addWidget(self.percent)
        self.gaps.space(others, 16)
        others.addWidget(self.more)
        for tile in self.tiles:
            others.addWidget(tile)
        others.addStretch()
        row = QHBoxLayout()
        row.addLayout(pictures)
        self.gaps.space(row, 56)
        row.addLayout(others, 1)
        single = QVBoxLayout(self.single)  # the whole, centred between the heading and the button
        single.setContentsMargins(0, 0, 0, 0)
        single.addStretch(1)
        single.addLayout(row)
        single.addStretch(1)

    def _lay_out_page(self) -> None:
        """The heading over the single or the duo view, the privacy line and the button under them."""
        duo = QHBoxLayout(self.duo)
        duo.setContentsMargins(0, 0, 0, 0)
        self.gaps.spacing(duo, 48)
        for side in self.duo_columns:
            duo.addWidget(side, 1)
        bottom = QHBoxLayout()
        self.gaps.spacing(bottom, 24)
        bottom.addWidget(self.privacy, 1)
        bottom.addWidget(self.button)
        self.page_layout = QVBoxLayout(self)
        self.gaps.margins(self.page_layout, 48, 24, 48, 32)
        self.gaps.spacing(self.page_layout, 12)
        self.page_layout.addWidget(self.heading)
        self.page_layout.addWidget(self.single, 1)
        self.page_layout.addWidget(self.duo, 1)
        self.page_layout.addLayout(bottom)
        self.duo.hide()

    def retranslate(self, lang: str) -> None:
        self.lang = lang
        set_texts(lang, ((self.you_caption, "you"), (self.more, "browse_hint"), (self.button, "try_again"),
                         (self.privacy, "privacy")))
        self._fill()

    def show_outcome(self, outcome: SearchOutcome | None) -> None:
        self.outcome = outcome
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
        shown, hidden = (self.duo, self.single) if duo else (self.single, self.duo)
        hidden.hide()  # first: both at once, for an instant, need more than the screen and grow the window
        shown.show()
        self._fill_duo(pairs if duo else [])
        self._fill_single(pairs[0] if len(pairs) == 1 else None)
        if duo:
            self.heading.setText(tr(self.lang, "duo_heading"))
        elif self.selected:
            self.heading.setText(tr(self.lang, "match_rank", rank=self.selected + 1))
        else:
            self.heading.setText(tr(self.lang, "best_match"))

    def _fill_duo(self, pairs: list[Pair]) -> None:
        side = int(min(self.height() * 0.44, self.width() * 0.222)) or 360
        for column, pair in zip(self.duo_columns, pairs, strict=False):
            column.show_pair(pair, side, self.lang)
        for column in self.duo_columns[len(pairs):]:
            column.clear()

    def big_side(self) -> int:
        """Pixels of the big tiles' side: the worker prepares pictures at this size."""
        return int(min(self.height() * 0.54, self.width() * 0.3)) or 330

    def _fill_single(self, pair: Pair | None) -> None:
        big = self.big_side()
        little = int(min(self.height() * 0.13, self.width() * 0.075)) or 94
        if pair is None:
            for widget in (self.you, self.best, self.best_name, self.best_caption, self.percent):
                widget.clear()
            for tile in self.tiles:
                tile.show_match(None, little)
            self._small_ranks = []
            return
        chosen = pair.matches[min(self.selected, len(pair.matches) - 1)]
        # the visitor as they saw themselves live; neither picture drawn past twice its source's pixels
        self.you.setPixmap(framed(to_pixmap(pair.visitor, mirror=True), big, pair.source_side))
        self.best.setPixmap(framed(to_pixmap(chosen.portrait, mirror=False), big, chosen.source_side))
        self.percent.setText(tr(self.lang, "similarity", percent=chosen.likeness))
        self.best_name.setText(chosen.name)
        self.best_caption.setText(chosen.caption)
        self._small_ranks = [rank for rank in range(len(pair.matches)) if rank != self.selected][:SMALL_MATCHES]
        self.more.setVisible(bool(self._small_ranks))
        for index, tile in enumerate(self.tiles):
            ranked = index < len(self._small_ranks)
            tile.show_match(pair.matches[self._small_ranks[index]] if ranked else None, little)

    def resizeEvent(self, event) -> None:
        self.gaps.scale(self.height())
        super().resizeEvent(event)
        self.resized.emit(self.big_side())
        self._fill()

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self._announce:
            self._announce = False
            self.drawn.emit(time.perf_counter())
