"""Frame sources and the capture thread.

A source is a camera index, a video file (looped) or a folder of photos: each held long enough for a
capture, like a visitor standing there (FolderSource, the tests' synthetic camera), and, for a folder
named as the kiosk's camera (the demo's), staged as visitors who come and go (StagedFolderSource). The
capture thread emits only the newest frame; when the source fails it says so and keeps trying to
reconnect, and the first frame it delivers after each (re)start says the camera works.
"""
from __future__ import annotations

import fcntl
import logging
import os
import struct
import time
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QObject, QThread, Signal

from face_engine.imaging import ImageError, read_image

log = logging.getLogger(__name__)

RECONNECT_SECONDS = 1.0
# V4L2's VIDIOC_QUERYCAP: struct v4l2_capability (104 bytes) read back; the capture capabilities
VIDIOC_QUERYCAP = 0x80685600
CAPTURE_CAPABILITIES = 0x00000001 | 0x00001000  # V4L2_CAP_VIDEO_CAPTURE, ..._MPLANE
DEVICE_CAPS = 0x80000000  # V4L2_CAP_DEVICE_CAPS: device_caps says what this node, not the whole device, does
# a photo of a folder camera stays this long: hints, a 1 s hold, the 3 s countdown and the capture fit
HOLD_SECONDS = 12.0
# a staged folder's room stays empty this long between visitors: the results close (8 s after the face
# left, the kiosk's default away_seconds) and the attract loop shows for about 10 s before the next one
EMPTY_SECONDS = 18.0
STAGE_SIZE = (720, 1280)  # height, width: a 720p webcam's frame, 16:9 like the screen: the live view crops nothing
WALL_BGR = (128, 128, 128)  # a neutral grey wall behind a staged visitor
MOST_ENLARGED = 2.0  # a staged photo is shown at most this many times its own pixels
STAGE_FILL = 0.9  # ... and at most this share of the frame's height and width


class CameraError(RuntimeError):
    pass


class OpenCvSource:
    """A camera (by index) or a video file, through OpenCV."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.capture: cv2.VideoCapture | None = None
        self.is_file = not spec.isdigit()
        self.fps = 30.0

    def open(self) -> None:
        self.capture = cv2.VideoCapture(self.spec if self.is_file else int(self.spec))
        if not self.capture.isOpened():
            raise CameraError(f"cannot open camera {self.spec}")
        if not self.is_file:  # the driver keeps one frame, not four: a read never returns one 100 ms old
            self.capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) or 30.0

    def read(self) -> np.ndarray:
        assert self.capture is not None
        ok, frame = self.capture.read()
        if not ok and self.is_file:  # a video loops
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.capture.read()
        if not ok:
            raise CameraError(f"camera {self.spec} stopped sending frames")
        if self.is_file:
            time.sleep(1 / self.fps)
        return frame

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()


class FolderSource:
    """Real photos from a folder, in name order, each held `hold_seconds`, at `fps` frames a second.
    A photo is decoded when its turn comes, never the whole folder at once: staff may point the
    camera at a folder of thousands (checked on the GUI thread), and only one photo shows at a time.
    Unreadable files leave the round."""

    def __init__(self, folder: str, hold_seconds: float = HOLD_SECONDS, fps: float = 15.0) -> None:
        self.folder = Path(folder)
        self.hold_seconds, self.fps = hold_seconds, fps
        self.paths: list[Path] = []
        self.started = 0.0
        self._shown: tuple[Path, np.ndarray] | None = None

    def open(self) -> None:
        try:
            self.paths = sorted(self.folder.iterdir())
        except OSError as error:
            raise CameraError(f"cannot read {self.folder}: {error.strerror}") from None
        self._shown = None
        self.started = time.monotonic()
        self._photo(0)  # a folder with no readable photo fails here, as a camera that will not open

    def read(self) -> np.ndarray:
        time.sleep(1 / self.fps)
        return self._photo(int((time.monotonic() - self.started) / self.hold_seconds)).copy()

    def _photo(self, turn: int) -> np.ndarray:
        while self.paths:
            path = self.paths[turn % len(self.paths)]
            if self._shown is not None and self._shown[0] == path:
                return self._shown[1]
            try:
                self._shown = (path, read_image(path))
                return self._shown[1]
            except ImageError:
                self.paths.remove(path)
        raise CameraError(f"no readable photo in {self.folder}")

    def close(self) -> None:
        self.paths, self._shown = [], None


class StagedFolderSource(FolderSource):
    """A folder named as the kiosk's camera (the demo's): the room stays empty for `empty_seconds`
    (long enough for the results to close and the attract loop to show), then a photo steps up as a
    visitor for `hold_seconds`, and so on round the folder. A visitor stands before a neutral wall
    at a webcam's distance: a small photo is not blown up to fill the screen (see `staged`)."""

    def __init__(self, folder: str, hold_seconds: float = HOLD_SECONDS, empty_seconds: float = EMPTY_SECONDS,
                 fps: float = 15.0) -> None:
        super().__init__(folder, hold_seconds, fps)
        self.empty_seconds = empty_seconds
        self._wall = np.full((*STAGE_SIZE, 3), WALL_BGR, np.uint8)
        self._staged: tuple[np.ndarray, np.ndarray] | None = None  # (photo, its staged frame)

    def read(self) -> np.ndarray:
        time.sleep(1 / self.fps)
        turn, into = divmod(time.monotonic() - self.started, self.hold_seconds + self.empty_seconds)
        if into < self.empty_seconds:
            return self._wall.copy()
        photo = self._photo(int(turn))
        if self._staged is None or self._staged[0] is not photo:
            self._staged = (photo, staged(photo, self._wall))
        return self._staged[1].copy()

    def close(self) -> None:
        super().close()
        self._staged = None


def staged(photo: np.ndarray, wall: np.ndarray) -> np.ndarray:
    """`photo` in the middle of a copy of `wall`, as large as STAGE_FILL of the wall allows but at
    most MOST_ENLARGED times its own pixels."""
    height, width = photo.shape[:2]
    scale = min(MOST_ENLARGED, STAGE_FILL * wall.shape[0] / height, STAGE_FILL * wall.shape[1] / width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = cv2.resize(photo, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    frame = wall.copy()
    top, left = (wall.shape[0] - size[1]) // 2, (wall.shape[1] - size[0]) // 2
    frame[top:top + size[1], left:left + size[0]] = resized
    return frame


def open_source(spec: str) -> OpenCvSource | FolderSource:
    return StagedFolderSource(spec) if Path(spec).is_dir() else OpenCvSource(spec)


def camera_problem(spec: str) -> str:
    """Why `spec` cannot be used as a camera, in one line; "" when it delivers a frame. A camera
    index is only looked for, not opened: the running capture may hold it."""
    spec = spec.strip()
    if not spec:
        return "no camera given"
    if spec.isdigit():
        return "" if Path(f"/dev/video{spec}").exists() else f"no camera {spec} (/dev/video{spec} is absent)"
    if not Path(spec).exists():
        return f"{spec} does not exist"
    source = open_source(spec)
    try:
        source.open()
        source.read()
    except CameraError as error:
        return str(error)
    finally:
        source.close()
    return ""


def found_cameras(devices: Path = Path("/dev")) -> list[tuple[str, str]]:
    """(index, name) of each camera here, by index: a /dev/videoN that opens and says it captures
    video (a webcam's second, metadata node does not). Asked, not read: quick enough for the GUI
    thread, and the running capture may be holding its camera."""
    found = []
    for node in devices.glob("video*"):
        number = node.name.removeprefix("video")
        name = capture_card(node) if number.isdigit() else None
        if name is not None:
            found.append((number, name))
    return sorted(found, key=lambda camera: int(camera[0]))


def capture_card(node: Path) -> str | None:
    """The card's name of a V4L2 device node that captures video; None for any other file."""
    try:
        descriptor = os.open(node, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        answer = fcntl.ioctl(descriptor, VIDIOC_QUERYCAP, bytes(104))
    except OSError:
        return None
    finally:
        os.close(descriptor)
    capabilities, device_capabilities = struct.unpack_from("=II", answer, 84)
    if capabilities & DEVICE_CAPS:
        capabilities = device_capabilities
    card = answer[16:48].split(b"\0")[0].decode("utf-8", "replace")
    return (card or node.name) if capabilities & CAPTURE_CAPABILITIES else None


class CaptureThread(QThread):
    frame_ready = Signal(object)  # np.ndarray, BGR
    camera_lost = Signal(str)
    camera_back = Signal()

    def __init__(self, source, parent=None) -> None:
        super().__init__(parent)
        self.source = source
        self.frames = 0

    def run(self) -> None:
        lost = False
        while not self.isInterruptionRequested():
            try:
                self.source.open()
                frame = self.source.read()
                log.info("camera working")
                self.camera_back.emit()  # a frame is the only proof: opening may succeed on a dead camera
                lost = False
                while not self.isInterruptionRequested():
                    self.frames += 1
                    self.frame_ready.emit(frame)
                    frame = self.source.read()
            except CameraError as error:
                if not lost:
                    log.warning("camera lost: %s", error)
                    self.camera_lost.emit(str(error))
                    lost = True
            finally:
                self.source.close()
            self._sleep(RECONNECT_SECONDS)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.isInterruptionRequested():
            time.sleep(0.05)

    def stop(self) -> None:
        self.requestInterruption()
        self.wait()


class Camera(QObject):
    """The capture thread of the moment. `start` replaces it with one on a new source; only the
    current thread's signals come through (the old one's, still queued, are dropped)."""

    frame_ready = Signal(object)  # np.ndarray, BGR
    camera_lost = Signal(str)
    camera_back = Signal()  # the first frame after a (re)start: the camera works

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.capture: CaptureThread | None = None

    def start(self, source) -> None:
        old, self.capture = self.capture, None
        if old is not None:
            old.stop()
            old.deleteLater()
        self.capture = CaptureThread(source, self)
        self.capture.frame_ready.connect(self._frame)
        self.capture.camera_lost.connect(self._lost)
        self.capture.camera_back.connect(self._back)
        self.capture.start()

    def _frame(self, frame: np.ndarray) -> None:
        if self.sender() is self.capture:
            self.frame_ready.emit(frame)

    def _lost(self, reason: str) -> None:
        if self.sender() is self.capture:
            self.camera_lost.emit(reason)

    def _back(self) -> None:
        if self.sender() is self.capture:
            self.camera_back.emit()

    def stop(self) -> None:
        if self.capture is not None:
            self.capture.stop()
