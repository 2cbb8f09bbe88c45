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
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import LFW, MINI_PACK, PHOTOS, copy_lfw_people, need
from test_imaging import special_files
from test_packs import absolute_entry, bad_crc, garbage_onnx, truncated

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


CASES: list[Case] = [
    # --- build: locks, corpus trees and manifests ---

    # --- files: special, huge and looping files ---
    Case("embed_fifo", lambda ws: ["index-builder", "embed", special_file(ws, "fifo.jpg"), str(ws.photo)],
         1, "fifo.jpg: a FIFO, not a regular file"),
    Case("embed_link_to_dev_zero", lambda ws: ["index-builder", "embed", special_file(ws, "zero.jpg"), str(ws.photo)],
         1, "zero.jpg: a character device, not a regular file"),
    Case("embed_symlink_loop", lambda ws: ["index-builder", "embed", special_file(ws, "loop_a.jpg"), str(ws.photo)],
         1, "loop_a.jpg: a loop of symbolic links"),
    Case("embed_sparse_2gb", lambda ws: ["index-builder", "embed", special_file(ws, "sparse.jpg"), str(ws.photo)],
         1, "sparse.jpg: file too large (2048 MB): a photo may have at most 64 MB"),
    # 8 photos and 5 hostile files: the progress bar reaching 13/13 shows the build went past them all
    Case("build_corpus_with_special_files", lambda ws: ["index-builder", "build", corpus_with_special_files(ws),
                                                         "--out", str(ws.tmp / "gallery"), "--workers", "1"],
         0, "13/13"),
    Case("search_fifo", lambda ws: ["index-builder", "search", str(ws.gallery()), special_file(ws, "fifo.jpg")],
         1, "fifo.jpg: a FIFO, not a regular file"),
    Case("search_sparse_2gb", lambda ws: ["index-builder", "search", str(ws.gallery()), special_file(ws, "sparse.jpg")],
         1, "sparse.jpg: file too large (2048 MB)"),

    # --- galleries: damaged galleries ---

    # --- kiosk and models: options, config, PIN, packs ---

    Case("models_install_bad_crc", lambda ws: ["index-builder", "models", "install", str(bad_crc(ws.tmp, need(MINI_PACK)))],
         2, "damaged or unsupported zip: Bad CRC-32"),
    Case("models_install_truncated_zip",
         lambda ws: ["index-builder", "models", "install", str(truncated(ws.tmp, need(MINI_PACK)))],
         2, "not a folder or a complete zip file"),
    Case("models_install_absolute_entry",
         lambda ws: ["index-builder", "models", "install", str(absolute_entry(ws.tmp, need(MINI_PACK)))],
         2, "'/tmp/evil.txt' has an absolute path or '..'; refused"),
    Case("models_install_garbage_onnx",
         lambda ws: ["index-builder", "models", "install", str(garbage_onnx(ws.tmp, need(MINI_PACK)))],
         2, "w600k_r50.onnx: not a valid ONNX model"),
    Case("models_install_name_dotdot",
         lambda ws: ["index-builder", "models", "install", str(need(MINI_PACK)), "--name", ".."],
         2, "pack name '..': use 1 to 64 letters, digits"),
    Case("models_install_bomb_over_2gb", lambda ws: ["index-builder", "models", "install", bomb_over_the_cap(ws)],
         2, "unpacks to 2054 MB; a pack may have at most 2048 MB", slow=True),
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


# --- makers for the "files" and "models" rows ---

def special_file(workspace: Workspace, name: str) -> str:
    """One of the special files of tests/test_imaging.py (a FIFO, a link to /dev/zero, ...)."""
    special_files(workspace.tmp)
    return str(workspace.tmp / name)


def corpus_with_special_files(workspace: Workspace) -> str:
    corpus = workspace.corpus()
    special_files(corpus / "Tony_Blair")
    return str(corpus)


def bomb_over_the_cap(workspace: Workspace) -> str:
    """The real mini pack and 2 GB of zeros, deflated to a few MB."""
    archive = workspace.tmp / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zipped:
        for path in sorted(need(MINI_PACK).glob("*.onnx")):
            zipped.write(path, f"bomb/{path.name}")
        with zipped.open("bomb/padding.bin", "w", force_zip64=True) as padding:
            for _ in range(128):
                padding.write(bytes(16 * 2**20))
    return str(archive)
