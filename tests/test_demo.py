"""`kiosk --demo` as a newcomer meets it: a child process on a virtual screen, its own home folders,
nobody touching it; the log must show a visit with results within a minute."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRST_RESULTS_SECONDS = 60


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_demo_shows_results_with_no_touch(tmp_path):
    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run is absent (apt install xvfb): the demo needs a screen, a virtual one here")
    env = {**os.environ, "HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    for name in ("CONFIG", "DATA", "STATE"):
        env[f"XDG_{name}_HOME"] = str(tmp_path / name.lower())
    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY", "OTHERME_MODELS_DIR"):
        env.pop(name, None)  # the real X platform, on the virtual screen xvfb-run makes
    log = tmp_path / "state" / "other-me" / "kiosk.log"
    output = open(tmp_path / "output.txt", "w+")
    child = subprocess.Popen(["xvfb-run", "-a", "-s", "-screen 0 1280x720x24", sys.executable, "-m", "kiosk.cli",
                              "--demo"], env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + FIRST_RESULTS_SECONDS
        while time.monotonic() < deadline and child.poll() is None:
            if log.exists() and "result=results" in log.read_text(encoding="utf-8"):
                break
            time.sleep(0.5)
        text = log.read_text(encoding="utf-8") if log.exists() else "(no log)"
        assert child.poll() is None, f"the demo ended early:\n{(tmp_path / 'output.txt').read_text()[-3000:]}"
        assert "result=results" in text, f"no results within {FIRST_RESULTS_SECONDS} s; the log:\n{text[-3000:]}"
    finally:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(timeout=30)
        output.close()
