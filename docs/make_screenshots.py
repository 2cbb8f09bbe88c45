"""Screenshots of every kiosk screen in both languages, from a real window on an X server.

    .venv/bin/python docs/make_screenshots.py --gallery galleries/lfw [--out docs/screenshots]
        [--second-visitor PHOTO] [--size 1080p|4k]

Starts Xvfb (Debian package xvfb; setup_kiosk.sh installs it) at the chosen size (1920x1080, or
3840x2160 for `--size 4k`) when no DISPLAY is set, shows the kiosk fullscreen with a scripted camera,
walks the visitor's journey and grabs the X screen at each step (saved at 1280x720 to keep the
repository small; the 4K ones too, named 4k_*: the same layout, scaled): two attract frames a second
apart, the live hints, the countdown, the results before and after a touch on a small match, two
visitors' results side by side, the camera wait and the staff screens (at 4K: the attract screen
and the results only). Then the demo as `kiosk --demo` runs it (its own gallery and synthetic
camera, built afresh) until its first results: `*_10_demo_results`. The visitor is scikit-image's
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
SIZES = {"1080p": (1920, 1080), "4k": (3840, 2160)}
SAVED = (1280, 720)  # every screenshot's size in the repository


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
    parser.add_argument("--size", choices=sorted(SIZES), default="1080p", help="the X screen's size")
    args = parser.parse_args()
    xvfb = None
    if not os.environ.get("DISPLAY"):
        width, height = SIZES[args.size]
        xvfb = subprocess.Popen(["Xvfb", ":97", "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"])
        os.environ["DISPLAY"] = ":97"
        time.sleep(1.5)
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    # the exhibition's exposure ledger and log live in the data and state folders: the screenshots' are their own
    os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="other-me-screens-")
    os.environ["XDG_STATE_HOME"] = os.environ["XDG_DATA_HOME"]
    from kiosk.log import setup_logging

    setup_logging()  # the staff panel shows the log's last lines
    try:
        take_screenshots(args.gallery, args.out, args.second_visitor, prefix="4k_" if args.size == "4k" else "")
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


class Shooter:
    """Waits for the kiosk's screens and grabs the X screen, saved at SAVED with `prefix` on each name."""

    def __init__(self, app, out: Path, prefix: str) -> None:
        self.app, self.out, self.prefix = app, out, prefix
        out.mkdir(parents=True, exist_ok=True)

    def wait(self, condition, seconds: float = 60) -> None:
        deadline = time.time() + seconds
        while not condition():
            if time.time() > deadline:
                raise TimeoutError("the kiosk did not reach the expected screen")
            self.app.processEvents()
            time.sleep(0.01)

    def settle(self, seconds: float = 0.6) -> None:
        deadline = time.time() + seconds
        while time.time() < deadline:
            self.app.processEvents()
            time.sleep(0.01)

    def grab(self, name: str) -> None:
        from PySide6.QtCore import Qt

        self.settle()
        shot = self.app.primaryScreen().grabWindow(0)
        path = self.out / f"{self.prefix}{name}.png"
        shot.scaled(*SAVED, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation) \
            .save(str(path))
        print(f"  {path}")


def take_screenshots(gallery: str, out: Path, second_visitor: Path | None = None, prefix: str = "") -> None:
    """Every screen in both languages (at 4K, `prefix` "4k_": the attract screen and the results
    only), then the demo's first results."""
    import cv2
    from PySide6.QtWidgets import QApplication

    from face_engine.imaging import read_image

    shooter = Shooter(QApplication(sys.argv[:1]), out, prefix)
    frames = visitor_frames()
    close = frames["close"]
    second = cv2.resize(read_image(second_visitor), close.shape[1::-1]) if second_visitor else close[:, ::-1]
    frames["duo"] = np.hstack([close, second])  # two visitors in one frame: the worker's duo search
    shown = attract_set(gallery)
    for lang in ("zh", "en"):
        tour(shooter, gallery, frames, shown, lang, every_screen=not prefix)
    for lang in ("zh", "en"):
        demo(shooter, lang)


def tour(shooter: Shooter, gallery: str, frames: dict[str, np.ndarray], shown, lang: str,
         every_screen: bool) -> None:
    """Walk one visitor and one staff member through the screens, grabbing each."""
    from kiosk.config import KioskConfig, hash_pin
    from kiosk.flow import State
    from kiosk.window import KioskWindow

    camera = ScriptedCamera()
    camera.show(frames["empty"])
    config = KioskConfig(gallery=gallery, lang=lang, countdown_seconds=4, results_seconds=600,
                         idle_seconds=600, pin_hash=hash_pin("2468"))
    window = KioskWindow(config, None, camera)
    window.show_fullscreen()
    grab = shooter.grab if every_screen else (lambda name: None)
    grab(f"{lang}_1_splash")
    shooter.wait(lambda: window.flow.state is State.ATTRACT)
    window.attract.show_set(shown)
    shooter.settle(3.0)  # the first lookalike pair has faded in
    shooter.grab(f"{lang}_2_attract")
    shooter.settle(0.4)  # grab() settles 0.6 s itself: this frame is a second after the one before
    grab(f"{lang}_2_attract_1s_later")
    camera.show(frames["three"])
    window.results.try_again.emit()  # a touch on the attract screen: what "try again" does
    shooter.wait(lambda: window.flow.hint == "hint_one_person")
    grab(f"{lang}_3_live_one_person")
    camera.show(frames["far"])
    shooter.wait(lambda: window.flow.hint == "hint_come_closer")
    grab(f"{lang}_4_live_come_closer")
    camera.show(frames["close"])
    shooter.wait(lambda: window.flow.state is State.COUNTDOWN)
    shooter.settle(0.8)
    grab(f"{lang}_5_countdown")
    results(shooter, window, frames["duo"], lang, grab)
    if every_screen:
        staff_screens(shooter, window, camera, lang)
    window.staff.quit.emit()  # the way out of a locked-down fullscreen: the staff panel's quit
    shooter.settle(0.5)


def results(shooter: Shooter, window, duo: np.ndarray, lang: str, grab) -> None:
    """The results of the visit under way, a touch on a small match, then two visitors' results."""
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    from kiosk.flow import State
    from kiosk.messages import SearchOutcome

    shooter.wait(lambda: window.flow.state is State.RESULTS)
    shooter.wait(lambda: bool(window.tally.results_latency_ms))
    shooter.grab(f"{lang}_6_results")
    third = window.results.tiles[1]
    QTest.mouseClick(third, Qt.MouseButton.LeftButton, pos=QPoint(third.width() // 2, third.height() // 2))
    grab(f"{lang}_6_results_browse")
    searched: list[SearchOutcome] = []
    window.link.worker.searched.connect(searched.append)
    window.link.capture_time = time.perf_counter()  # the window's own capture, as a touch would make it
    window.link.request_search.emit(duo, window.config.lookalikes, window.link.capture_time)
    shooter.wait(lambda: bool(searched))
    window.results.show_outcome(searched[0])
    shooter.grab(f"{lang}_6_results_duo")


def staff_screens(shooter: Shooter, window, camera: ScriptedCamera, lang: str) -> None:
    """The camera wait, then the staff PIN pad and panel."""
    from kiosk.flow import State

    camera.unplugged = True
    shooter.wait(lambda: window.flow.state is State.CAMERA_WAIT)
    shooter.grab(f"{lang}_7_camera_wait")
    camera.unplugged = False
    shooter.wait(lambda: window.flow.state is State.ATTRACT)
    window.staff_panel.open()
    for key in "24":
        window.pin.press(key)
    shooter.grab(f"{lang}_8_staff_pin")
    for key in "68✓":
        window.pin.press(key)
    shooter.settle(1.2)
    shooter.grab(f"{lang}_9_staff_panel")


def demo(shooter: Shooter, lang: str) -> None:
    """`kiosk --demo` untouched: its gallery built on the splash, its synthetic camera's first
    visitor, and the results it gets."""
    from functools import partial

    from kiosk.config import KioskConfig, hash_pin
    from kiosk.demo import demo_settings
    from kiosk.flow import State
    from kiosk.window import KioskWindow

    window = KioskWindow(KioskConfig(lang=lang, pin_hash=hash_pin("2468")), None,
                         prepare=partial(demo_settings, keep={}))
    window.show_fullscreen()
    shooter.wait(lambda: window.flow.state is State.RESULTS, seconds=240)
    shooter.wait(lambda: bool(window.tally.results_latency_ms))
    shooter.grab(f"{lang}_10_demo_results")
    window.staff.quit.emit()
    shooter.settle(0.5)


if __name__ == "__main__":
    main()
