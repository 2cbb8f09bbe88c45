"""The kiosk window's behaviour at the booth, with no models (the worker's answers are fed in) and a
fake clock where timing matters: the camera's status, staff actions, results, language, the log."""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from conftest import FlakyCamera
from kiosk.cli import set_pin
from kiosk.config import KioskConfig, check_pin, hash_pin, load_config
from kiosk.flow import State
from kiosk.messages import Analysis, Match, Pair, SearchOutcome, WorkerInfo
from kiosk.staff import STAFF_IDLE_SECONDS
from kiosk.window import KioskWindow

SOON_MS = 2000  # "within 2 s"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def room(tmp_path: Path) -> Path:
    """A folder camera: one photo of an empty, lit room."""
    folder = tmp_path / "room"
    folder.mkdir()
    cv2.imwrite(str(folder / "room.png"), np.full((240, 320, 3), 120, np.uint8))
    return folder


def camera(folder: Path, unplugged: bool = False) -> FlakyCamera:
    source = FlakyCamera(str(folder), hold_seconds=3600, fps=30)
    source.unplugged = unplugged
    return source


def booth(qtbot, tmp_path: Path, source, clock: Clock | None = None, ready: bool = True, **settings) -> KioskWindow:
    """A window whose worker never answers by itself (it has no gallery): the test speaks for it."""
    config = KioskConfig(gallery=str(tmp_path / "no-gallery"), **settings)
    window = KioskWindow(config, tmp_path / "config" / "kiosk.toml", source, clock=clock or Clock())
    window.link.request_analyse.disconnect(window.link.worker.analyse)
    window.link.request_search.disconnect(window.link.worker.search)
    qtbot.addWidget(window)
    window.resize(1280, 720)
    window.show()
    if ready:
        window.on_worker_ready(WorkerInfo())
        qtbot.waitUntil(lambda: window.latest_frame is not None, timeout=SOON_MS)
    return window


def outcome(score: float = 0.5) -> SearchOutcome:
    picture = np.full((112, 112, 3), 90, np.uint8)
    match = Match(score, "A Person", "", "a.jpg", picture, 50)
    return SearchOutcome(faces=1, pairs=[Pair(picture, [match, Match(score - 0.1, "B", "", "b.jpg", picture, 40)])])


def answer(window: KioskWindow, found: SearchOutcome) -> None:
    """The worker's answer to the capture the window asked for."""
    found.frame_time = window.link.capture_time
    window.on_searched(found)


def capture(qtbot, window: KioskWindow) -> None:
    """A visitor's touch on the live view once it has settled (a touch sooner was meant for the attract screen)."""
    window.clock.now += window.flow.timing.settle_seconds
    qtbot.mouseClick(window.live, Qt.MouseButton.LeftButton, pos=QPoint(640, 400))


def to_results(qtbot, window: KioskWindow) -> None:
    centre = QPoint(640, 400)
    qtbot.mouseClick(window.attract, Qt.MouseButton.LeftButton, pos=centre)
    assert window.flow.state is State.LIVE
    capture(qtbot, window)
    assert window.flow.state is State.SEARCHING
    answer(window, outcome())
    assert window.flow.state is State.RESULTS and window.stack.currentWidget() is window.results


def test_a_camera_lost_during_the_splash_reaches_camera_wait_within_2_s(qtbot, tmp_path, room):
    source = camera(room, unplugged=True)
    window = booth(qtbot, tmp_path, source, ready=False)
    qtbot.waitUntil(lambda: window.flow.camera_problem == "camera unplugged", timeout=SOON_MS)
    assert window.flow.state is State.SPLASH
    window.on_worker_ready(WorkerInfo())
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.camera_wait, timeout=SOON_MS)
    assert window.flow.state is State.CAMERA_WAIT
    source.unplugged = False
    qtbot.waitUntil(lambda: window.flow.state is State.ATTRACT, timeout=SOON_MS + 1000)  # one reconnect try: 1 s


def test_a_lost_camera_then_a_new_working_one_reaches_attract_within_2_s(qtbot, tmp_path, room):
    window = booth(qtbot, tmp_path, camera(room))
    window.camera.start(camera(room, unplugged=True))
    qtbot.waitUntil(lambda: window.flow.state is State.CAMERA_WAIT, timeout=SOON_MS)
    window.camera.start(camera(room))
    qtbot.waitUntil(lambda: window.flow.state is State.ATTRACT, timeout=SOON_MS)
    assert window.stack.currentWidget() is window.attract


def open_panel(window: KioskWindow, pin: str = "2468") -> None:
    window.staff_panel.open()
    for key in pin + "✓":
        window.pin.press(key)
    assert window.stack.currentWidget() is window.staff


def test_a_bad_camera_path_is_refused_with_its_reason_then_a_good_one_reaches_attract(qtbot, tmp_path, room):
    window = booth(qtbot, tmp_path, camera(room), pin_hash=hash_pin("2468"))
    other = tmp_path / "other-room"
    other.mkdir()
    cv2.imwrite(str(other / "room.png"), np.full((240, 320, 3), 100, np.uint8))
    open_panel(window)
    window.staff.camera.setEditText(str(tmp_path / "missing.mp4"))
    qtbot.mouseClick(window.staff.close_button, Qt.MouseButton.LeftButton)
    assert window.stack.currentWidget() is window.staff, "the panel stays open, saying why"
    assert "missing.mp4 does not exist" in window.staff.warning.text()
    assert not window.config_path.exists() and window.config.camera == "0", "a bad path is never saved"
    window.staff.camera.setEditText(str(other))
    qtbot.mouseClick(window.staff.close_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.flow.state is State.ATTRACT and window.camera.capture.frames > 0, timeout=SOON_MS)
    assert window.stack.currentWidget() is window.attract
    assert load_config(window.config_path).camera == str(other)


def test_a_tap_on_the_portrait_keeps_the_results_and_only_the_button_restarts(qtbot, tmp_path, room):
    window = booth(qtbot, tmp_path, camera(room))
    to_results(qtbot, window)
    qtbot.mouseClick(window.results.best, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(window.results, Qt.MouseButton.LeftButton, pos=QPoint(300, 300))
    assert window.flow.state is State.RESULTS and window.stack.currentWidget() is window.results
    qtbot.mouseClick(window.results.button, Qt.MouseButton.LeftButton)
    assert window.flow.state is State.LIVE


def test_the_results_keep_watching_and_a_touch_keeps_them_up(qtbot, tmp_path, room):
    clock = Clock()
    window = booth(qtbot, tmp_path, camera(room), clock)
    to_results(qtbot, window)
    sent: list = []
    window.link.request_analyse.connect(sent.append)
    window.on_analysed(Analysis(faces=0))  # the worker is free again
    qtbot.waitUntil(lambda: bool(sent), timeout=SOON_MS)  # frames are analysed on the results: is the face gone?
    clock.now += 7.5
    qtbot.mouseClick(window.results.best, Qt.MouseButton.LeftButton)  # pointing at the lookalike
    clock.now += 7.5
    window.tick()
    assert window.flow.state is State.RESULTS, "a touch is someone there, looking"


def test_nothing_of_the_last_visitor_stays_at_attract(qtbot, tmp_path, room):
    clock = Clock()
    window = booth(qtbot, tmp_path, camera(room), clock)
    to_results(qtbot, window)
    window.live.show_frame(np.full((240, 320, 3), 120, np.uint8))  # the last frame the visitor was seen in
    assert window.link.analysed_frame is not None
    clock.now += 9
    window.tick()
    assert window.flow.state is State.ATTRACT
    assert window.live.frame is None and window.link.analysed_frame is None and window.results.outcome is None


def test_a_late_answer_to_a_timed_out_capture_is_not_shown(qtbot, tmp_path, room):
    clock = Clock()
    window = booth(qtbot, tmp_path, camera(room), clock)
    qtbot.mouseClick(window.attract, Qt.MouseButton.LeftButton, pos=QPoint(640, 400))
    capture(qtbot, window)
    late = outcome()
    late.frame_time = window.link.capture_time
    clock.now += window.flow.timing.search_seconds
    window.tick()  # no answer in time: the visitor is told, and may try again
    assert window.flow.state is State.LIVE and window.live.hint == "fail_search"
    window.on_analysed(Analysis(faces=0))
    qtbot.waitUntil(lambda: window.link.analysed_frame is not None and window.link.analysed_frame[1] != late.frame_time,
                    timeout=SOON_MS)
    window.capture_now()
    window.flow.state = State.SEARCHING
    window.on_searched(late)
    assert window.flow.state is State.SEARCHING and window.results.outcome is None and window.tally.visits == 0


def test_results_close_eight_seconds_after_the_face_is_gone_and_the_ring_is_told(qtbot, tmp_path, room):
    clock = Clock()
    window = booth(qtbot, tmp_path, camera(room), clock)
    to_results(qtbot, window)
    shares: list[float] = []
    window.results.set_time_left = shares.append  # the results page's timer ring (its own method)
    window.on_analysed(Analysis(faces=1))
    clock.now += 7.9
    window.tick()
    assert window.flow.state is State.RESULTS and shares[-1] == pytest.approx(0.1 / 30)
    clock.now += 0.1
    window.tick()
    assert window.flow.state is State.ATTRACT and window.results.outcome is None


def test_the_pin_pad_idle_for_31_s_returns_to_attract(qtbot, tmp_path, room):
    clock = Clock()
    window = booth(qtbot, tmp_path, camera(room), clock, pin_hash=hash_pin("2468"))
    qtbot.mouseClick(window.attract, Qt.MouseButton.LeftButton, pos=QPoint(640, 400))
    window.staff_panel.open()
    clock.now += 20
    window.pin.press("1")  # a touch keeps it open
    QTest.mouseClick(window.pin.cancel, Qt.MouseButton.LeftButton, pos=QPoint(-1, -1))  # outside: not a cancel
    clock.now += STAFF_IDLE_SECONDS - 1
    window.tick()
    assert window.stack.currentWidget() is window.pin
    clock.now += 31 - (STAFF_IDLE_SECONDS - 1)
    window.tick()
    assert not window.staff_panel.is_open and window.flow.state is State.ATTRACT
    assert window.stack.currentWidget() is window.attract


def test_the_staff_panel_idle_for_31_s_closes_without_applying(qtbot, tmp_path, room):
    clock = Clock()
    window = booth(qtbot, tmp_path, camera(room), clock, pin_hash=hash_pin("2468"))
    open_panel(window)
    window.staff.lookalikes.setValue(2)
    clock.now += 31
    window.tick()
    assert window.stack.currentWidget() is window.attract and window.config.lookalikes == 5


def test_quitting_needs_a_two_second_hold(qtbot, tmp_path, room):
    clock = Clock()
    window = booth(qtbot, tmp_path, camera(room), clock, pin_hash=hash_pin("2468"))
    open_panel(window)
    button = window.staff.quit_button
    button.clock = clock
    QTest.mousePress(button, Qt.MouseButton.LeftButton)
    clock.now += 1.0
    qtbot.wait(100)
    assert button.progress() == pytest.approx(0.5), "the hold shows its progress"
    QTest.mouseRelease(button, Qt.MouseButton.LeftButton)
    qtbot.wait(100)
    assert window.isVisible() and button.progress() == 0, "let go early: nothing happens"
    QTest.mousePress(button, Qt.MouseButton.LeftButton)
    clock.now += 2.0
    with qtbot.waitSignal(window.staff.quit, timeout=1000):
        pass
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=1000)


def test_without_a_pin_the_corner_opens_nothing_and_the_log_says_how_to_set_one(qtbot, tmp_path, room, caplog):
    window = booth(qtbot, tmp_path, camera(room), lang="en")
    target = window.stack.currentWidget()
    with caplog.at_level(logging.WARNING, logger="kiosk.staff"):
        QTest.mousePress(target, Qt.MouseButton.LeftButton, pos=QPoint(5, 5))  # the staff corner, held 3 s
        qtbot.wait(3300)
        QTest.mouseRelease(target, Qt.MouseButton.LeftButton, pos=QPoint(5, 5))
    assert not window.staff_panel.is_open and window.stack.currentWidget() is window.attract
    assert "the staff panel stays closed: no staff PIN is set" in caplog.text
    assert f"run kiosk --set-pin --config {window.config_path}" in caplog.text
    for key in "2468✓" * 2:  # what a visitor types on the pad, were it shown, sets nothing
        window.pin.press(key)
    assert window.config.pin_hash == "" and not window.config_path.exists()
    pin_file = tmp_path / "pin"
    pin_file.write_text("2468\n")
    assert set_pin(window.config, window.config_path, pin_file) == 0  # staff at the machine, as the log says
    open_panel(window, "2468")  # the running kiosk takes the new PIN: no restart
    qtbot.mouseClick(window.staff.close_button, Qt.MouseButton.LeftButton)
    assert check_pin("2468", load_config(window.config_path).pin_hash), "saving the panel keeps that PIN"


def test_the_staff_panel_shows_the_camera_visits_and_the_frames_drawn(qtbot, tmp_path, room):
    window = booth(qtbot, tmp_path, camera(room), pin_hash=hash_pin("2468"))
    to_results(qtbot, window)
    qtbot.mouseClick(window.results.button, Qt.MouseButton.LeftButton)
    # the live view showed for whole seconds
    qtbot.waitUntil(lambda: window.tally.rates.last["drawn"] > 5, timeout=5000)
    open_panel(window)
    qtbot.wait(1200)
    window.staff_panel.refresh()
    assert window.staff.camera_status.text() == "正常" and window.staff.visits.text() == "1"
    assert "drawn 0/s" not in window.staff.performance.text()
    before = window.camera.capture
    qtbot.mouseClick(window.staff.restart_button, Qt.MouseButton.LeftButton)  # the configured camera: "0", absent
    assert window.camera.capture is not before and window.camera.capture.isRunning()
    qtbot.waitUntil(lambda: window.flow.camera_problem != "", timeout=SOON_MS)
    window.staff_panel.refresh()
    assert window.staff.camera_status.text() == "中断：cannot open camera 0"


def test_the_language_resets_to_the_booths_at_attract(qtbot, tmp_path, room):
    clock = Clock()
    window = booth(qtbot, tmp_path, camera(room), clock, lang="zh", idle_seconds=10)
    qtbot.mouseClick(window.attract.language, Qt.MouseButton.LeftButton)
    assert window.lang == "en"
    qtbot.mouseClick(window.attract, Qt.MouseButton.LeftButton, pos=QPoint(640, 400))
    assert window.flow.state is State.LIVE
    clock.now += 10
    window.tick()
    assert window.flow.state is State.ATTRACT and window.lang == "zh"
    assert window.attract.title.text() == "遇见世界上的另一个我"


def test_a_failure_is_told_truthfully_and_held_for_3_s(qtbot, tmp_path, room):
    clock = Clock()
    window = booth(qtbot, tmp_path, camera(room), clock)
    qtbot.mouseClick(window.attract, Qt.MouseButton.LeftButton, pos=QPoint(640, 400))
    capture(qtbot, window)
    answer(window, SearchOutcome(faces=0, failure="fail_search"))
    for _ in range(4):
        clock.now += 0.7
        window.on_analysed(Analysis(faces=1, near=True, hint="hint_come_closer"))
        assert window.live.hint == "fail_search"
    clock.now += 0.3
    window.on_analysed(Analysis(faces=1, near=True, hint="hint_come_closer"))
    assert window.live.hint == "hint_come_closer"


def test_each_visit_is_one_log_line_without_image_data(qtbot, tmp_path, room, caplog):
    window = booth(qtbot, tmp_path, camera(room))
    with caplog.at_level(logging.INFO, logger="kiosk.window"):
        to_results(qtbot, window)
        qtbot.mouseClick(window.results.button, Qt.MouseButton.LeftButton)
        capture(qtbot, window)
        answer(window, SearchOutcome(faces=0, failure="fail_no_face"))
    visits = [record.getMessage() for record in caplog.records if record.getMessage().startswith("visit ")]
    assert len(visits) == 2
    assert visits[0].startswith("visit 1: faces=1 matches=2 best=0.500 total_ms=")
    assert visits[0].endswith(" result=results")
    assert visits[1].startswith("visit 2: faces=0 matches=0 best=- ") and visits[1].endswith(" result=no_face")


def test_the_splash_shows_at_once_and_counts_while_the_demo_gallery_is_prepared(qtbot, tmp_path, room):
    clock, release = Clock(), threading.Event()

    def prepare() -> dict[str, str]:
        release.wait(10)
        return {"gallery": str(tmp_path / "demo-gallery"), "camera": str(room)}

    window = KioskWindow(KioskConfig(lang="en"), None, prepare=prepare, clock=clock)
    qtbot.addWidget(window)
    window.show_windowed()
    assert window.stack.currentWidget() is window.splash and window.camera.capture is None, \
        "nothing waits for the build"
    screen = window.screen().availableGeometry()
    centre = window.frameGeometry().center()
    assert abs(centre.x() - screen.center().x()) <= 4 and abs(centre.y() - screen.center().y()) <= 4  # frame margins
    assert window.width() == int(screen.width() * 0.9), "sized to the screen"
    clock.now += 4.2
    window.tick()
    assert window.splash.line.text() == "Preparing the demo gallery (first run only)… 4 s"
    release.set()
    qtbot.waitUntil(lambda: window.camera.capture is not None and window.camera.capture.frames > 0, timeout=SOON_MS)
    assert window.config.camera == str(room) and window.link.worker.gallery_path == str(tmp_path / "demo-gallery")
    qtbot.waitUntil(lambda: "demo-gallery" in window.splash.line.text(), timeout=10_000)  # no gallery there: said so
