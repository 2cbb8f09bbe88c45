"""The booth's look at 1920x1080: an attract screen that moves, results a visitor can point at and
browse, two visitors side by side, a pictogram beside every hint, and text readable at 1.5 m."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QLabel, QPushButton, QWidget

from conftest import LFW, need
from face_engine.imaging import read_image
from kiosk import attract, screens
from kiosk.assets import ASSETS
from kiosk.attract import AttractPage
from kiosk.attract_faces import AttractSet
from kiosk.i18n import LANGUAGES, tr
from kiosk.messages import Match, Pair, SearchOutcome
from kiosk.pictograms import draw_pictogram
from kiosk.results_page import ResultsPage
from kiosk.screens import LivePage, MessagePage
from kiosk.widgets import scaled_font
from kiosk.window import scaled_theme

ROOT = Path(__file__).resolve().parents[1]
READABLE_PX = 36  # the least text height a visitor reads from 1.5 m on a 1080p screen
PEOPLE = ["Tony_Blair", "Colin_Powell", "Zico", "Hugo_Chavez", "Gerhard_Schroeder", "Serena_Williams",
          "George_W_Bush", "Laura_Bush", "Jennifer_Lopez", "John_Howard"]


@pytest.fixture(scope="module")
def faces() -> list[np.ndarray]:
    """Square BGR face crops of real LFW photos (250 x 250, the face in the middle), one a person."""
    folder = need(LFW) / "images_deepfunneled"
    return [np.ascontiguousarray(read_image(folder / person / f"{person}_0001.jpg")[45:205, 45:205])
            for person in PEOPLE]


def themed(qtbot, page: QWidget, lang: str = "en") -> QWidget:
    qtbot.addWidget(page)
    page.setStyleSheet(scaled_theme((ASSETS / "theme.qss").read_text(encoding="utf-8"), 1.0))
    page.resize(1920, 1080)
    page.retranslate(lang)  # type: ignore[attr-defined]
    page.show()
    qtbot.waitExposed(page)
    return page


def pixels(widget: QWidget) -> np.ndarray:
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, :image.width() * 3].reshape(image.height(), image.width(), 3).astype(np.int16)


def changed_share(before: np.ndarray, after: np.ndarray) -> float:
    return float((np.abs(before - after).sum(axis=-1) > 24).mean())


def outcome_of(faces: list[np.ndarray], visitors: int = 1) -> SearchOutcome:
    """One or two visitors (the first faces), each with lookalikes from the rest, best first."""
    per = 5 if visitors == 1 else 3
    pairs = []
    for visitor in range(visitors):
        ranked = range(2 + visitor * per, 2 + (visitor + 1) * per)
        matches = [Match(score=0.6 - 0.05 * rank, name=PEOPLE[index].replace("_", " "), caption=f"Photo {index}",
                         image="", portrait=faces[index], likeness=70 - 5 * rank) for rank, index in enumerate(ranked)]
        pairs.append(Pair(faces[visitor], matches))
    return SearchOutcome(faces=visitors, pairs=pairs)


# attract -------------------------------------------------------------------------------------------
def attract_page(qtbot, faces: list[np.ndarray], lang: str = "en") -> tuple[AttractPage, list[float]]:
    clock = [100.0]
    page = AttractPage(clock=lambda: clock[0])
    themed(qtbot, page, lang)
    page.show_set(AttractSet(faces=faces[2:], pairs=[(faces[0], faces[1], "Tony Blair · Colin Powell")]))
    return page, clock


@pytest.mark.parametrize("start", [0.0, 3.7, 7.5, 100.0])
def test_the_attract_screen_changes_from_one_second_to_the_next(qtbot, faces, start):
    page, clock = attract_page(qtbot, faces)
    clock[0] = start
    before = pixels(page)
    clock[0] = start + 1.0
    assert changed_share(before, pixels(page)) > 0.05, "the mosaic drifts: a good part of the screen changes"


def test_an_empty_attract_screen_still_moves(qtbot):
    clock = [0.0]
    page = themed(qtbot, AttractPage(clock=lambda: clock[0]))
    for start in (0.0, 1.3, 2.4, 9.9):
        clock[0] = start
        before = pixels(page)
        clock[0] = start + 1.0
        assert changed_share(before, pixels(page)) > 0, f"the pictogram's ring moved between {start} and {start + 1}"


def test_the_lookalike_pair_fades_in_and_out(qtbot, faces):
    page, clock = attract_page(qtbot, faces)
    clock[0] = 100.0  # the set came now: its first pair starts to fade in
    hidden = pixels(page)
    clock[0] = 104.0  # the middle of the pair's turn
    shown = pixels(page)
    stage = page.stage.geometry()
    middle = (slice(stage.top() + stage.height() // 3, stage.bottom() - stage.height() // 3),
              slice(stage.center().x() - 100, stage.center().x() + 100))
    assert changed_share(hidden[middle], shown[middle]) > 0.5


def test_the_attract_screen_calls_in_both_languages_and_passes_touches_on(qtbot, faces):
    page, _ = attract_page(qtbot, faces, lang="zh")
    assert [label.full_text for label in page.calls] == [tr("zh", "invite"), tr("en", "invite")]
    page.retranslate("en")
    assert [label.full_text for label in page.calls] == [tr("en", "invite"), tr("zh", "invite")]
    qtbot.waitUntil(lambda: all(label.text() == label.full_text for label in page.calls))  # whole, at 1920
    assert page.title.text() == tr("en", "title")
    page.show_notice([tr("en", "notice"), tr("zh", "notice")])
    assert [label.full_text for label in page.notices] == [tr("en", "notice"), tr("zh", "notice")]
    touched = []
    parent = QWidget()
    parent.mousePressEvent = lambda event: touched.append(event)  # type: ignore[method-assign]
    page.setParent(parent)
    page.show()
    qtbot.mouseClick(page, Qt.MouseButton.LeftButton, pos=QPoint(900, 500))
    assert touched, "a touch on the attract screen reaches the window, which starts the visit"


def test_the_attract_screen_redraws_only_while_shown(qtbot, faces):
    page, _ = attract_page(qtbot, faces)
    assert page.timer.isActive() and page.timer.interval() <= 50
    page.hide()
    assert not page.timer.isActive()


# results -------------------------------------------------------------------------------------------
def results_page(qtbot, faces, visitors: int = 1) -> ResultsPage:
    page = ResultsPage()
    themed(qtbot, page)
    page.show_outcome(outcome_of(faces, visitors))
    qtbot.wait(20)
    return page


def test_only_the_button_tries_again(qtbot, faces):
    page = results_page(qtbot, faces)
    asked = []
    page.try_again.connect(lambda: asked.append(True))
    reached_window = []
    parent = QWidget()
    parent.mousePressEvent = lambda event: reached_window.append(event)  # type: ignore[method-assign]
    page.setParent(parent)
    page.show()
    for target in (page.best, page.you, page.percent, page.heading, page.privacy):
        qtbot.mouseClick(target, Qt.MouseButton.LeftButton, pos=QPoint(target.width() // 2, target.height() // 2))
    qtbot.mouseClick(page, Qt.MouseButton.LeftButton, pos=QPoint(960, 1070))
    assert asked == [] and reached_window == [], "pointing at a portrait keeps the results"
    assert page.outcome is not None
    qtbot.mouseClick(page.button, Qt.MouseButton.LeftButton)
    assert asked == [True]


def test_a_touch_on_a_small_match_brings_it_into_the_big_tile(qtbot, faces):
    page = results_page(qtbot, faces)
    matches = page.outcome.pairs[0].matches
    before = pixels(page.best)
    assert page.best_name.full_text == matches[0].name
    third = page.small[1][0]
    qtbot.mouseClick(third, Qt.MouseButton.LeftButton, pos=QPoint(third.width() // 2, third.height() // 2))
    assert page.selected == 2
    assert changed_share(before, pixels(page.best)) > 0.3, "another portrait in the big tile"
    assert page.best_name.full_text == matches[2].name and page.best_caption.full_text == matches[2].caption
    assert page.percent.text() == tr("en", "similarity", percent=matches[2].likeness)
    assert page.heading.text() == tr("en", "match_rank", rank=3)
    assert [name.full_text for _, name, _ in page.small] == [matches[rank].name for rank in (0, 1, 3, 4)], \
        "the best one went back to the small row, in rank order"
    first = page.small[0][1]
    qtbot.mouseClick(first, Qt.MouseButton.LeftButton, pos=QPoint(5, 5))
    assert page.selected == 0 and page.heading.text() == tr("en", "best_match")
    page.show_outcome(outcome_of(faces))
    assert page.selected == 0, "a new visitor starts with their best match"


def test_the_timer_ring_drains(qtbot, faces):
    page = results_page(qtbot, faces)
    full = pixels(page.button)
    page.set_time_left(0.5)
    half = pixels(page.button)
    page.set_time_left(-1.0)
    empty = pixels(page.button)
    assert page.button.time_left == 0.0
    assert changed_share(full, half) > 0.002 and changed_share(half, empty) > 0.002
    page.show_outcome(outcome_of(faces))
    assert page.button.time_left == 1.0, "a new outcome starts with a full ring"


def test_two_visitors_each_beside_their_lookalike_side_by_side(qtbot, faces):
    page = results_page(qtbot, faces, visitors=2)
    drawn = []
    page.drawn.connect(drawn.append)
    page.show_outcome(outcome_of(faces, visitors=2))
    qtbot.waitUntil(lambda: bool(drawn))
    assert page.duo.isVisible() and not page.single.isVisible()
    left, right = page.duo_columns
    for column, pair in zip(page.duo_columns, page.outcome.pairs, strict=True):
        assert not column.you.pixmap().isNull() and not column.best.pixmap().isNull()
        assert column.name.full_text == pair.matches[0].name
    left_box = QRectF(left.mapTo(page, QPoint(0, 0)), left.size())
    right_box = QRectF(right.mapTo(page, QPoint(0, 0)), right.size())
    assert left_box.right() < right_box.left() and abs(left_box.top() - right_box.top()) < 2
    assert left.best.mapTo(page, QPoint(0, 0)).x() < right.you.mapTo(page, QPoint(0, 0)).x()
    assert page.heading.text() == tr("en", "duo_heading")
    page.show_outcome(outcome_of(faces, visitors=1))
    assert page.single.isVisible() and not page.duo.isVisible()


@pytest.mark.parametrize("width, height", [(1920, 1080), (1280, 720), (1280, 1024)])
def test_every_screen_fits_its_window(qtbot, faces, width, height):
    """No screen asks for more room than the window has: a minimum beyond it would grow the window,
    and the pictures, which are scaled to the window's height, with it."""
    theme = scaled_theme((ASSETS / "theme.qss").read_text(encoding="utf-8"), height / 1080)
    single, duo, attract = ResultsPage(), ResultsPage(), AttractPage()
    for page in (single, duo, attract):
        qtbot.addWidget(page)
        page.setStyleSheet(theme)
        page.resize(width, height)
        page.retranslate("en")
        page.show()
    single.show_outcome(outcome_of(faces))
    duo.show_outcome(outcome_of(faces, visitors=2))
    attract.show_set(AttractSet(faces=faces, pairs=[(faces[0], faces[1], "Tony Blair · Colin Powell")]))
    qtbot.wait(50)
    for page in (single, duo, attract):
        needed = page.minimumSizeHint()
        assert needed.width() <= width and needed.height() <= height, f"{type(page).__name__} needs {needed}"
        assert (page.width(), page.height()) == (width, height)
    for page in (single, duo):
        assert page.button.mapTo(page, QPoint(0, page.button.height())).y() <= height
        assert page.best.pixmap().height() <= height * 0.6  # with room for its name and caption under it


# reading at 1.5 m ------------------------------------------------------------------------------------
def visitor_texts(page: QWidget) -> list[QWidget]:
    """The shown widgets with words (portraits are labels holding a picture and no text)."""
    return [widget for widget in page.findChildren(QLabel) + page.findChildren(QPushButton)
            if widget.isVisible() and widget.text()]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_visitor_text_is_36_px_or_more_at_1080p(qtbot, faces, lang):
    results = results_page(qtbot, faces)
    duo = results_page(qtbot, faces, visitors=2)
    attract, _ = attract_page(qtbot, faces, lang)
    pages = [results, duo, attract, themed(qtbot, MessagePage("title", "getting_ready"), lang),
             themed(qtbot, MessagePage("one_moment", "camera_reconnecting"), lang)]
    for page in pages:
        page.retranslate(lang)
        texts = visitor_texts(page)
        assert texts
        small = [(widget.objectName(), widget.font().pixelSize()) for widget in texts
                 if widget.font().pixelSize() < READABLE_PX]
        assert not small, f"too small to read at 1.5 m on {type(page).__name__}: {small}"


def test_words_the_pages_paint_themselves_are_36_px_or_more(qtbot, faces, monkeypatch):
    sizes = []

    def measured(widget: QWidget, pixels: int, bold: bool = False):
        font = scaled_font(widget, pixels, bold)
        sizes.append(font.pixelSize())
        return font

    monkeypatch.setattr(screens, "scaled_font", measured)
    monkeypatch.setattr(attract, "scaled_font", measured)
    page = themed(qtbot, LivePage())
    page.show_frame(faces[0])
    for hint, countdown in (("hint_come_closer", 0), ("", 3)):
        page.hint, page.countdown = hint, countdown
        page.grab()
    welcome, clock = attract_page(qtbot, faces)
    clock[0] += 4.0  # the lookalike pair with its heading and names
    welcome.grab()
    assert len(sizes) >= 6 and min(sizes) >= READABLE_PX


# pictograms ------------------------------------------------------------------------------------------
def hint_keys() -> list[str]:
    """Every hint the live analysis gives and every failure a search reports, read from their code."""
    hints = re.findall(r'"(hint_\w+)"', (ROOT / "kiosk" / "hints.py").read_text(encoding="utf-8"))
    failures = re.findall(r'"(fail_\w+)"', (ROOT / "kiosk" / "worker.py").read_text(encoding="utf-8"))
    return sorted(set(hints) | set(failures) | {"fail_no_face", "fail_no_match", "fail_search"})


def drawing_of(key: str) -> np.ndarray:
    image = QImage(120, 120, QImage.Format.Format_Grayscale8)
    image.fill(0)
    painter = QPainter(image)
    drawn = draw_pictogram(painter, key, QRectF(10, 10, 100, 100), QColor("#ffffff"))
    painter.end()
    assert drawn, f"{key} has a pictogram"
    return np.frombuffer(image.constBits(), np.uint8).reshape(120, image.bytesPerLine())[:, :120] > 128


def test_every_hint_has_its_own_pictogram():
    keys = hint_keys()
    assert {"hint_one_person", "hint_come_closer", "hint_too_dark", "hint_face_camera"} <= set(keys)
    drawings = {key: drawing_of(key) for key in keys}
    for key, drawing in drawings.items():
        assert 0.05 < drawing.mean() < 0.5, f"{key}: a figure of lines, neither empty nor a blot"
        assert tr("zh", key) and tr("en", key), f"{key} has words in both languages"
    distinct = {drawing.tobytes() for key, drawing in drawings.items() if key != "hint_no_face"}
    assert len(distinct) == len(drawings) - ("hint_no_face" in drawings), "each hint looks different"


def test_the_live_page_shows_the_hints_pictogram_beside_its_words(qtbot, faces):
    page = themed(qtbot, LivePage())
    page.show_frame(faces[0])
    gold = np.array([245, 196, 81])
    banner = slice(int(1080 * 0.75), int(1080 * 0.86))  # below the face guide, which is gold too
    signs = {}
    for key in ("hint_one_person", "hint_come_closer", "hint_too_dark", "hint_face_camera", "fail_search",
                "tap_to_capture"):
        page.hint = "" if key == "tap_to_capture" else key
        drawn = pixels(page)[banner]
        signs[key] = np.abs(drawn - gold).sum(axis=-1) < 60
        assert signs[key].sum() > 300, f"{key}: a gold pictogram in the banner"
        white = np.flatnonzero((drawn.min(axis=-1) > 230).any(axis=0))
        assert np.flatnonzero(signs[key].any(axis=0)).max() < white.min(), "the pictogram stands before the words"
    assert len({sign.tobytes() for sign in signs.values()}) == len(signs), "each hint its own pictogram"
