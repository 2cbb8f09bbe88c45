"""Status from another room (issue 21, item 3): the running kiosk's heartbeat, `kiosk --status` healthy,
degraded and absent with its exit codes, and the last build's outcome on the status and the staff panel."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import FlakyCamera
from index_builder.outcome import BuildOutcome, record
from kiosk.cli import main
from kiosk.config import KioskConfig
from kiosk.flow import Flow, Timing
from kiosk.heartbeat import BEAT_SECONDS, STALE_SECONDS, Heartbeat, Pulse, heartbeat_path, read_heartbeat
from kiosk.messages import SearchOutcome, WorkerInfo
from kiosk.rates import Tally
from kiosk.window import KioskWindow

PULSE_KEYS = {"written_at", "pid", "state", "uptime_seconds", "gallery", "gallery_faces", "gallery_built_at", "day",
              "visits_today", "p95_latency_ms", "fps", "camera_ok", "camera_problem", "last_error"}


def kiosk_status(capsys, *extra: str) -> tuple[int, dict]:
    code = main(["--status", "--json", "--config", "/nonexistent/kiosk.toml", *extra])
    return code, json.loads(capsys.readouterr().out)


def write_pulse(**changes) -> None:
    pulse = Pulse(written_at=time.time(), pid=os.getpid(), state="attract", uptime_seconds=60.0, gallery="/g/v1",
                  gallery_faces=8, day="2026-01-01", visits_today=3, p95_latency_ms=700.0, fps={"camera": 30.0})
    heartbeat_path().parent.mkdir(parents=True, exist_ok=True)
    heartbeat_path().write_text(json.dumps(asdict(replace(pulse, **changes))))


def a_build(tmp_path: Path, ok: bool) -> Path:
    """A gallery path whose last recorded build succeeded or failed."""
    out = tmp_path / "gallery"
    (tmp_path / "gallery.d").mkdir(exist_ok=True)
    record(out, BuildOutcome("2026-01-01T03:00:12+08:00", 0 if ok else 2, "published" if ok else "failed", ok,
                             2, 1, 0, 9, 42.0, "" if ok else "the corpus /c is not a folder"))
    return out


def test_no_heartbeat_means_no_kiosk(capsys):
    code, verdict = kiosk_status(capsys)
    assert (code, verdict["status"], verdict["heartbeat"]) == (2, "no kiosk", None)
    assert main(["--status", "--config", "/nonexistent/kiosk.toml"]) == 2
    assert "kiosk: no kiosk" in capsys.readouterr().out


def test_a_fresh_heartbeat_and_a_good_build_are_healthy(tmp_path, capsys):
    write_pulse()
    gallery = a_build(tmp_path, ok=True)
    code, verdict = kiosk_status(capsys, "--gallery", str(gallery))
    assert (code, verdict["status"], verdict["problems"]) == (0, "healthy", [])
    assert verdict["heartbeat"]["visits_today"] == 3 and verdict["last_build"]["faces_added"] == 2
    assert main(["--status", "--config", "/nonexistent/kiosk.toml", "--gallery", str(gallery)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("kiosk: healthy\n") and "visits today 3; results p95 700 ms" in text
    assert "last build: 2026-01-01 03:00:12 published (exit 0); faces added 2, removed 1, skipped 0" in text


@pytest.mark.parametrize("pulse, build_ok, problem", [
    ({"written_at": time.time() - STALE_SECONDS - 30}, True, "the heartbeat is "),
    ({"camera_ok": False, "camera_problem": "camera 0 unplugged"}, True, "camera lost: camera 0 unplugged"),
    ({}, False, "the last build failed: the corpus /c is not a folder"),
])
def test_a_stale_heartbeat_a_lost_camera_or_a_failed_build_is_degraded(tmp_path, capsys, pulse, build_ok, problem):
    write_pulse(**pulse)
    code, verdict = kiosk_status(capsys, "--gallery", str(a_build(tmp_path, build_ok)))
    assert (code, verdict["status"]) == (1, "degraded")
    assert len(verdict["problems"]) == 1 and verdict["problems"][0].startswith(problem)


def test_a_closed_kiosk_or_a_gone_process_is_no_kiosk(capsys):
    write_pulse(state="closed")
    assert kiosk_status(capsys)[1]["problems"] == ["the kiosk was closed"]
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_pulse(pid=gone.pid)
    code, verdict = kiosk_status(capsys)
    assert code == 2 and verdict["problems"] == [f"the kiosk (pid {gone.pid}) is no longer running"]


def test_the_heartbeat_counts_and_says_nothing_about_visitors(tmp_path):
    flow, tally = Flow(Timing()), Tally()
    heartbeat = Heartbeat()
    for _visit in range(4):
        tally.searched(SearchOutcome(faces=1, timings_ms={"search": 5.0}))
    tally.results_latency_ms.extend([100.0] * 19 + [900.0])
    heartbeat.write(heartbeat.pulse(flow.state.value, flow, tally, WorkerInfo(gallery="/g/v2", faces=8)))
    written = json.loads(heartbeat_path().read_text())
    assert set(written) == PULSE_KEYS, "counts and settings only"
    assert (written["state"], written["visits_today"], written["gallery"], written["camera_ok"]) == (
        "splash", 4, "/g/v2", True)
    assert written["p95_latency_ms"] == pytest.approx(140.0)
    assert not list(heartbeat_path().parent.glob(".*.tmp")), "written whole, then swapped in"

    restarted = Heartbeat()  # the same day: the count goes on
    assert restarted.pulse("attract", flow, Tally(), WorkerInfo()).visits_today == 4
    heartbeat.stop(flow, tally, WorkerInfo())
    restarted.stop(flow, tally, WorkerInfo())
    assert read_heartbeat().state == "closed"


def test_the_heartbeat_keeps_the_last_warning_logged(tmp_path):
    import logging

    heartbeat = Heartbeat()
    logging.getLogger("kiosk.camera").warning("camera 0: no frames for 5 s")
    pulse = heartbeat.pulse("attract", Flow(Timing()), Tally(), WorkerInfo())
    heartbeat.stop(Flow(Timing()), Tally(), WorkerInfo())
    assert pulse.last_error.endswith("WARNING camera 0: no frames for 5 s")


def test_the_running_window_beats_and_the_staff_panel_shows_the_last_build(qtbot, tmp_path, capsys):
    room = tmp_path / "room"
    room.mkdir()
    cv2.imwrite(str(room / "room.png"), np.full((240, 320, 3), 120, np.uint8))
    gallery = a_build(tmp_path, ok=True)
    window = KioskWindow(KioskConfig(gallery=str(gallery)), None, FlakyCamera(str(room), hold_seconds=3600, fps=30))
    window.link.request_analyse.disconnect(window.link.worker.analyse)
    qtbot.addWidget(window)
    window.on_worker_ready(WorkerInfo(gallery="/g/v1", faces=9))
    assert window.heartbeat.timer.isActive() and window.heartbeat.timer.interval() == BEAT_SECONDS * 1000
    window.heartbeat.beat()  # as its timer does, every few seconds
    code, verdict = kiosk_status(capsys, "--gallery", str(gallery))
    assert (code, verdict["heartbeat"]["state"], verdict["heartbeat"]["gallery_faces"]) == (0, "attract", 9)

    window.on_camera_lost("camera unplugged")
    window.heartbeat.beat()
    assert kiosk_status(capsys, "--gallery", str(gallery))[1]["problems"] == ["camera lost: camera unplugged"]

    window.staff_panel.refresh()
    assert "last build: 2026-01-01 03:00:12 published (exit 0)" in window.staff.gallery.text()
    window.close()
    assert kiosk_status(capsys)[0] == 2, "closed: no kiosk"
