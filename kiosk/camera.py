"""Frame sources and the capture thread.

A source is a camera index, a video file (looped) or a folder of photos (each held long enough for a
capture, like a visitor standing there: the synthetic camera used by tests and the demo). The
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


def open_source(spec: str) -> OpenCvSource | FolderSource:
    return FolderSource(spec) if Path(spec).is_dir() else OpenCvSource(spec)


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
