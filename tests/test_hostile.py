"""Hostile input, one row each: what is made, the command run on it, the exit code expected and the
one line it must print. Every case runs as a real command in a child process, with its own home
and config folders, and no case may show the user a Python traceback.

Exit codes: 0 ok, 1 some files bad, 2 unusable input or gallery, 3 locked.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
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


# galleries: damaged galleries (each damages a private copy; every command must say what is wrong)
def _halve(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _zero(path: Path) -> None:
    path.write_bytes(bytes(path.stat().st_size))


def _drop_manifest_key(gallery: Path, key: str) -> None:
    manifest = json.loads((gallery / "manifest.json").read_text())
    del manifest[key]
    (gallery / "manifest.json").write_text(json.dumps(manifest))


def _drop_metadata_row(gallery: Path) -> None:
    db = sqlite3.connect(gallery / "metadata.sqlite")
    with db:
        db.execute("DELETE FROM faces WHERE id = 0")
    db.close()


GALLERY_DAMAGES: dict[str, tuple[Callable[[Path], object], str]] = {
    "truncated index": (lambda g: _halve(g / "index.faiss"), "index.faiss is damaged (truncated or not a FAISS index)"),
    "empty index": (lambda g: (g / "index.faiss").write_bytes(b""), "index.faiss is damaged"),
    "zeroed index": (lambda g: _zero(g / "index.faiss"), "index.faiss is damaged"),
    "deleted metadata": (lambda g: (g / "metadata.sqlite").unlink(), "metadata.sqlite is missing"),
    "corrupt manifest": (lambda g: _halve(g / "manifest.json"), "manifest.json is damaged (not valid JSON)"),
    "manifest missing a key": (lambda g: _drop_manifest_key(g, "pack_source"), "missing or malformed: pack_source"),
    "fewer metadata rows": (_drop_metadata_row, "metadata.sqlite has 7 rows for 8 vectors"),
}
GALLERY_COMMANDS: dict[str, Callable[[Path, Workspace], list[str]]] = {
    "search": lambda g, w: ["index-builder", "search", str(g), str(w.photo)],
    "info": lambda g, w: ["index-builder", "info", str(g)],
    "kiosk --headless": lambda g, w: ["kiosk", "--headless", "--gallery", str(g), "--image", str(w.photo)],
}


def on_damaged_gallery(damage: str, command: str) -> Callable[[Workspace], list[str]]:
    def make(workspace: Workspace) -> list[str]:
        gallery = workspace.gallery_copy()
        GALLERY_DAMAGES[damage][0](gallery)
        return GALLERY_COMMANDS[command](gallery, workspace)
    return make


CASES: list[Case] = [
    # --- build: locks, corpus trees and manifests ---

    # --- files: special, huge and looping files ---

    # --- galleries: damaged galleries ---
    *[Case(f"{damage}: {command}", on_damaged_gallery(damage, command), 2, says)
      for damage, (_, says) in GALLERY_DAMAGES.items() for command in GALLERY_COMMANDS],

    # --- kiosk and models: options, config, PIN, packs ---

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
