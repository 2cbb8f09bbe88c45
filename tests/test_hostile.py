"""Hostile input, one row each: what is made, the command run on it, the exit code expected and the
one line it must print. Every case runs as a real command in a child process, with its own home
and config folders, and no case may show the user a Python traceback.

Exit codes: 0 ok, 1 some files bad, 2 unusable input or gallery, 3 locked.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import LFW, PHOTOS, copy_lfw_people, need

ROOT = Path(__file__).resolve().parents[1]
PEOPLE = {"Tony_Blair": 3, "Colin_Powell": 3, "Zico": 2}


class Workspace:
    """What a case is made from: a scratch folder, a real face photo, and (built once for the whole
    run, on first use) a small real gallery; cases that damage a gallery copy it first."""

    _gallery: Path | None = None

    def __init__(self, tmp: Path, shared_tmp: Path) -> None:
        self.tmp, self.shared_tmp = tmp, shared_tmp

    @property
    def photo(self) -> Path:
        return need(PHOTOS) / "fr_obama.jpg"

    def corpus(self, name: str = "corpus") -> Path:
        folder = self.tmp / name
        copy_lfw_people(folder, PEOPLE)
        return folder

    def gallery(self) -> Path:
        """The path of the shared, intact gallery link (read it, never damage it)."""
        if Workspace._gallery is None:
            need(LFW)
            out = self.shared_tmp / "gallery"
            corpus = self.shared_tmp / "corpus"
            copy_lfw_people(corpus, PEOPLE)
            done = run(["index-builder", "build", str(corpus), "--out", str(out), "--workers", "1"], self.shared_tmp)
            assert done.returncode == 0, done.stderr
            Workspace._gallery = out
        return Workspace._gallery

    def gallery_copy(self, name: str = "damaged") -> Path:
        """A private copy of the gallery's live version folder, free to damage."""
        copy = self.tmp / name
        shutil.copytree(self.gallery().resolve(), copy)
        return copy


@dataclass(frozen=True)
class Case:
    name: str
    command: Callable[[Workspace], list[str]]  # makes the hostile input, returns the command line
    code: int
    says: str  # a piece of the one line printed on stderr
    stdin: str | None = None
    slow: bool = False


def run(argv: list[str], home: Path, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`index-builder ...` or `kiosk ...` as a user would run it, isolated from this machine's
    home, config and cache folders."""
    module = {"index-builder": "index_builder.cli", "kiosk": "kiosk.cli"}[argv[0]]
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
           "XDG_CACHE_HOME": str(home / "cache"), "XDG_STATE_HOME": str(home / "state"),
           "XDG_DATA_HOME": str(home / "data"), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", module, *argv[1:]], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=home)


def kiosk_config(ws: Workspace, text: str) -> str:
    """A kiosk config file holding `text`, in the case's own folder."""
    path = ws.tmp / "kiosk.toml"
    path.write_text(text + "\n", encoding="utf-8")
    return str(path)


CASES: list[Case] = [
    # --- build: locks, corpus trees and manifests ---

    # --- files: special, huge and looping files ---

    # --- galleries: damaged galleries ---

    # --- kiosk and models: options, config, PIN, packs ---
    Case("set_pin_at_end_of_input", lambda ws: ["kiosk", "--config", kiosk_config(ws, 'lang = "en"'), "--set-pin"],
         2, "kiosk: no PIN given (end of input); nothing changed", stdin=""),
    Case("pin_hash_malformed", lambda ws: ["kiosk", "--config", kiosk_config(ws, 'pin_hash = "pbkdf2_sha256$x$zz$00"'),
                                           "--headless", "--image", str(ws.photo)],
         2, "pin_hash must be a hash written by kiosk --set-pin"),
    Case("lookalikes_five", lambda ws: ["kiosk", "--config", kiosk_config(ws, 'lookalikes = "five"'),
                                        "--headless", "--image", str(ws.photo)],
         2, 'kiosk.toml: lookalikes must be an integer from 1 to 5, not "five"'),
    Case("lookalikes_minus_3", lambda ws: ["kiosk", "--config", kiosk_config(ws, "lookalikes = -3"),
                                           "--headless", "--image", str(ws.photo)],
         2, "kiosk.toml: lookalikes must be an integer from 1 to 5, not -3"),
    Case("config_toml_syntax_error", lambda ws: ["kiosk", "--config", kiosk_config(ws, 'lang = "en"\nlookalikes = = 3'),
                                                 "--headless", "--image", str(ws.photo)],
         2, "not a valid TOML file: Invalid value (at line 2, column 14)"),
    Case("kiosk_k_0", lambda ws: ["kiosk", "--config", kiosk_config(ws, ""), "--headless", "--image", str(ws.photo),
                                  "--k", "0"],
         2, "kiosk: argument --k: must be a whole number from 1 to 100, not '0' (see kiosk --help)"),
    Case("kiosk_k_minus_1", lambda ws: ["kiosk", "--config", kiosk_config(ws, ""), "--headless", "--image",
                                        str(ws.photo), "--k", "-1"],
         2, "kiosk: argument --k: must be a whole number from 1 to 100, not '-1' (see kiosk --help)"),
    Case("config_path_is_a_folder", lambda ws: ["kiosk", "--config", str(ws.tmp), "--headless", "--image",
                                                str(ws.photo)],
         2, "cannot read the config file: Is a directory"),

]


@pytest.fixture(scope="session")
def shared_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile-shared")


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else [])
                                  for c in CASES])
def test_hostile_input_gets_one_line_and_its_exit_code(case: Case, tmp_path: Path, shared_tmp: Path) -> None:
    workspace = Workspace(tmp_path, shared_tmp)
    done = run(case.command(workspace), tmp_path, case.stdin)
    printed = done.stdout + done.stderr
    assert "Traceback" not in printed, printed
    assert done.returncode == case.code, printed
    assert case.says in done.stderr, printed
    if case.code in (2, 3):
        assert len(done.stderr.strip().splitlines()) == 1, f"one line, not: {done.stderr}"
