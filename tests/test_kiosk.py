"""The kiosk window on the offscreen platform: real models, a real gallery built from LFW, and a
synthetic camera made of real photos."""
from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtTest import QTest

from conftest import LFW, FlakyCamera, Galleries, copy_lfw_people, need, search
from face_engine.gallery import FORMAT_VERSION, portrait_crop
from face_engine.imaging import read_image
from index_builder.build import BuildOptions, build
from index_builder.cli import main as builder_main
from kiosk.camera import FolderSource
from kiosk.cli import main as kiosk_main
from kiosk.config import KioskConfig, PinGuard, hash_pin, load_config
from kiosk.flow import State
from kiosk.i18n import tr
from kiosk.results_page import ResultsPage
from kiosk.widgets import to_pixmap
from kiosk.window import KioskWindow
from kiosk.worker import InferenceWorker

WAIT_MS = 60_000


def make_corpus(folder: Path, people: dict[str, int]) -> Path:
    copy_lfw_people(folder, people)
    return folder


def publish(corpus: Path, out: Path, **options) -> None:
    build(BuildOptions(corpus=corpus, out=out, workers=1, progress=False, **options))


@pytest.fixture(autouse=True)
def own_data_home(monkeypatch, tmp_path: Path) -> None:
    """The window's exposure ledger is written to the test's folder, never the user's."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture
def gallery(tmp_path: Path, galleries: Galleries) -> tuple[Path, Path]:
    """Built once per test run; each test gets its own copy (some change the corpus or the gallery)."""
    return galleries.copy({"Tony_Blair": 4, "Colin_Powell": 4, "Zico": 2, "Hugo_Chavez": 2}, tmp_path)


def camera_of(tmp_path: Path, *photos: Path, name: str = "camera") -> FolderSource:
    folder = tmp_path / name
    folder.mkdir()
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    return FolderSource(str(folder), hold_seconds=3600, fps=30)


def make_window(qtbot, gallery_path: Path, source, config_path: Path | None = None, **settings) -> KioskWindow:
    config = KioskConfig(gallery=str(gallery_path), **{"countdown_seconds": 0.5, **settings})
    window = KioskWindow(config, config_path, source)
    qtbot.addWidget(window)
    window.resize(1280, 720)
    window.show()
    qtbot.waitUntil(lambda: window.link.ready, timeout=WAIT_MS)
    return window


def test_a_visitor_is_shown_their_lookalikes(qtbot, tmp_path, gallery, photos):
    window = make_window(qtbot, gallery[1], camera_of(tmp_path, photos / "fr_obama.jpg"))
    qtbot.waitUntil(lambda: window.flow.state is State.RESULTS, timeout=WAIT_MS)
    outcome = window.results.outcome
    names = [match.name for match in outcome.pairs[0].matches]
    assert len(names) == 4 and len(set(names)) == 4, "each person once"
    assert outcome.pairs[0].visitor.shape[2] == 3 and outcome.pairs[0].matches[0].portrait.shape[2] == 3
    assert window.results.percent.text().startswith("相似度")
    qtbot.waitUntil(lambda: bool(window.tally.results_latency_ms), timeout=WAIT_MS)
    assert 0 < window.tally.analyses < window.tally.frames_seen, "frames are dropped while the worker is busy"


def test_an_idle_kiosk_forgets_the_visitor(qtbot, tmp_path, gallery, photos):
    window = make_window(qtbot, gallery[1], camera_of(tmp_path, photos / "fr_obama.jpg"), results_seconds=1.0)
    qtbot.waitUntil(lambda: window.flow.state is State.RESULTS, timeout=WAIT_MS)
    window.camera.start(camera_of(tmp_path, photos / "coffee.png", name="empty_room"))
    qtbot.waitUntil(lambda: window.flow.state is State.ATTRACT, timeout=WAIT_MS)
    assert window.results.outcome is None
    assert window.stack.currentWidget() is window.attract


def test_live_hints_guide_the_visitor(qtbot, tmp_path, gallery, photos):
    window = make_window(qtbot, gallery[1], camera_of(tmp_path, photos / "if_t1.jpg"))  # faces turn it live
    qtbot.waitUntil(lambda: window.flow.hint == "hint_one_person", timeout=WAIT_MS)
    assert window.flow.state is State.LIVE


def test_the_language_switches_by_touch(qtbot, tmp_path, gallery, photos):
    window = make_window(qtbot, gallery[1], camera_of(tmp_path, photos / "coffee.png"))
    qtbot.waitUntil(lambda: window.flow.state is State.ATTRACT, timeout=WAIT_MS)
    assert window.attract.title.text() == "遇见世界上的另一个我"
    qtbot.mouseClick(window.attract.language, Qt.MouseButton.LeftButton)
    assert window.attract.title.text() == "Meet the other me"
    assert window.attract.notices[0].full_text == tr("en", "notice"), "the notice, English first"
    assert window.cues.camera_on.isVisible() and window.cues.camera_on.text == "Camera on"


def test_a_new_gallery_is_swapped_in_between_visitors_and_another_packs_is_refused(
        qtbot, tmp_path, gallery, photos, mini_pack):
    corpus, out = gallery
    window = make_window(qtbot, out, camera_of(tmp_path, photos / "coffee.png"))
    qtbot.waitUntil(lambda: window.flow.state is State.ATTRACT, timeout=WAIT_MS)
    assert window.staff_panel.info.faces == 12
    make_corpus(corpus, {"Gerhard_Schroeder": 3})
    publish(corpus, out)
    window.link.watcher.check()
    qtbot.waitUntil(lambda: window.staff_panel.info.faces == 15, timeout=WAIT_MS)

    publish(corpus, out, pack=str(mini_pack), fresh=True)
    window.link.watcher.check()
    qtbot.waitUntil(lambda: bool(window.staff_panel.gallery_warning), timeout=WAIT_MS)
    assert "cannot be compared" in window.staff_panel.gallery_warning
    assert window.staff_panel.info.faces == 15 and window.link.worker.gallery.manifest.pack == "sface"


def test_the_camera_reconnects_after_a_failure(qtbot, tmp_path, gallery, photos):
    folder = camera_of(tmp_path, photos / "coffee.png").folder
    camera = FlakyCamera(str(folder), hold_seconds=3600, fps=30)
    window = make_window(qtbot, gallery[1], camera)
    qtbot.waitUntil(lambda: window.flow.state is State.ATTRACT, timeout=WAIT_MS)
    camera.unplugged = True
    qtbot.waitUntil(lambda: window.flow.state is State.CAMERA_WAIT, timeout=WAIT_MS)
    assert window.stack.currentWidget() is window.camera_wait
    camera.unplugged = False
    qtbot.waitUntil(lambda: window.flow.state is State.ATTRACT, timeout=WAIT_MS)


def long_press_corner(qtbot, window: KioskWindow) -> None:
    target = window.stack.currentWidget()
    QTest.mousePress(target, Qt.MouseButton.LeftButton, pos=QPoint(5, 5))
    qtbot.wait(3300)
    QTest.mouseRelease(target, Qt.MouseButton.LeftButton, pos=QPoint(5, 5))


def enter(window: KioskWindow, pin: str) -> None:
    for key in pin + "✓":
        window.pin.press(key)


def test_the_staff_panel_needs_the_pin(qtbot, tmp_path, gallery, photos):
    config_path = tmp_path / "config" / "kiosk.toml"
    window = make_window(qtbot, gallery[1], camera_of(tmp_path, photos / "coffee.png"), config_path,
                         pin_hash=hash_pin("2468"))
    qtbot.waitUntil(lambda: window.flow.state is State.ATTRACT, timeout=WAIT_MS)
    long_press_corner(qtbot, window)
    assert window.stack.currentWidget() is window.pin
    enter(window, "1111")
    assert window.pin.message.text() == "密码错误"
    assert window.stack.currentWidget() is window.pin
    enter(window, "2468")
    assert window.stack.currentWidget() is window.staff
    assert "CPU" in window.staff.providers.text() and "12 faces" in window.staff.gallery.text()
    window.staff.lookalikes.setValue(3)
    qtbot.mouseClick(window.staff.close_button, Qt.MouseButton.LeftButton)
    assert window.stack.currentWidget() is window.attract
    assert load_config(config_path).lookalikes == 3
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600, "the file holds the PIN hash"


def test_wrong_pins_earn_a_growing_wait_that_closing_the_pad_does_not_end(qtbot, tmp_path, gallery, photos):
    window = make_window(qtbot, gallery[1], camera_of(tmp_path, photos / "coffee.png"), pin_hash=hash_pin("2468"))
    now = [1000.0]
    window.staff_panel.guard = PinGuard(clock=lambda: now[0])
    window.staff_panel.open()
    for wrong in ("1111", "2222"):
        enter(window, wrong)
        assert window.pin.message.text() == "密码错误"
    enter(window, "3333")
    assert window.pin.message.text() == "密码错误次数过多，请 30 秒后再试"
    window.pin.cancel.click()
    now[0] += 10
    window.toggle_language()
    window.staff_panel.open()
    assert window.pin.message.text() == "Too many wrong PINs: try again in 20 s"
    enter(window, "2468")
    assert window.stack.currentWidget() is window.pin, "the right PIN waits too"
    now[0] += 20
    enter(window, "4444")
    assert window.pin.message.text() == "Too many wrong PINs: try again in 60 s"
    now[0] += 60
    enter(window, "2468")
    assert window.stack.currentWidget() is window.staff


def test_headless_gives_the_search_json_with_each_person_once(tmp_path, gallery, capsys):
    query = need(LFW) / "images_deepfunneled" / "Tony_Blair" / "Tony_Blair_0050.jpg"
    assert kiosk_main(["--headless", "--gallery", str(gallery[1]), "--image", str(query), "--json"]) == 0
    kiosk = json.loads(capsys.readouterr().out)
    assert builder_main(["search", str(gallery[1]), str(query), "--json"]) == 0
    builder = json.loads(capsys.readouterr().out)
    assert set(kiosk) == set(builder) and set(kiosk["matches"][0]) == set(builder["matches"][0])
    assert (kiosk["matches"][0]["name"], kiosk["matches"][0]["identity"]) == ("Tony Blair", "Tony_Blair")
    assert len({m["identity"] for m in kiosk["matches"]}) == len(kiosk["matches"]) == 4


def test_the_demo_gallery_is_built_from_packaged_photos(tmp_path, monkeypatch, capsys):
    from importlib import resources

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    # a demo visitor: her face is not in the demo gallery (insightface's group photo), so her best
    # match is an honest stranger's, not herself
    astronaut = str(resources.files("skimage").joinpath("data/astronaut.png"))
    assert kiosk_main(["--demo", "--headless", "--image", astronaut, "--json"]) == 0
    matches = json.loads(capsys.readouterr().out)["matches"]
    assert matches and matches[0]["score"] < 0.95
    assert all(match["caption"] == "insightface sample photo" for match in matches)
    manifest = tmp_path / "other-me" / "demo" / "gallery" / "manifest.json"
    assert manifest.is_file()

    built = manifest.resolve()  # a demo gallery cached by an older version is made again, not refused
    built.write_text(built.read_text().replace(f'"format_version": {FORMAT_VERSION}', '"format_version": 1'))
    assert kiosk_main(["--demo", "--headless", "--image", astronaut, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["matches"][0]["score"] == matches[0]["score"]


def test_a_video_file_camera_delivers_frames_and_loops(qtbot, tmp_path, photos):
    from kiosk.camera import CaptureThread, OpenCvSource

    first = cv2.imread(str(photos / "fr_obama.jpg"))
    size = (640, 480)
    video = tmp_path / "visitor.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, size)
    for _ in range(5):
        writer.write(cv2.resize(first, size))
    writer.release()
    thread = CaptureThread(OpenCvSource(str(video)))
    frames = []
    thread.frame_ready.connect(frames.append)
    thread.start()
    qtbot.waitUntil(lambda: len(frames) >= 12, timeout=WAIT_MS)  # more frames than the file holds
    thread.stop()
    assert frames[0].shape == (480, 640, 3)


def test_a_missing_camera_is_reported_not_fatal(qtbot):
    from kiosk.camera import CaptureThread, OpenCvSource

    thread = CaptureThread(OpenCvSource("7"))  # no /dev/video7 here
    lost = []
    thread.camera_lost.connect(lost.append)
    thread.start()
    qtbot.waitUntil(lambda: bool(lost), timeout=WAIT_MS)
    thread.stop()
    assert "cannot open camera 7" in lost[0]


def test_a_frame_that_breaks_detection_still_gets_an_answer(gallery):
    worker = InferenceWorker(str(gallery[1]), "", "cpu")
    worker.start_up()
    analyses, outcomes = [], []
    worker.analysed.connect(analyses.append)
    worker.searched.connect(outcomes.append)
    empty = np.zeros((0, 0, 3), np.uint8)
    worker.analyse(empty)
    worker.search(empty, 5, 0.0)
    assert analyses[0].faces == 0
    assert outcomes[0].pairs == [] and outcomes[0].failure == "fail_search", "the truth: it broke, not \"no face\""


def started_worker(gallery_path: Path) -> InferenceWorker:
    worker = InferenceWorker(str(gallery_path), "", "cpu")
    worker.start_up()
    assert worker.gallery is not None, "the worker did not start"
    return worker


def gallery_portrait(worker: InferenceWorker, image: Path) -> np.ndarray:
    """The portrait file the gallery holds for a corpus photo, BGR as the worker hands it to the screen."""
    (relative,) = worker.gallery.db.execute("SELECT portrait FROM faces WHERE image = ?", (str(image),)).fetchone()
    return read_image(worker.gallery.root / relative)


@pytest.mark.timeout(120)  # reading the FIFO would block for ever: fail instead
def test_results_show_the_gallerys_portraits_whatever_became_of_the_corpus(gallery, photos):
    corpus, out = gallery
    blair, zico = min((corpus / "Tony_Blair").iterdir()), min((corpus / "Zico").iterdir())
    visitors = [read_image(blair), read_image(zico)]  # the same photos, taken before the corpus changes
    shutil.copy(photos / "chelsea.png", blair)  # a cat where Tony Blair was
    zico.unlink()
    os.mkfifo(zico)
    worker = started_worker(out)
    for visitor, photo in zip(visitors, (blair, zico), strict=True):
        outcome = search(worker, visitor)
        assert len(outcome.pairs[0].matches) == 4, "every person, each with a portrait"
        best = outcome.pairs[0].matches[0]
        assert best.image == str(photo) and best.score > 0.99
        np.testing.assert_array_equal(best.portrait, gallery_portrait(worker, photo))


def test_a_missing_portrait_is_replaced_by_the_next_face_not_dropped(gallery, caplog):
    corpus, out = gallery
    worker = started_worker(out)
    visitor = read_image(min((corpus / "Zico").iterdir()))
    before = search(worker, visitor)
    face, portrait = worker.gallery.db.execute("SELECT id, portrait FROM faces WHERE image = ?",
                                               (before.pairs[0].matches[0].image,)).fetchone()
    (worker.gallery.root / portrait).unlink()
    worker.portraits.clear()  # the pictures decoded before the loss are kept, and would be shown whole
    with caplog.at_level(logging.WARNING, logger="kiosk.worker"):
        after = search(worker, visitor)
    kept, earlier = after.pairs[0].matches, before.pairs[0].matches
    assert len(kept) == len(earlier) == 4 and {m.name for m in kept} == {m.name for m in earlier}
    assert {m.image for m in earlier[1:]} < {m.image for m in kept}, "the other matches stay"
    replaced = {m.image for m in kept} - {m.image for m in earlier}
    assert len(replaced) == 1 and "/Zico/" in replaced.pop(), "Zico's next photo in place of the missing one"
    assert [m.score for m in kept] == sorted((m.score for m in kept), reverse=True)
    assert after.pairs[0].visitor is not None
    assert f"face {face} replaced in the results" in caplog.text


def shown(pixmap: QPixmap) -> np.ndarray:
    """A pixmap as drawn: height x width x RGB."""
    image = pixmap.toImage().convertToFormat(QImage.Format.Format_RGB888)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, :image.width() * 3].reshape(image.height(), image.width(), 3).astype(float)


def distance(drawn: np.ndarray, bgr: np.ndarray) -> float:
    """Mean difference between a drawn picture and a BGR one, brought to the drawn size."""
    return float(np.abs(drawn - cv2.resize(bgr, drawn.shape[1::-1])[..., ::-1]).mean())


def test_to_pixmap_turns_bgr_into_colour_and_mirrors_only_when_asked(qapp):
    red_and_blue = np.zeros((2, 4, 3), np.uint8)
    red_and_blue[:, :2] = (0, 0, 255)  # BGR red on the left, blue on the right
    red_and_blue[:, 2:] = (255, 0, 0)
    as_is, mirrored = to_pixmap(red_and_blue, mirror=False).toImage(), to_pixmap(red_and_blue, mirror=True).toImage()
    assert (as_is.width(), as_is.height()) == (4, 2)
    assert as_is.pixelColor(0, 0) == QColor("red") and as_is.pixelColor(3, 1) == QColor("blue")
    assert mirrored.pixelColor(0, 0) == QColor("blue") and mirrored.pixelColor(3, 1) == QColor("red")


def test_results_show_the_visitor_mirrored_and_the_portraits_as_they_are(qtbot, gallery, photos):
    worker = started_worker(gallery[1])
    frame = read_image(photos / "astronaut.png")  # a flag on one side only
    outcome = search(worker, frame)
    face = worker.engine.detect(frame).boxes[0]
    np.testing.assert_array_equal(outcome.pairs[0].visitor, portrait_crop(frame, face))  # BGR, as the camera saw it
    page = ResultsPage()
    qtbot.addWidget(page)
    page.resize(960, 540)  # tiles at most twice the visitor's camera pixels: drawn whole, not framed on a mat
    page.retranslate("en")
    page.show_outcome(outcome)
    you, best = shown(page.you.pixmap()), shown(page.best.pixmap())
    portrait = gallery_portrait(worker, Path(outcome.pairs[0].matches[0].image))
    assert distance(you, outcome.pairs[0].visitor[:, ::-1]) < distance(you, outcome.pairs[0].visitor) / 3
    assert distance(best, portrait) < distance(best, portrait[:, ::-1]) / 3


def test_the_staff_panel_shows_the_timings_the_answers_carried(qtbot, tmp_path, gallery, photos):
    window = make_window(qtbot, gallery[1], camera_of(tmp_path, photos / "fr_obama.jpg"), pin_hash=hash_pin("2468"))
    qtbot.waitUntil(lambda: window.flow.state is State.RESULTS, timeout=WAIT_MS)
    outcome = window.results.outcome
    assert outcome.timings_ms["detect"] == 0.0, "the capture reuses the live view's analysis of its frame"
    assert outcome.timings_ms["embed"] == 0.0, "a still visitor's frame was embedded as the live view analysed it"
    assert window.tally.stage_ms["search_embed"] == outcome.timings_ms["embed"]
    assert window.tally.stage_ms["search_search"] == outcome.timings_ms["search"] > 0
    assert window.tally.stage_ms["analyse"] > 0
    assert not hasattr(window.link.worker, "latency_ms"), "no thread reads the worker's own state"
    window.staff_panel.open()
    enter(window, "2468")
    performance = window.staff.performance.text()
    assert "analyse " in performance and "search_embed " in performance and "search_portraits " in performance


def damaged_copy(gallery_link: Path, target: Path) -> Path:
    """A copy of the live gallery version whose index is cut in half."""
    copy = Path(shutil.copytree(gallery_link.resolve(), target))
    index = copy / "index.faiss"
    index.write_bytes(index.read_bytes()[: index.stat().st_size // 2])
    return copy


def test_a_damaged_new_gallery_is_refused_and_the_staff_panel_says_why(qtbot, tmp_path, gallery, photos):
    out = gallery[1]
    window = make_window(qtbot, out, camera_of(tmp_path, photos / "coffee.png"), pin_hash=hash_pin("2468"))
    qtbot.waitUntil(lambda: window.flow.state is State.ATTRACT, timeout=WAIT_MS)
    live = window.link.worker.gallery.root
    link = tmp_path / "next-gallery-link"
    os.symlink(damaged_copy(out, tmp_path / "damaged"), link)
    os.replace(link, out)  # published as index-builder does, atomically
    window.link.watcher.check()
    qtbot.waitUntil(lambda: bool(window.staff_panel.gallery_warning), timeout=WAIT_MS)
    window.staff_panel.open()
    for key in "2468✓":
        window.pin.press(key)
    assert window.stack.currentWidget() is window.staff
    assert "index.faiss is damaged (truncated or not a FAISS index)" in window.staff.warning.text()
    assert window.link.worker.gallery.root == live and window.staff_panel.info.faces == 12


def test_a_damaged_gallery_at_start_up_is_explained_on_screen(qtbot, tmp_path, gallery, photos, caplog):
    damaged = damaged_copy(gallery[1], tmp_path / "damaged")
    window = KioskWindow(KioskConfig(gallery=str(damaged)), None, camera_of(tmp_path, photos / "coffee.png"))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: "index.faiss is damaged" in window.splash.line.text(), timeout=WAIT_MS)
    assert window.splash.line.text() == f"{damaged}: index.faiss is damaged (truncated or not a FAISS index)"
    assert window.stack.currentWidget() is window.splash
    assert not any(record.exc_info for record in caplog.records), "a reason for staff, not a traceback"


def test_the_attract_screen_answers_a_face_within_a_second(qtbot, tmp_path, gallery, photos):
    window = make_window(qtbot, gallery[1], camera_of(tmp_path, photos / "coffee.png"))
    qtbot.waitUntil(lambda: window.flow.state is State.ATTRACT, timeout=WAIT_MS)
    qtbot.wait(300)
    window.camera.start(camera_of(tmp_path, photos / "fr_obama.jpg", name="visitor"))
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.live, timeout=1000)
