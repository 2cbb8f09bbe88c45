"""Hostile input, one row each: what is made, the command run on it, the exit code expected and the
one line it must print. Each case runs the command's own `main` in this process, with its own home
and config folders, working folder and input; the rows marked `child` run as a real command in a
child process, where crossing a process boundary is the point (a lock another process holds, the
exit code a shell sees). No case may show the user a Python traceback.

Exit codes: 0 ok, 1 some files bad, 2 unusable input or gallery, 3 locked.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import MINI_PACK, PHOTOS, SMALL_GALLERY, Galleries, copy_lfw_people, need
from index_builder.cli import main as index_builder_main
from index_builder.lock import build_lock
from kiosk.cli import main as kiosk_main
from test_imaging import special_files
from test_packs import absolute_entry, bad_crc, garbage_onnx, truncated

ROOT = Path(__file__).resolve().parents[1]
PEOPLE = SMALL_GALLERY


class Workspace:
    """What a case is made from: a scratch folder, a real face photo, and a small real gallery
    (built once for the whole run); cases that damage a gallery copy it first."""

    def __init__(self, tmp: Path, galleries: Galleries) -> None:
        self.tmp, self.galleries = tmp, galleries

    @property
    def photo(self) -> Path:
        return need(PHOTOS) / "fr_obama.jpg"

    def corpus(self, name: str = "corpus") -> Path:
        folder = self.tmp / name
        copy_lfw_people(folder, PEOPLE)
        return folder

    def manifest(self, name: str, data: bytes) -> Path:
        """A manifest holding `data`, beside a corpus folder tree (rows name photos as corpus/...)."""
        self.corpus()
        path = self.tmp / name
        path.write_bytes(data)
        return path

    def looping_folder(self) -> Path:
        """A folder holding nothing but a link to itself."""
        folder = self.tmp / "looping"
        folder.mkdir()
        (folder / "again").symlink_to(folder)
        return folder

    def gallery(self) -> Path:
        """The path of the shared, intact gallery link (read it, never damage it)."""
        return self.galleries.built(PEOPLE) / "gallery"

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
    child: bool = False  # run as a real command in a child process


def own_folders(home: Path) -> dict[str, str]:
    """The variables that keep a command off this machine's home, config, cache, data and state folders."""
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache"),
            "XDG_STATE_HOME": str(home / "state"), "XDG_DATA_HOME": str(home / "data")}


def run(argv: list[str], home: Path, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`index-builder ...` or `kiosk ...` as a user would run it, in a child process."""
    module = {"index-builder": "index_builder.cli", "kiosk": "kiosk.cli"}[argv[0]]
    env = {**os.environ, **own_folders(home), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", module, *argv[1:]], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=home)


def call(argv: list[str], home: Path, stdin: str | None, monkeypatch: pytest.MonkeyPatch,
         capsys: pytest.CaptureFixture[str]) -> subprocess.CompletedProcess:
    """What `run` answers, from the command's own `main` in this process: the same folders, working
    folder and input, and its exit code whether returned or raised by argparse."""
    main = {"index-builder": index_builder_main, "kiosk": kiosk_main}[argv[0]]
    capsys.readouterr()  # what making the case printed
    with monkeypatch.context() as patch, log_warnings_on_stderr(argv[0] == "index-builder"):
        for name, value in own_folders(home).items():
            patch.setenv(name, value)
        patch.chdir(home)
        patch.setattr(sys, "stdin", io.StringIO(stdin or ""))
        try:
            code = main(argv[1:])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, out, err)


@contextlib.contextmanager
def log_warnings_on_stderr(needed: bool) -> Iterator[None]:
    """Log warnings printed on stderr as `logging.basicConfig` in index-builder's `main` prints them in
    a process of its own (under pytest the root logger has handlers already, so it adds none; the
    kiosk's `main` sets up its own handler on stderr)."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if needed:
        root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


def build_while_locked(w: Workspace) -> list[str]:
    """This test process holds the gallery's build lock, as a running build would, for the case's duration."""
    out = w.tmp / "gallery"
    w.holding = contextlib.ExitStack()
    w.holding.enter_context(build_lock(out))
    return ["index-builder", "build", str(w.corpus()), "--out", str(out)]


def build_while_locked_and_its_note_deleted(w: Workspace) -> list[str]:
    """As build_while_locked, with GALLERY.d/build.lock (the note naming the holder) deleted under it."""
    command = build_while_locked(w)
    (w.tmp / "gallery.d" / "build.lock").unlink()
    return command


def build_over_a_link_into_etc(w: Workspace) -> list[str]:
    """--out is a link someone made to a system file: never replaced by the gallery's link."""
    (w.tmp / "gallery").symlink_to("/etc/hostname")
    return ["index-builder", "build", str(w.corpus()), "--out", str(w.tmp / "gallery")]


def build_into_the_corpus(w: Workspace) -> list[str]:
    return ["index-builder", "build", str(w.corpus()), "--out", str(w.tmp / "corpus" / "gallery")]


def build_into_a_link_to_the_corpus(w: Workspace) -> list[str]:
    (w.tmp / "shortcut").symlink_to(w.corpus())
    return ["index-builder", "build", str(w.tmp / "corpus"), "--out", str(w.tmp / "shortcut" / "gallery")]


def build_a_corpus_inside_the_gallery_folder(w: Workspace) -> list[str]:
    return ["index-builder", "build", str(w.corpus("gallery.d/photos")), "--out", str(w.tmp / "gallery")]


def build_to_proc(w: Workspace) -> list[str]:
    return ["index-builder", "build", str(w.corpus()), "--out", "/proc/gallery"]  # read-only for root too


def build_under_a_file(w: Workspace) -> list[str]:
    return ["index-builder", "build", str(w.corpus()), "--out", str(w.photo / "gallery")]


def build_on_a_damaged_state(w: Workspace) -> list[str]:
    state = w.tmp / "gallery.d" / "work" / "state.sqlite"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"\0" * 4096)
    return ["index-builder", "build", str(w.corpus()), "--out", str(w.tmp / "gallery")]


def build_option(*option: str) -> Callable[[Workspace], list[str]]:
    return lambda w: ["index-builder", "build", "corpus", "--out", "gallery", *option]


def command(*argv: str) -> Callable[[Workspace], list[str]]:
    return lambda w: list(argv)


def install_zip(make: Callable[[Path, Path], Path]) -> Callable[[Workspace], list[str]]:
    """`models install` of a zip that `make` builds from the real test pack in the case's folder."""
    return lambda ws: ["index-builder", "models", "install", str(make(ws.tmp, need(MINI_PACK)))]


def headless_with_config(text: str, *options: str) -> Callable[[Workspace], list[str]]:
    """`kiosk --headless` on a real photo, with a config file holding `text`."""
    return lambda ws: ["kiosk", "--config", kiosk_config(ws, text), "--headless", "--image", str(ws.photo), *options]


def kiosk_config(ws: Workspace, text: str) -> str:
    """A kiosk config file holding `text`, in the case's own folder."""
    path = ws.tmp / "kiosk.toml"
    path.write_text(text + "\n", encoding="utf-8")
    return str(path)


def kiosk_toml_others_can_read(workspace: Workspace) -> list[str]:
    """`kiosk --headless` with a config holding a PIN hash that anyone may read (as an editor saves it)."""
    from kiosk.config import hash_pin

    config = kiosk_config(workspace, f'pin_hash = "{hash_pin("2468")}"')
    os.chmod(config, 0o644)
    return ["kiosk", "--config", config, "--headless", "--gallery", str(workspace.gallery()), "--image",
            str(workspace.photo)]
# galleries: damaged galleries (each damages a private copy; every command must say what is wrong)
def _halve(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _zero(path: Path) -> None:
    path.write_bytes(bytes(path.stat().st_size))


def _drop_manifest_key(gallery: Path, key: str) -> None:
    manifest = json.loads((gallery / "manifest.json").read_text())
    del manifest[key]
    (gallery / "manifest.json").write_text(json.dumps(manifest))


def _set_manifest(gallery: Path, section: str, key: str, value: object) -> None:
    manifest = json.loads((gallery / "manifest.json").read_text())
    manifest[section][key] = value
    (gallery / "manifest.json").write_text(json.dumps(manifest))


def _set_every_row(gallery: Path, column: str, value: object) -> None:
    db = sqlite3.connect(gallery / "metadata.sqlite")
    with db:
        db.execute(f"UPDATE faces SET {column} = ?", (value,))
    db.close()


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
    "fairness.lambda NaN": (lambda g: _set_manifest(g, "fairness", "lambda", float("nan")),
                            "manifest.json is damaged (fairness.lambda is nan, not a finite number)"),
    "deleted portraits": (lambda g: shutil.rmtree(g / "portraits"), "portraits/ is missing"),
    "deleted quality.npy its manifest names": (lambda g: (g / "quality.npy").unlink(), "quality.npy is missing"),
}
# Damaged rows are found where they are read: by a search (info reads no row).
ROW_DAMAGES: dict[str, tuple[Callable[[Path], object], str]] = {
    "NULL portrait rows": (lambda g: _set_every_row(g, "portrait", None), "its portrait is NULL"),
    "NULL identity rows": (lambda g: _set_every_row(g, "identity", None), "its identity is NULL"),
    "portrait paths outside the gallery": (lambda g: _set_every_row(g, "portrait", "../../../etc/passwd"),
                                           "its portrait '../../../etc/passwd' lies outside the gallery"),
}
GALLERY_COMMANDS: dict[str, Callable[[Path, Workspace], list[str]]] = {
    "search": lambda g, w: ["index-builder", "search", str(g), str(w.photo)],
    "info": lambda g, w: ["index-builder", "info", str(g)],
    "kiosk --headless": lambda g, w: ["kiosk", "--headless", "--gallery", str(g), "--image", str(w.photo)],
}


def on_damaged_gallery(damage: str, command: str) -> Callable[[Workspace], list[str]]:
    def make(workspace: Workspace) -> list[str]:
        gallery = workspace.gallery_copy()
        {**GALLERY_DAMAGES, **ROW_DAMAGES}[damage][0](gallery)
        return GALLERY_COMMANDS[command](gallery, workspace)
    return make


CASES: list[Case] = [
    # --- build: locks, corpus trees and manifests ---
    Case("build while another build holds the lock", build_while_locked, 3, "is being built by pid", child=True),
    Case("build while locked, build.lock deleted", build_while_locked_and_its_note_deleted, 3,
         "is being built by another build", child=True),
    Case("--out inside the corpus", build_into_the_corpus, 2, "puts the gallery inside the corpus"),
    Case("--out through a link into the corpus", build_into_a_link_to_the_corpus, 2,
         "puts the gallery inside the corpus"),
    Case("corpus inside the gallery's folder", build_a_corpus_inside_the_gallery_folder, 2,
         "inside the gallery's folder"),
    Case("--out in read-only /proc", build_to_proc, 2,
         "cannot write /proc/gallery.d: No such file or directory; the live gallery is unchanged"),
    Case("--out under a file", build_under_a_file, 2, "gallery.d: Not a directory"),
    Case("damaged build state", build_on_a_damaged_state, 2, "state.sqlite is damaged (file is not a database); "
         "rerun with --fresh"),
    Case("--out a link into /etc", build_over_a_link_into_etc, 2, "gallery is a link to '/etc/hostname', not to a "
         "version of this gallery"),
    Case("--index-param the factory lacks", build_option("--index", "Flat", "--index-param", "nprobe=8"), 2,
         "--index-param nprobe=8: a Flat index has no search parameter 'nprobe'"),
    Case("--index no factory", build_option("--index", "Bogus", "--index-param", "nprobe=8"), 2,
         "--index 'Bogus': not an index faiss can make"),
    Case("--index-param nprobe=nan", build_option("--index", "IVF64,Flat", "--index-param", "nprobe=nan"), 2,
         "argument --index-param: nprobe's value must be from 0 to 1,000,000,000, not nan"),
    Case("--workers 100000", build_option("--workers", "100000"), 2,
         "argument --workers: must be at most 256, not 100000"),
    Case("--shard-size 10**12", build_option("--shard-size", "1000000000000"), 2,
         "argument --shard-size: must be at most 1,000,000"),
    Case("--latency-budget 1e300", build_option("--latency-budget", "1e300"), 2,
         "argument --latency-budget: must be at most 60,000, not 1e300"),
    Case("--workers 0", build_option("--workers", "0"), 2, "argument --workers: must be 1 or more, not 0",
         child=True),
    Case("--workers -1", build_option("--workers", "-1"), 2, "argument --workers: must be 1 or more, not -1"),
    Case("--batch two", build_option("--batch", "two"), 2, "argument --batch: must be a whole number, not 'two'"),
    Case("--shard-size 0", build_option("--shard-size", "0"), 2, "argument --shard-size: must be 1 or more"),
    Case("--min-face -1", build_option("--min-face", "-1"), 2, "argument --min-face: must be 0 or more"),
    Case("--min-score 1.5", build_option("--min-score", "1.5"), 2, "argument --min-score: must be between 0 and 1"),
    Case("--latency-budget 0", build_option("--latency-budget", "0"), 2, "argument --latency-budget: must be above 0"),
    Case("search --k 0", command("index-builder", "search", "gallery", "photo.jpg", "--k", "0"), 2,
         "argument --k: must be 1 or more, not 0 (see index-builder search --help)"),
    Case("search --k 1000000000", command("index-builder", "search", "gallery", "photo.jpg", "--k", "1000000000"), 2,
         "argument --k: must be at most 1,000, not 1000000000"),
    Case("search --k -1", command("index-builder", "search", "gallery", "photo.jpg", "--k", "-1"), 2,
         "argument --k: must be 1 or more, not -1"),
    Case("bench e2e --repeats 0", command("index-builder", "bench", "e2e", "g", "--photos", "p", "--repeats", "0"), 2,
         "argument --repeats: must be 1 or more"),
    Case("bench exposure --synthetic 10**12", command("index-builder", "bench", "exposure", "g", "--synthetic",
                                                       "1000000000000"), 2, "argument --synthetic: must be at most"),
    Case("bench scale --sizes 100 0", command("index-builder", "bench", "scale", "--fit", "g", "--sizes", "100", "0"),
         2, "argument --sizes: must be 1 or more, not 0"),
    Case("manifest row repeating a path", lambda ws: ["index-builder", "build", str(ws.manifest(
        "corpus.csv", b"path,name\ncorpus/Zico/Zico_0001.jpg,Zico\ncorpus/Zico/Zico_0002.jpg,Zico\n"
        b"./corpus/Zico/Zico_0001.jpg,Somebody\n")), "--out", str(ws.tmp / "out"), "--workers", "1"],
        1, "line 4 repeats the path of line 2 (kept line 2)", slow=True),
    Case("manifest paths outside its folder", lambda ws: ["index-builder", "build", str(ws.manifest(
        "corpus.jsonl", b'{"path": "../../../../etc/hostname"}\n{"path": "/etc/passwd"}\n')),
        "--out", str(ws.tmp / "out")], 2, "its 2 rows were refused (outside_corpus 2)"),
    Case("folder tree of a symlink loop only", lambda ws: ["index-builder", "build", str(ws.looping_folder()),
                                                           "--out", str(ws.tmp / "out")],
        2, "1 folder(s) read (0 through symlinks), left out: symlink_loop 1"),
    Case("manifest: bad JSON on line 4", lambda ws: ["index-builder", "build", str(ws.manifest(
        "corpus.jsonl",
        b'{"path": "corpus/Zico/Zico_0001.jpg"}\n\n{"path": "corpus/Zico/Zico_0002.jpg"}\n{"path": \n')),
        "--out", str(ws.tmp / "out")], 2, "corpus.jsonl: line 4: not JSON"),
    Case("manifest: a JSON array line", lambda ws: ["index-builder", "build", str(ws.manifest(
        "corpus.jsonl", b'{"path": "corpus/Zico/Zico_0001.jpg"}\n["corpus/Zico/Zico_0002.jpg"]\n')),
        "--out", str(ws.tmp / "out")], 2, "line 2: an array, not an object"),
    Case("manifest: a number as path", lambda ws: ["index-builder", "build", str(ws.manifest(
        "corpus.jsonl", b'{"path": 5}\n')), "--out", str(ws.tmp / "out")], 2, "line 1: `path` is a number, not text"),
    Case("manifest: an empty path", lambda ws: ["index-builder", "build", str(ws.manifest(
        "corpus.csv", b"path,name\ncorpus/Zico/Zico_0001.jpg,Zico\n,Zico\n")), "--out", str(ws.tmp / "out")],
        2, "line 3: empty `path`"),
    Case("manifest: CSV with no path column", lambda ws: ["index-builder", "build", str(ws.manifest(
        "corpus.csv", b"file,name\ncorpus/Zico/Zico_0001.jpg,Zico\n")), "--out", str(ws.tmp / "out")],
        2, "line 1: no `path` column"),
    Case("manifest: UTF-16 CSV", lambda ws: ["index-builder", "build", str(ws.manifest(
        "corpus.csv", "path,name\ncorpus/Zico/Zico_0001.jpg,Zico\n".encode("utf-16"))), "--out", str(ws.tmp / "out")],
        2, "line 1: not UTF-8 text (save it as UTF-8)"),
    Case("manifest: Latin-1 CSV", lambda ws: ["index-builder", "build", str(ws.manifest(
        "corpus.csv", "path,name\ncorpus/Zico/Zico_0001.jpg,Zico\ncorpus/Zico/Zico_0002.jpg,José\n".encode("latin-1"))),
        "--out", str(ws.tmp / "out")], 2, "line 3: not UTF-8 text (save it as UTF-8)"),
    Case("manifest: a NUL byte", lambda ws: ["index-builder", "build", str(ws.manifest(
        "corpus.csv", b"path,name\ncorpus/Zico/Zico_0001.jpg\x00,Zico\n")), "--out", str(ws.tmp / "out")],
        2, "line 2: a NUL byte"),

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
         1, "5 file(s) or row(s) of the corpus are broken"),
    Case("search_fifo", lambda ws: ["index-builder", "search", str(ws.gallery()), special_file(ws, "fifo.jpg")],
         1, "fifo.jpg: a FIFO, not a regular file", child=True),
    Case("search_sparse_2gb", lambda ws: ["index-builder", "search", str(ws.gallery()), special_file(ws, "sparse.jpg")],
         1, "sparse.jpg: file too large (2048 MB)"),

    # --- galleries: damaged galleries ---
    *[Case(f"{damage}: {command}", on_damaged_gallery(damage, command), 2, says,
           child=(damage, command) == ("truncated index", "kiosk --headless"))
      for damage, (_, says) in GALLERY_DAMAGES.items() for command in GALLERY_COMMANDS],
    *[Case(f"{damage}: {command}", on_damaged_gallery(damage, command), 2, says)
      for damage, (_, says) in ROW_DAMAGES.items() for command in GALLERY_COMMANDS if command != "info"],
    Case("kiosk.toml holding the PIN hash, mode 0644", kiosk_toml_others_can_read, 0,
         "others could read it (mode 0644) and it holds the PIN hash: made it the owner's only (0600)"),
    Case("kiosk.toml over 1 MB", headless_with_config("# " + "x" * 1024 * 1024), 2, "over 1024 KB"),
    Case("kiosk.toml nested 5,000 deep", headless_with_config("lookalikes = " + "[" * 5000 + "]" * 5000), 2,
         "not a valid TOML file"),

    # --- kiosk and models: options, config, PIN, packs ---
    Case("set_pin_at_end_of_input", lambda ws: ["kiosk", "--config", kiosk_config(ws, 'lang = "en"'), "--set-pin"],
         2, "kiosk: no PIN given (end of input); nothing changed", stdin="", child=True),
    Case("pin_hash_malformed", headless_with_config('pin_hash = "pbkdf2_sha256$x$zz$00"'),
         2, "pin_hash must be a hash written by kiosk --set-pin"),
    Case("lookalikes_five", headless_with_config('lookalikes = "five"'),
         2, 'kiosk.toml: lookalikes must be an integer from 1 to 5, not "five"'),
    Case("lookalikes_minus_3", headless_with_config("lookalikes = -3"),
         2, "kiosk.toml: lookalikes must be an integer from 1 to 5, not -3"),
    Case("config_toml_syntax_error", headless_with_config('lang = "en"\nlookalikes = = 3'),
         2, "not a valid TOML file: Invalid value (at line 2, column 14)"),
    Case("kiosk_k_0", headless_with_config("", "--k", "0"),
         2, "kiosk: argument --k: must be a whole number from 1 to 100, not '0' (see kiosk --help)"),
    Case("kiosk_k_minus_1", headless_with_config("", "--k", "-1"),
         2, "kiosk: argument --k: must be a whole number from 1 to 100, not '-1' (see kiosk --help)"),
    Case("config_path_is_a_folder", lambda ws: ["kiosk", "--config", str(ws.tmp), "--headless", "--image",
                                                str(ws.photo)],
         2, "cannot read the config file: Is a directory"),

    Case("models_install_bad_crc",
         install_zip(bad_crc),
         2, "damaged or unsupported zip: Bad CRC-32"),
    Case("models_install_truncated_zip",
         install_zip(truncated),
         2, "not a folder or a complete zip file"),
    Case("models_install_absolute_entry",
         install_zip(absolute_entry),
         2, "'/tmp/evil.txt' has an absolute path or '..'; refused"),
    Case("models_install_garbage_onnx",
         install_zip(garbage_onnx),
         2, "w600k_r50.onnx: not a valid ONNX model"),
    Case("models_install_name_dotdot",
         lambda ws: ["index-builder", "models", "install", str(need(MINI_PACK)), "--name", ".."],
         2, "pack name '..': use 1 to 64 letters, digits"),
    Case("models_install_bomb_over_2gb", lambda ws: ["index-builder", "models", "install", bomb_over_the_cap(ws)],
         2, "unpacks to 2054 MB; a pack may have at most 2048 MB", slow=True),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else [])
                                  for c in CASES])
def test_hostile_input_gets_one_line_and_its_exit_code(case: Case, tmp_path: Path, galleries: Galleries,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    workspace = Workspace(tmp_path, galleries)  # kept alive: it may hold a lock for the case's duration
    argv = case.command(workspace)
    done = run(argv, tmp_path, case.stdin) if case.child else call(argv, tmp_path, case.stdin, monkeypatch, capsys)
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


# --- the kiosk's exposure ledger: a damaged file at the kiosk's own ledger path (issue 22, item 1) ---
# The kiosk reads its ledger in its window only, so these rows run the window's worker as it makes it
# (kiosk.link: Ledger() at $XDG_DATA_HOME/other-me/exposure.json) and serve one visitor: the visitor
# is served, the file is set aside as exposure.damaged, and one warning names the file and what is wrong.

def _ledger_with(count: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(f'{{"format": "other-me-exposure", "counts": {{"ab:0": {count}}}, '
                                        f'"people": {{"Zico": {count}}}}}')


LEDGER_DAMAGES: dict[str, tuple[Callable[[Path], object], str]] = {
    "ledger count over 2^63": (_ledger_with(str(2**63 + 5)), "is 9223372036854775813: a count is a whole number "
                                                             "from 0 to 2^53"),
    "ledger count 2^63-1": (_ledger_with(str(2**63 - 1)), "is 9223372036854775807: a count is a whole number"),
    "ledger count NaN": (_ledger_with("NaN"), "NaN is not a count"),
    "ledger count a float": (_ledger_with("2.5"), "is 2.5: a count is a whole number"),
    "ledger nested 100,000 deep": (lambda path: path.write_text(
        '{"format": "other-me-exposure", "counts": ' + "[" * 100_000 + "]" * 100_000 + "}"), "nested too deeply"),
    "ledger not JSON": (lambda path: path.write_bytes(b'{"format": "other-me-exp\xff'), "unreadable"),
    "ledger a list": (lambda path: path.write_text("[1, 2]"), "not an exposure ledger"),
    "ledger a FIFO": (os.mkfifo, "not a regular file"),
}


@pytest.mark.parametrize("damage", list(LEDGER_DAMAGES))
def test_a_damaged_ledger_is_set_aside_in_one_line_and_the_visitor_served(damage: str, tmp_path: Path,
                                                                        galleries: Galleries,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    import cv2

    from kiosk.ledger import Ledger
    from kiosk.worker import InferenceWorker

    for name, value in own_folders(tmp_path).items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "data" / "other-me" / "exposure.json"
    path.parent.mkdir(parents=True)
    make, says = LEDGER_DAMAGES[damage]
    make(path)
    with caplog.at_level(logging.WARNING):
        worker = InferenceWorker(str(galleries.built(PEOPLE) / "gallery"), "", "cpu", ledger=Ledger())
        worker.start_up()
        outcomes: list = []
        worker.searched.connect(outcomes.append)
        worker.search(cv2.imread(str(need(PHOTOS) / "fr_obama.jpg")), 5, 0.0)
    assert outcomes[0].pairs and not outcomes[0].failure, "the visitor is served"
    warned = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warned) == 1 and says in warned[0] and str(path) in warned[0], warned
    assert "set aside as exposure.damaged" in warned[0] and (path.parent / "exposure.damaged").exists()
