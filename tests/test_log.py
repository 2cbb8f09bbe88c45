"""The kiosk's log: where it lives, repeated warnings held back, the visit line, the tail staff read,
and a camera path checked before it is used."""
from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from logging.handlers import RotatingFileHandler
from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk import camera
from kiosk.camera import camera_problem
from kiosk.log import RateLimit, log_path, log_tail, setup_logging, visit_line

ROOT = Path(__file__).resolve().parents[1]


def record(message: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("kiosk.camera", level, __file__, 1, message, None, None)


def test_the_log_lives_in_the_state_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert log_path() == tmp_path / "state" / "other-me" / "kiosk.log"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert log_path() == tmp_path / "home" / ".local" / "state" / "other-me" / "kiosk.log"


def test_a_repeated_warning_passes_once_a_minute_and_says_how_many_were_held_back():
    now = [0.0]
    limit = RateLimit(60, clock=lambda: now[0])
    passed = []
    for _ in range(38):  # a camera retrying every second
        item = record("camera lost: cannot open camera 0")
        if limit.filter(item):
            passed.append(item.getMessage())
        now[0] += 1
    assert passed == ["camera lost: cannot open camera 0"]
    now[0] = 61
    later = record("camera lost: cannot open camera 0")
    assert limit.filter(later) and later.getMessage() == "camera lost: cannot open camera 0 (and 37 more like it)"
    assert limit.filter(record("camera lost: camera 1 stopped sending frames")), "another message passes"
    assert all(limit.filter(record("visit", logging.INFO)) for _ in range(3)), "information is never held back"


def test_the_visit_line_has_counts_and_scores_only():
    assert visit_line(7, 2, [0.61234, 0.4], 182.4, "") == (
        "visit 7: faces=2 matches=2 best=0.612 total_ms=182 result=results")
    assert visit_line(8, 0, [], 90, "fail_no_face").endswith("matches=0 best=- total_ms=90 result=no_face")
    assert visit_line(9, 1, [], 90, "fail_search").endswith("result=error")


def test_the_tail_is_the_last_lines_and_nothing_without_a_log(tmp_path):
    assert log_tail(tmp_path / "absent.log") == ""
    path = tmp_path / "kiosk.log"
    path.write_text("".join(f"line {n}\n" for n in range(5000)))
    assert log_tail(path, 3) == "line 4997\nline 4998\nline 4999"


def test_opencvs_own_camera_warnings_are_silenced(tmp_path):
    """A missing camera: OpenCV would print its warnings on every try; the kiosk's one line suffices."""
    code = ("from kiosk.log import setup_logging; setup_logging()\n"
            "import cv2; [cv2.VideoCapture(7) for _ in range(3)]\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state"),
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0 and "WARN" not in done.stderr, done.stderr
    assert (tmp_path / "state" / "other-me" / "kiosk.log").exists()


@pytest.fixture
def state_home(tmp_path, monkeypatch) -> Iterator[None]:
    """The kiosk's log file under the test's folder; its handler is taken off the root logger after."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    yield
    root = logging.getLogger()
    for handler in root.handlers[:]:
        if isinstance(handler, RotatingFileHandler):
            root.removeHandler(handler)
            handler.close()


def test_setting_up_twice_keeps_one_file_handler(state_home):
    setup_logging()
    setup_logging()
    assert sum(isinstance(handler, RotatingFileHandler) for handler in logging.getLogger().handlers) == 1
    logging.getLogger("kiosk.test").warning("one line")
    assert log_tail(log_path()).count("one line") == 1


def test_a_warning_reaches_both_the_file_and_stderr(state_home, capsys):
    setup_logging()
    for _ in range(3):
        logging.getLogger("kiosk.camera").warning("camera lost: unplugged")
    assert capsys.readouterr().err.count("camera lost: unplugged") == 1
    assert log_tail(log_path()).count("camera lost: unplugged") == 1


def test_a_camera_path_is_checked_before_it_is_used(tmp_path):
    assert camera_problem(str(tmp_path / "missing.mp4")) == f"{tmp_path / 'missing.mp4'} does not exist"
    assert camera_problem("") == "no camera given"
    assert "is absent" in camera_problem("97")
    (tmp_path / "empty").mkdir()
    assert camera_problem(str(tmp_path / "empty")).startswith("no readable photo in")
    (tmp_path / "notes.txt").write_text("not a video")
    assert camera_problem(str(tmp_path / "notes.txt")).startswith("cannot open camera")
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), np.zeros((20, 20, 3), np.uint8))
    assert camera_problem(str(photos)) == ""


def test_a_folder_camera_decodes_each_photo_when_its_turn_comes(tmp_path, monkeypatch):
    for name in "abc":
        cv2.imwrite(str(tmp_path / f"{name}.png"), np.full((20, 20, 3), ord(name), np.uint8))
    (tmp_path / "b2.png").write_bytes(b"not a picture")
    decoded: list[str] = []
    read_image = camera.read_image
    monkeypatch.setattr(camera, "read_image", lambda path: decoded.append(path.name) or read_image(path))
    source = camera.FolderSource(str(tmp_path), hold_seconds=1.0, fps=1000)
    source.open()
    assert decoded == ["a.png"]  # not the whole folder
    source.read()
    assert decoded == ["a.png"]  # a photo held is decoded once
    source.started -= 1.0
    assert source.read()[0, 0, 0] == ord("b")
    source.started -= 1.0  # b2.png is next, unreadable: it leaves the round and c.png shows
    assert source.read()[0, 0, 0] == ord("c") and [path.name for path in source.paths] == ["a.png", "b.png", "c.png"]
