"""Screenshots of every kiosk screen in both languages, from a real window on an X server.

    .venv/bin/python docs/make_screenshots.py --gallery galleries/lfw [--out docs/screenshots]
        [--second-visitor PHOTO]

Starts Xvfb (Debian package xvfb; setup_kiosk.sh installs it) when no DISPLAY is set, shows the
kiosk fullscreen at 1920x1080 with a scripted camera, walks the visitor's journey and grabs the X
screen at each step (saved at 1280x720 to keep the repository small): two attract frames a second
apart, the live hints, the countdown, the results before and after a touch on a small match, two
visitors' results side by side, the camera wait and the staff screens. The visitor is scikit-image's
astronaut photo (NASA, public domain; Eileen Collins, who is not in LFW), so the committed
screenshots carry no photo we may not redistribute besides the gallery's own faces. The duo screen's
second visitor is `--second-visitor` (a photo of the gallery's kind, e.g. an LFW photo of someone
not in it), or else the astronaut again, mirrored. The committed screenshots: `--gallery` the whole LFW
(`index-builder build ../shared/data/lfw/images_deepfunneled --faces central`), `--second-visitor
../shared/data/photos/fr_obama.jpg`. The tour ends with the staff panel's quit, the one way out of
the kiosk's locked-down fullscreen.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


class ScriptedCamera:
    """Shows whichever frame the script chooses; can be 'unplugged'."""

    fps = 15.0

    def __init__(self) -> None:
        self.frame = None
        self.unplugged = False

    def show(self, frame: np.ndarray) -> None:
        self.frame = frame

    def open(self) -> None:
        from kiosk.camera import CameraError

        if self.unplugged:
            raise CameraError("unplugged")

    def read(self) -> np.ndarray:
        from kiosk.camera import CameraError

        time.sleep(1 / self.fps)
        if self.unplugged:
            raise CameraError("unplugged")
        return self.frame.copy()

    def close(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gallery", required=True)
    parser.add_argument("--out", type=Path, default=HERE / "screenshots")
    parser.add_argument("--second-visitor", type=Path, help="a photo of the duo screen's second visitor")
    args = parser.parse_args()
    xvfb = None
    if not os.environ.get("DISPLAY"):
        xvfb = subprocess.Popen(["Xvfb", ":97", "-screen", "0", "1920x1080x24", "-nolisten", "tcp"])
        os.environ["DISPLAY"] = ":97"
        time.sleep(1.5)
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    # the exhibition's exposure ledger and log live in the data and state folders: the screenshots' are their own
    os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="other-me-screens-")
    os.environ["XDG_STATE_HOME"] = os.environ["XDG_DATA_HOME"]
    from kiosk.log import setup_logging

    setup_logging()  # the staff panel shows the log's last lines
    try:
        take_screenshots(args.gallery, args.out, args.second_visitor)
    finally:
        if xvfb is not None:
            xvfb.terminate()


def visitor_frames() -> dict[str, np.ndarray]:
    """Camera frames made from the public-domain astronaut photo: alone and close, three side by
    side (a crowd), small in an empty room (too far), and an empty room."""
    from importlib import resources

    import cv2

    from face_engine.imaging import read_image

    astronaut = read_image(str(resources.files("skimage").joinpath("data/astronaut.png")))
    close = astronaut[20:340, 60:380]
    room = np.full((720, 1280, 3), 40, np.uint8)
    far = room.copy()
    far[300:428, 600:728] = cv2.resize(close, (128, 128), interpolation=cv2.INTER_AREA)
    return {"close": close, "three": np.hstack([close, close[:, ::-1], close]), "far": far, "empty": room}


def attract_set(gallery_path: str):
    """The AttractSet the kiosk's worker makes for this gallery (no exposure counts yet)."""
    from face_engine.gallery import Gallery
    from kiosk.attract_faces import attract_set as make

    gallery = Gallery(gallery_path)
    chosen = make(gallery, None, np.random.default_rng(0))
    gallery.close()
    return chosen


def take_screenshots(gallery: str, out: Path, second_visitor: Path | None = None) -> None:
    import cv2
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from face_engine.imaging import read_image
    from kiosk.config import KioskConfig, hash_pin
    from kiosk.flow import State
    from kiosk.messages import SearchOutcome
    from kiosk.window import KioskWindow

    app = QApplication(sys.argv[:1])
    out.mkdir(parents=True, exist_ok=True)

    def wait(condition, seconds: float = 60) -> None:
        deadline = time.time() + seconds
        while not condition():
            if time.time() > deadline:
                raise TimeoutError("the kiosk did not reach the expected screen")
            app.processEvents()
            time.sleep(0.01)

    def settle(seconds: float = 0.6) -> None:
        deadline = time.time() + seconds
        while time.time() < deadline:
            app.processEvents()
            time.sleep(0.01)

    def grab(name: str) -> None:
        settle()
        shot = app.primaryScreen().grabWindow(0)
        shot.scaled(1280, 720, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation) \
            .save(str(out / f"{name}.png"))
        print(f"  {out / name}.png")

    frames = visitor_frames()
    close = frames["close"]
    second = cv2.resize(read_image(second_visitor), close.shape[1::-1]) if second_visitor else close[:, ::-1]
    duo = np.hstack([close, second])  # two visitors in one frame: the worker's duo search
    shown = attract_set(gallery)

    def tour(lang: str) -> None:
        """Walk one visitor and one staff member through every screen, grabbing each."""
        camera = ScriptedCamera()
        camera.show(frames["empty"])
        config = KioskConfig(gallery=gallery, lang=lang, countdown_seconds=4, results_seconds=600,
                             idle_seconds=600, pin_hash=hash_pin("2468"))
        window = KioskWindow(config, None, camera)
        window.show_fullscreen()
        grab(f"{lang}_1_splash")
        wait(lambda: window.flow.state is State.ATTRACT)
        window.attract.show_set(shown)
        settle(3.0)  # the first lookalike pair has faded in
        grab(f"{lang}_2_attract")
        settle(0.4)  # grab() settles 0.6 s itself: this frame is a second after the one before
        grab(f"{lang}_2_attract_1s_later")
        camera.show(frames["three"])
        window.results.try_again.emit()  # a touch on the attract screen: what "try again" does
        wait(lambda: window.flow.hint == "hint_one_person")
        grab(f"{lang}_3_live_one_person")
        camera.show(frames["far"])
        wait(lambda: window.flow.hint == "hint_come_closer")
        grab(f"{lang}_4_live_come_closer")
        camera.show(frames["close"])
        wait(lambda: window.flow.state is State.COUNTDOWN)
        settle(0.8)
        grab(f"{lang}_5_countdown")
        wait(lambda: window.flow.state is State.RESULTS)
        wait(lambda: bool(window.tally.results_latency_ms))
        grab(f"{lang}_6_results")
        third = window.results.tiles[1]
        QTest.mouseClick(third, Qt.MouseButton.LeftButton, pos=QPoint(third.width() // 2, third.height() // 2))
        grab(f"{lang}_6_results_browse")
        searched: list[SearchOutcome] = []
        window.link.worker.searched.connect(searched.append)
        window.link.capture_time = time.perf_counter()  # the window's own capture, as a touch would make it
        window.link.request_search.emit(duo, config.lookalikes, window.link.capture_time)
        wait(lambda: bool(searched))
        window.results.show_outcome(searched[0])
        grab(f"{lang}_6_results_duo")
        camera.unplugged = True
        wait(lambda: window.flow.state is State.CAMERA_WAIT)
        grab(f"{lang}_7_camera_wait")
        camera.unplugged = False
        wait(lambda: window.flow.state is State.ATTRACT)
        window.staff_panel.open()
        for key in "24":
            window.pin.press(key)
        grab(f"{lang}_8_staff_pin")
        for key in "68✓":
            window.pin.press(key)
        settle(1.2)
        grab(f"{lang}_9_staff_panel")
        window.staff.quit.emit()  # the way out of a locked-down fullscreen: the staff panel's quit
        settle(0.5)

    for lang in ("zh", "en"):
        tour(lang)


if __name__ == "__main__":
    main()
