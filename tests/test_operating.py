"""docs/operating.md: every `bash` block of the operator's guide runs as written, in order, with
BOOTH and HOME in a temporary folder (the `text` blocks change the machine, and are not run)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import copy_lfw_people

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "operating.md"
PEOPLE = {"Tony_Blair": 3, "Colin_Powell": 3, "Zico": 2, "Hugo_Chavez": 2}


def guide_blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```", GUIDE.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


def test_the_guide_covers_what_an_operator_needs():
    text = GUIDE.read_text(encoding="utf-8")
    for topic in ("Consent", "Takedown", "source", "caption", "--install-service", "enable-linger",
                  "index-builder schedule", "kiosk --status", "forget", "hide", "rollback", "models install"):
        assert topic in text, topic


@pytest.mark.slow
def test_every_command_of_the_operators_guide_runs_as_written(tmp_path):
    booth = tmp_path / "booth"
    copy_lfw_people(booth / "corpus", PEOPLE)
    env = {**os.environ, "BOOTH": str(booth), "HOME": str(booth / "home"), "QT_QPA_PLATFORM": "offscreen",
           "XDG_CONFIG_HOME": str(booth / "home" / ".config"), "XDG_STATE_HOME": str(booth / "home" / ".state"),
           "XDG_DATA_HOME": str(booth / "home" / ".data"), "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    blocks = guide_blocks("bash")
    assert len(blocks) >= 8
    for block in blocks:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, f"{block}\nexit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert (booth / "units" / "other-me-kiosk.service").exists()
    assert (booth / "units" / "other-me-rebuild-main.timer").exists()
    matches = json.loads((booth / "after_forget.json").read_text())["matches"]
    assert matches and all(match["identity"] != "Zico" for match in matches), "a forgotten person came back"
    assert "Zico" in (booth / "galleries" / "main.d" / "forgotten.json").read_text()
