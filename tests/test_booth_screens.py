"""A museum's screen: results that fill 1080p and 4K screens alike, text of high contrast, portraits
never blown up past twice their source, a face guide for any height, the camera-on sign and the
passers-by notice in the booth's words, and a soft countdown tone staff can mute."""
from __future__ import annotations

import logging
import re
import wave
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QVBoxLayout, QWidget

from conftest import LFW, need
from face_engine.detectors import Detections
from face_engine.imaging import read_image
from kiosk import sound
from kiosk.assets import ASSETS
from kiosk.attract import AttractPage
from kiosk.config import MAX_NOTICE_CHARS, ConfigError, KioskConfig, load_config, notice
from kiosk.cues import ANALYSED, BoothCues
from kiosk.flow import State
from kiosk.hints import analyse
from kiosk.i18n import LANGUAGES, tr
from kiosk.results_page import ResultsPage
from kiosk.screens import LivePage
from kiosk.staff_pages import StaffPage
from kiosk.widgets import MAT, framed, to_pixmap
from kiosk.window import scaled_theme
from test_kiosk_look import PEOPLE, drawing_of, outcome_of, pixels

ROOT = Path(__file__).resolve().parents[1]
AA_TEXT = 4.5  # WCAG 2.1 AA contrast for body text
SURFACES = ("#0d1326", "#141b36")  # the pages' ground and the staff panel's


@pytest.fixture(scope="module")
def faces() -> list[np.ndarray]:
    """Square BGR face crops of real LFW photos (160 x 160 of their 250), one a person."""
    folder = need(LFW) / "images_deepfunneled"
    return [np.ascontiguousarray(read_image(folder / person / f"{person}_0001.jpg")[45:205, 45:205])
            for person in PEOPLE]


def luminance(colour: str) -> float:
    """WCAG relative luminance of a #rrggbb colour."""
    channels = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    linear = np.where(channels <= 0.04045, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)
    return float(linear @ [0.2126, 0.7152, 0.0722])


def contrast(ink: str, ground: str) -> float:
    lighter, darker = sorted((luminance(ink), luminance(ground)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def theme_text_pairs() -> list[tuple[str, str, str]]:
    """(rule, text colour, ground) for every theme rule that sets a text colour: on its own
    background where it has one, else on each surface a page has."""
    pairs = []
    for selector, body in re.findall(r"([^{}/]+)\{([^}]*)\}", (ASSETS / "theme.qss").read_text(encoding="utf-8")):
        ink = re.search(r"(?<![-\w])color:\s*(#[0-9a-f]{6})", body)
        ground = re.search(r"background:\s*(#[0-9a-f]{6})", body)
        if ink:
            for surface in (ground[1],) if ground else SURFACES:
                pairs.append((selector.strip(), ink[1], surface))
    return pairs


def test_the_contrast_checker_measures_known_pairs():
    assert contrast("#ffffff", "#000000") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # the classic AA near-miss


def test_every_text_colour_of_the_theme_passes_wcag_aa():
    pairs = theme_text_pairs()
    assert len(pairs) >= 15, "the theme's text rules were read"
    weak = [(rule, ink, ground, round(contrast(ink, ground), 2)) for rule, ink, ground in pairs
            if contrast(ink, ground) < AA_TEXT]
    assert not weak, f"below WCAG AA ({AA_TEXT}:1): {weak}"


@pytest.mark.parametrize("ink", ["#d9dcea", "#f4f1ea", "#f5c451", "#ffffff"])
def test_the_colours_pages_paint_their_words_in_pass_wcag_aa_on_their_dark_pills(ink):
    painted = {path.name: path.read_text(encoding="utf-8") for path in (ROOT / "kiosk").glob("*.py")}
    assert any(ink in source for source in painted.values())
    assert contrast(ink, "#0d1326") >= 7.0, "AAA even: words over a camera picture sit on a dark pill"


# the whole screen, scaled -------------------------------------------------------------------------
def results_at(qtbot, faces, width: int, height: int, visitors: int = 1) -> ResultsPage:
    page = ResultsPage()
    qtbot.addWidget(page)
    page.setStyleSheet(scaled_theme((ASSETS / "theme.qss").read_text(encoding="utf-8"), height / 1080))
    page.resize(width, height)
    page.retranslate("en")
    page.show()
    page.show_outcome(outcome_of(faces, visitors))
    qtbot.wait(30)
    return page


@pytest.mark.parametrize("width, height", [(1920, 1080), (3840, 2160)])
@pytest.mark.parametrize("visitors", [1, 2])
def test_the_results_leave_no_empty_band(qtbot, faces, width, height, visitors):
    """Each of 4 x 3 parts of the screen holds something drawn (the right 40% used to be empty above
    the small matches), and every fifth of its width is mostly more than background."""
    drawn = np.abs(pixels(results_at(qtbot, faces, width, height, visitors)) - [13, 19, 38]).sum(axis=-1) > 30
    parts = [part.mean() for band in np.array_split(drawn, 3, axis=0) for part in np.array_split(band, 4, axis=1)]
    assert min(parts) > 0.003, [round(part, 3) for part in parts]
    columns = [band.mean() for band in np.array_split(drawn, 5, axis=1)]
    assert min(columns) > 0.08, [round(column, 3) for column in columns]


def test_a_4k_screen_shows_the_1080p_layout_twice_as_large(qtbot, faces):
    small, large = results_at(qtbot, faces, 1920, 1080), results_at(qtbot, faces, 3840, 2160)
    assert large.big_side() == 2 * small.big_side()
    for name in ("best", "percent", "button"):
        one, two = getattr(small, name).geometry(), getattr(large, name).geometry()
        assert abs(two.height() - 2 * one.height()) <= 4 and abs(two.top() - 2 * one.top()) <= 6, name
    assert large.percent.font().pixelSize() == 2 * small.percent.font().pixelSize()


# portraits never enlarged past twice their source --------------------------------------------------
def test_a_portrait_is_framed_smaller_rather_than_enlarged_past_twice_its_source(qapp, faces):
    picture = to_pixmap(faces[0], mirror=False)
    assert framed(picture, 500, 0).size() == framed(picture, 500, 400).size() == QPixmap(500, 500).size()
    small = framed(picture, 500, 100).toImage()  # 100 source pixels: drawn at 200 at most
    assert small.width() == 500
    assert small.pixelColor(20, 250) == MAT and small.pixelColor(250, 20) == MAT, "a mat around it"
    assert small.pixelColor(250, 250) != MAT, "the portrait in the middle"
    inside = [x for x in range(500) if small.pixelColor(x, 250) != MAT]
    assert 195 <= inside[-1] - inside[0] <= 210, "the picture 200 pixels wide, with its thin line"


def test_the_results_frame_a_low_resolution_match_or_visitor_and_fill_the_tile_with_a_sharp_one(qtbot, faces):
    page = results_at(qtbot, faces, 1920, 1080)
    best = page.outcome.pairs[0].matches[0]
    for side, mat_expected in ((80, True), (page.big_side(), False)):
        best.source_side = side
        page.select(0)
        image = page.best.pixmap().toImage()
        assert image.width() == page.big_side()
        assert (image.pixelColor(image.width() // 10, image.height() // 2) == MAT) is mat_expected
    visitor = page.outcome.pairs[0]
    visitor.source_side = 90  # a visitor far from the camera: 90 camera pixels across their crop
    page.select(0)
    you = page.you.pixmap().toImage()
    assert you.width() == page.big_side() and you.pixelColor(you.width() // 10, you.height() // 2) == MAT


# camera-on sign, notice and sound --------------------------------------------------------------------
def cues_on(qtbot, sound_on: bool = False) -> tuple[QWidget, BoothCues]:
    window = QWidget()
    qtbot.addWidget(window)
    window.resize(1920, 1080)
    attract = AttractPage()
    attract.setParent(window)
    cues = BoothCues(window, attract, sound_on)
    window.show()
    return window, cues


def test_the_camera_sign_shows_exactly_while_frames_are_analysed(qtbot):
    source = (ROOT / "kiosk" / "window.py").read_text(encoding="utf-8")
    assert "if self.flow.state in ANALYSED:" in source, "the window offers frames to the worker on these screens"
    assert set(ANALYSED) == {State.ATTRACT, State.LIVE, State.COUNTDOWN, State.RESULTS}
    window, cues = cues_on(qtbot)
    cues.apply(KioskConfig(), "en")
    for state in State:
        cues.show(state, 0)
        assert cues.camera_on.isVisible() is (state in ANALYSED or state is State.SEARCHING), state
    box = cues.camera_on.geometry()
    assert box.right() > 1920 - 60 and box.top() < 40, "top right"
    assert cues.camera_on.text == tr("en", "camera_on")
    drawn = pixels(cues.camera_on)
    assert (np.abs(drawn - [255, 90, 79]).sum(axis=-1) < 60).sum() > 100, "its red dot"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_camera_sign_never_covers_a_heading(qtbot, faces, lang):
    window, cues = cues_on(qtbot)
    cues.apply(KioskConfig(), lang)
    sign = cues.camera_on.geometry()
    for visitors in (1, 2):
        page = results_at(qtbot, faces, 1920, 1080, visitors)
        page.retranslate(lang)
        words = page.heading.fontMetrics().horizontalAdvance(page.heading.text())
        assert page.heading.geometry().left() + words < sign.left()
    attract = cues.attract
    attract.resize(1920, 1080)
    attract.retranslate(lang)
    assert attract.language.geometry().right() < sign.left(), "the language button keeps clear of it"


def test_the_notice_is_the_booths_wording_or_the_default_and_shown_as_typed(qtbot):
    window, cues = cues_on(qtbot)
    typed = "<b>Camera</b> finds faces; <img src=/etc/passwd> nothing kept"
    cues.apply(KioskConfig(notice_en=typed), "en")
    shown = [label.full_text for label in cues.attract.notices]
    assert shown == [typed, tr("zh", "notice")], "the visitor's language first; staff's words as typed"
    assert all(label.textFormat().name == "PlainText" for label in cues.attract.notices)
    cues.apply(KioskConfig(notice_zh="摄像头只看脸，什么都不保存"), "zh")
    assert [label.full_text for label in cues.attract.notices] == ["摄像头只看脸，什么都不保存", tr("en", "notice")]
    assert notice(KioskConfig(), "en") == tr("en", "notice")


@pytest.mark.parametrize("text, says", [
    ('notice_en = "' + "x" * (MAX_NOTICE_CHARS + 1) + '"', f"at most {MAX_NOTICE_CHARS} characters"),
    ('notice_zh = "line one\\nline two"', "one line of plain text"),
    ("notice_en = 3", "one line of plain text"),
    ('sound = "yes"', "true or false"),
])
def test_a_bad_notice_or_sound_setting_is_one_line(tmp_path, text, says):
    path = tmp_path / "kiosk.toml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert says in str(refused.value) and "\n" not in str(refused.value)


def test_staffs_notice_and_mute_load_from_the_file(tmp_path):
    path = tmp_path / "kiosk.toml"
    path.write_text('sound = false\nnotice_en = "Faces are compared, never kept."\n', encoding="utf-8")
    config = load_config(path)
    assert config.sound is False and config.notice_en == "Faces are compared, never kept."


def test_the_staff_panel_mutes_the_countdown_sound(qtbot):
    page = StaffPage()
    qtbot.addWidget(page)
    page.retranslate("en")
    page.load(KioskConfig(sound=True), [])
    assert page.sound.isChecked() and page.labels["sound_setting"].text() == tr("en", "sound_setting")
    applied = []
    page.apply.connect(lambda *values: applied.append(values))
    page.sound.setChecked(False)
    page.close_button.click()
    assert applied and applied[0][3] is False


def test_the_committed_tones_are_the_ones_the_code_synthesises():
    for name, (pitch, seconds) in sound.CUES.items():
        committed = sound.cue_file(name).read_bytes()
        assert committed == sound.wav_bytes(sound.tone(pitch, seconds)), f"run python -m kiosk.sound ({name})"
        with wave.open(str(sound.cue_file(name))) as file:
            samples = np.frombuffer(file.readframes(file.getnframes()), "<i2").astype(float)
            assert file.getnchannels() == 1 and 0.1 <= file.getnframes() / file.getframerate() <= 0.3
        assert np.abs(samples).max() < 0.4 * 32767, "soft: well under full scale"
        assert abs(samples[0]) < 200 and abs(samples[-1]) < 200, "no click at either end"


def test_no_audio_output_is_one_log_line_and_the_booth_goes_on(qtbot, caplog):
    with caplog.at_level(logging.INFO, logger="kiosk.sound"):
        cue = sound.SoundCue(True)
    said = [record.getMessage() for record in caplog.records if record.name == "kiosk.sound"]
    assert len(said) == 1 and said[0].startswith("sound cue off")
    cue.play("tick")  # silently nothing
    cue.set_enabled(False)
    cue.play("capture")


def test_each_number_of_the_countdown_sounds_once_unless_muted(qtbot, monkeypatch):
    window, cues = cues_on(qtbot)
    played = []
    cues.sound._effects = {"tick": None}
    monkeypatch.setattr(cues.sound, "play", lambda name: played.append(name) if cues.sound.enabled else None)
    cues.sound.enabled = True
    for number in (3, 3, 3, 2, 2, 1, 0):
        cues.show(State.COUNTDOWN if number else State.SEARCHING, number)
    cues.captured()
    assert played == ["tick", "tick", "tick", "capture"]
    cues.apply(KioskConfig(sound=False), "en")
    cues.show(State.COUNTDOWN, 3)
    cues.captured()
    assert played == ["tick", "tick", "tick", "capture"], "muted by staff"


# a face guide for any height ---------------------------------------------------------------------------
def frontal(box: tuple[float, float, float, float]) -> Detections:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    marks = [[x1 + 0.3 * w, y1 + 0.4 * h], [x1 + 0.7 * w, y1 + 0.4 * h], [x1 + 0.5 * w, y1 + 0.6 * h],
             [x1 + 0.35 * w, y1 + 0.8 * h], [x1 + 0.65 * w, y1 + 0.8 * h]]
    return Detections(np.array([box], np.float32), np.ones(1, np.float32), np.array([marks], np.float32))


def live_page(qtbot, grey: int = 90) -> LivePage:
    page = LivePage()
    qtbot.addWidget(page)
    page.resize(1920, 1080)
    page.retranslate("en")
    page.show()
    page.show_frame(np.full((720, 1280, 3), grey, np.uint8))
    return page


def test_a_face_low_in_the_frame_is_accepted_and_the_guide_goes_down_to_meet_it(qtbot):
    lit = np.full((720, 1280), 128, np.uint8)
    low, _ = analyse(lit, frontal((560, 470, 720, 700)), None)  # a child, or someone seated: the lower third
    high, _ = analyse(lit, frontal((560, 60, 720, 290)), None)
    assert low.ready and high.ready
    assert low.face_y == pytest.approx(585 / 720) and high.face_y == pytest.approx(175 / 720)
    page = live_page(qtbot)
    adult = page.guide()
    page.follow(high.face_y)
    assert page.guide() == adult, "an adult's face near the top keeps the guide where it was"
    page.follow(low.face_y)
    lowered = page.guide()
    assert lowered.center().y() > adult.center().y() + 200 and lowered.bottom() < 1080 * 0.9
    assert lowered.size() == adult.size() and lowered.top() > adult.top()
    page.forget()
    page.show_frame(np.full((720, 1280, 3), 90, np.uint8))
    assert page.guide() == adult, "the next visitor starts from the top"


def test_a_face_near_the_middle_never_makes_the_guide_hop(qtbot):
    page = live_page(qtbot)
    adult = page.guide()
    for face_y in (0.49, 0.51, 0.48):  # just above the line where the guide goes down
        page.follow(face_y)
        assert page.guide() == adult
    page.follow(0.56)
    lowered = page.guide()
    assert lowered != adult
    for face_y in (0.5, 0.47, 0.51):  # back near the middle: it stays down
        page.follow(face_y)
        assert page.guide() == lowered
    page.follow(0.4)
    assert page.guide() == adult, "back up for a face clearly high"


def test_the_hint_moves_over_the_guide_when_it_is_low(qtbot):
    page = live_page(qtbot)
    page.show_overlay("hint_come_closer", False, 0, False)
    top_band, bottom_band = slice(int(1080 * 0.11), int(1080 * 0.22)), slice(int(1080 * 0.75), int(1080 * 0.86))
    gold = np.array([245, 196, 81])

    def hint_in(band: slice) -> bool:
        """The hint's gold pictogram and white words (the guide is gold, the picture grey)."""
        drawn = pixels(page)[band]
        gold_pixels = (np.abs(drawn - gold).sum(axis=-1) < 60).sum()
        return bool(gold_pixels > 300 and (drawn.min(axis=-1) > 230).sum() > 300)

    assert hint_in(bottom_band) and not hint_in(top_band)
    page.follow(0.8)
    assert hint_in(top_band) and not hint_in(bottom_band), "the hint over the lowered guide"
    guide = page.guide()
    assert guide.top() > 1080 * 0.24, "clear of the hint's pill"


def test_the_live_view_says_any_height_will_do_with_its_pictogram(qtbot):
    page = live_page(qtbot, grey=60)
    corner = (slice(int(1080 * 0.9), int(1080 * 0.975)), slice(40, 140))
    light = np.array([217, 220, 234])
    assert (np.abs(pixels(page)[corner] - light).sum(axis=-1) < 60).sum() > 150
    page.show_overlay("", True, 2, False)
    assert (np.abs(pixels(page)[corner] - light).sum(axis=-1) < 60).sum() < 20, "not during the countdown"


def test_the_any_height_pictogram_is_a_figure_of_its_own(qapp):
    drawing = drawing_of("any_height")
    assert 0.05 < drawing.mean() < 0.5
    for other in ("hint_come_closer", "hint_one_person", "walk_up"):
        assert not np.array_equal(drawing, drawing_of(other))


def test_a_nameless_match_has_its_caption_right_under_its_portrait(qtbot, faces):
    page = results_at(qtbot, faces, 1920, 1080)
    named_caption_top = page.best_caption.geometry().top()
    page.outcome.pairs[0].matches[0].name = ""  # the demo's group photo names nobody
    page.select(0)
    qtbot.wait(20)
    assert page.best_name.height() == 0 and page.best_caption.geometry().top() < named_caption_top
    assert page.best.geometry() == results_at(qtbot, faces, 1920, 1080).best.geometry(), "the portrait stays"


def test_going_from_two_visitors_to_none_never_grows_the_window(qtbot, faces):
    """The single and the duo views are never shown at once, not even for an instant: together they
    need more than the screen, the window would grow past it, and the theme, scaled to the window's
    height, with it (the camera-wait screen lost its bottom line that way)."""
    window = QWidget()
    qtbot.addWidget(window)
    page = ResultsPage()
    QVBoxLayout(window).addWidget(page)
    window.setStyleSheet(scaled_theme((ASSETS / "theme.qss").read_text(encoding="utf-8"), 1.0))
    window.resize(1920, 1080)
    page.retranslate("zh")
    window.show()
    heights = []
    for outcome in (outcome_of(faces, 1), outcome_of(faces, 2), None, outcome_of(faces, 2), outcome_of(faces, 1)):
        page.show_outcome(outcome)
        heights.append(max(window.height(), window.minimumSizeHint().height()))
        qtbot.wait(10)
        heights.append(window.height())
    assert max(heights) == 1080, heights
