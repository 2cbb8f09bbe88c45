"""Corpus text on the kiosk's screens: names and captions are shown as plain text, never as markup,
and however long they are they never move the results screen's layout."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QImage, QPalette
from PySide6.QtWidgets import QLabel, QWidget

from face_engine.imaging import read_image
from kiosk.assets import ASSETS
from kiosk.attract import AttractPage
from kiosk.attract_faces import AttractSet
from kiosk.messages import Match, Pair, SearchOutcome
from kiosk.results_page import ResultsPage
from kiosk.screens import MessagePage
from kiosk.staff_pages import PinPage, StaffPage
from kiosk.window import scaled_theme

LONG_URL = ("https://archive.example.org/collections/portraits/" + "item?id=0042&lang=en&view=full&" * 20)[:435]


@pytest.fixture(scope="module")
def faces(photos) -> list[np.ndarray]:
    """Square BGR face crops from real photos, as the worker hands them to the results screen."""
    crops = []
    for name, (top, left, side) in {"fr_obama.jpg": (0, 150, 450), "if_t1.jpg": (0, 0, 300),
                                    "fr_lin_manuel_miranda.png": (0, 0, 400)}.items():
        bgr = read_image(photos / name)
        crops.append(np.ascontiguousarray(bgr[top:top + side, left:left + side]))
    return crops


def outcome(faces: list[np.ndarray], names: list[str], captions: list[str]) -> SearchOutcome:
    matches = [Match(score=0.55 - 0.05 * rank, name=name, caption=caption, image="", portrait=faces[rank % len(faces)],
                     likeness=65 - 5 * rank) for rank, (name, caption) in enumerate(zip(names, captions, strict=True))]
    return SearchOutcome(faces=1, pairs=[Pair(faces[0], matches)])


def results_screen(qtbot) -> ResultsPage:
    page = ResultsPage()
    qtbot.addWidget(page)
    page.setStyleSheet(scaled_theme((ASSETS / "theme.qss").read_text(encoding="utf-8"), 1.0))
    page.resize(1920, 1080)
    page.retranslate("en")
    page.show()
    qtbot.waitExposed(page)
    return page


def pixels(widget: QWidget, area: QRect) -> np.ndarray:
    """The widget as drawn on screen within `area`: height x width x RGB."""
    image = widget.grab(area).toImage().convertToFormat(QImage.Format.Format_RGB888)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, :image.width() * 3].reshape(image.height(), image.width(), 3).astype(float)


def area_of(page: QWidget, widget: QWidget) -> QRect:
    """Where `widget` is drawn within `page`, however deep it sits."""
    return QRect(widget.mapTo(page, QPoint(0, 0)), widget.size())


def off_palette(drawn: np.ndarray, background: np.ndarray, ink: np.ndarray) -> float:
    """The largest distance of a drawn pixel from the blends of the background and the text
    colour: 0 for antialiased text of one colour; large for a picture or a coloured word."""
    direction = ink - background
    share = np.clip(((drawn - background) @ direction) / (direction @ direction), 0, 1)
    return float(np.linalg.norm(drawn - (background + share[..., None] * direction), axis=-1).max())


def inked_width(drawn: np.ndarray, background: np.ndarray) -> int:
    columns = np.flatnonzero((np.abs(drawn - background).sum(axis=-1) > 60).any(axis=0))
    return int(columns[-1] - columns[0] + 1) if len(columns) else 0


def test_markup_in_names_and_captions_is_shown_as_typed(qtbot, faces, photos):
    picture = f'<img src="{photos / "coffee.png"}" width=300 height=300>'
    names = ["<b>bold</b>", "<font color=red>Zico</font>", picture, "<i>x</i>", "Hugo"]
    captions = [picture + " <font color=red>red</font>", "", "", "", ""]
    page = results_screen(qtbot)
    page.show_outcome(outcome(faces, names, captions))
    qtbot.wait(50)
    shown = [page.best_name, page.best_caption, page.small[0][1], page.small[1][1]]
    background = pixels(page, QRect(0, 0, 4, 4))[0, 0]
    for label in shown:
        assert label.textFormat() == Qt.TextFormat.PlainText
        drawn = pixels(page, area_of(page, label))
        ink = np.array(label.palette().color(QPalette.ColorRole.WindowText).getRgb()[:3], float)
        assert off_palette(drawn, background, ink) < 40, f"only the label's own colour is drawn: {label.full_text}"
        first_line = label.text().split("\n")[0]
        assert inked_width(drawn, background) >= label.fontMetrics().horizontalAdvance(first_line) - 12, \
            f"every character of {first_line!r} is drawn, the tags too"
    assert [label.full_text for label in shown] == [names[0], captions[0], names[1], names[2]]
    assert page.best_name.text() == "<b>bold</b>", "short enough to be shown whole"


def test_the_checks_above_catch_markup_rendered_as_rich_text(qtbot, faces, photos):
    """What the results screen did before: a caption label rendering its markup."""
    page = results_screen(qtbot)
    page.show_outcome(outcome(faces, ["Hugo"] * 5, ["Caracas"] * 5))
    label = page.best_caption
    markup = f'<font color=red>red</font> <img src="{photos / "coffee.png"}" width=60 height=60>'
    label.setTextFormat(Qt.TextFormat.RichText)
    QLabel.setText(label, markup)
    qtbot.wait(50)
    background = pixels(page, QRect(0, 0, 4, 4))[0, 0]
    drawn = pixels(page, area_of(page, label))
    ink = np.array(label.palette().color(QPalette.ColorRole.WindowText).getRgb()[:3], float)
    assert off_palette(drawn, background, ink) > 100
    assert inked_width(drawn, background) < label.fontMetrics().horizontalAdvance(markup) / 2


def test_every_label_on_every_screen_is_plain_text(qtbot):
    staff = StaffPage()
    staff.show_status({"camera_status": "<b>ok</b>", "visits": "1", "gallery": "<b>gallery</b>",
                       "providers": "<i>cpu</i>", "performance": "", "log": "<b>log</b>",
                       "warning": '<img src="/etc/hostname">'})
    screens = [ResultsPage(), PinPage(), staff, MessagePage("title", "invite"), AttractPage()]
    for screen in screens:
        qtbot.addWidget(screen)
        labels = screen.findChildren(QLabel)
        assert labels and all(label.textFormat() == Qt.TextFormat.PlainText for label in labels)


def layout_of(page: ResultsPage) -> list[QRect]:
    """Where the heading, the big portraits, the small matches and "Try again" are."""
    small = [widget for match in page.small for widget in match]
    widgets = [page.heading, page.you, page.best, page.button, *small]
    return [widget.geometry() for widget in widgets]


@pytest.mark.parametrize("caption", [LONG_URL, "a long caption " * 70_000], ids=["url_435_chars", "one_megabyte"])
def test_long_names_and_captions_never_move_the_results_screen(qtbot, faces, caption):
    page = results_screen(qtbot)
    short = outcome(faces, ["Tony Blair", "Zico", "Colin Powell", "Hugo Chavez", "Gerhard Schroeder"],
                    ["Prime Minister", "", "", "", ""])
    page.show_outcome(short)
    qtbot.wait(50)
    expected = layout_of(page)
    long_names = [caption[:300], "Zico " * 40, LONG_URL, "A" * 5000, caption]
    page.show_outcome(outcome(faces, long_names, [caption] * 5))
    qtbot.wait(50)
    assert layout_of(page) == expected
    assert page.button.geometry().bottom() < page.height() and page.button.isVisible()
    for label in [page.best_name, page.best_caption, *[small[1] for small in page.small]]:
        lines = label.text().split("\n")
        assert lines[-1].endswith("…"), "the text is cut, and says so"
        assert len(lines) <= label.lines
        assert all(label.fontMetrics().horizontalAdvance(line) <= label.contentsRect().width() for line in lines)
    page.resize(1280, 720)
    qtbot.wait(50)
    assert all(page.best_caption.fontMetrics().horizontalAdvance(line) <= page.best_caption.contentsRect().width()
               for line in page.best_caption.text().split("\n")), "cut again to the new width"


def test_long_names_never_move_the_duo_screen(qtbot, faces):
    page = results_screen(qtbot)

    def duo(names: list[str]) -> SearchOutcome:
        return SearchOutcome(faces=2, pairs=[outcome(faces, [name], [""]).pairs[0] for name in names])

    page.show_outcome(duo(["Zico", "Hugo Chavez"]))
    qtbot.wait(50)
    columns = page.duo_columns
    expected = [widget.geometry() for column in columns for widget in (column, column.you, column.best)]
    page.show_outcome(duo(["A" * 5000, LONG_URL + " " + "Zico " * 200]))
    qtbot.wait(50)
    assert [widget.geometry() for column in columns for widget in (column, column.you, column.best)] == expected
    for column in columns:
        lines = column.name.text().split("\n")
        assert lines[-1].endswith("…") and len(lines) <= column.name.lines
        assert all(column.name.fontMetrics().horizontalAdvance(line) <= column.name.contentsRect().width()
                   for line in lines)


def test_a_long_pair_line_on_the_attract_screen_stays_in_its_card(qtbot, faces):
    """The pair's line is corpus text too: however long, it is drawn inside the pair's card."""
    clock = [0.0]
    page = AttractPage(clock=lambda: clock[0])
    qtbot.addWidget(page)
    page.setStyleSheet(scaled_theme((ASSETS / "theme.qss").read_text(encoding="utf-8"), 1.0))
    page.resize(1920, 1080)
    page.retranslate("en")
    page.show()

    def drawn(pairs: list) -> np.ndarray:
        clock[0] = 0.0
        page.show_set(AttractSet(faces=faces, pairs=pairs))
        clock[0] = 4.0  # the pair fully faded in
        return pixels(page, page.rect())

    def columns(changed: np.ndarray) -> np.ndarray:
        return np.flatnonzero(changed.any(axis=(0, 2)))

    nothing, card = drawn([]), drawn([(faces[0], faces[1], "")])
    line = drawn([(faces[0], faces[1], "<b>" + "Zico " * 200_000)])
    card_columns, text_columns = columns(card != nothing), columns(line != card)
    assert len(text_columns) > 100, "the line is drawn"
    assert card_columns.min() < text_columns.min() and text_columns.max() < card_columns.max()
