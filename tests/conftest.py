"""Shared fixtures. Real data comes from ../shared beside the checkout; tests that need it skip with
the reason when it is absent (a user's fresh clone has none)."""
from __future__ import annotations

import csv
import gc
import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from kiosk.camera import CameraError, FolderSource

if TYPE_CHECKING:
    from kiosk.messages import SearchOutcome
    from kiosk.worker import InferenceWorker

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # Qt tests run without a screen

# Property tests (tests/test_readers.py): "ci" (CI runs with CI=true) tries at least 1,000 damaged
# inputs per reader, "fast" a few; no example database is written into the checkout.
_PROPERTIES = {"deadline": None, "database": None, "print_blob": True,
               "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=1000, **_PROPERTIES)
settings.register_profile("fast", max_examples=30, **_PROPERTIES)
settings.load_profile("ci" if os.environ.get("CI") else "fast")

SHARED = Path(__file__).resolve().parents[2] / "shared"
PHOTOS = SHARED / "data" / "photos"
LFW = SHARED / "data" / "lfw"
MINI_PACK = SHARED / "models" / "insightface-mini"
PACKS = ("sface", "insightface-mini")
SMALL_GALLERY = {"Tony_Blair": 3, "Colin_Powell": 3, "Zico": 2}  # 8 faces of 3 people, shared by several modules


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: these tests use the shared test data beside the checkout")
    return path


def copy_lfw_people(target: Path, people: dict[str, int]) -> list[Path]:
    """A corpus folder tree: the first `count` LFW photos of each person, copied under `target`."""
    source = need(LFW) / "images_deepfunneled"
    copied = []
    for person, count in people.items():
        (target / person).mkdir(parents=True, exist_ok=True)
        for photo in sorted((source / person).iterdir())[:count]:
            copied.append(Path(shutil.copy(photo, target / person / photo.name)))
    return copied


FAST_TEST_SECONDS = 10.0  # a test not marked slow that takes longer belongs in the slow tier


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Names the tests outside the slow tier that took more than FAST_TEST_SECONDS."""
    over = sorted(((report.duration, report.nodeid) for report in terminalreporter.stats.get("passed", [])
                   if report.when == "call" and report.duration > FAST_TEST_SECONDS and "slow" not in report.keywords),
                  reverse=True)
    if over:
        terminalreporter.write_sep("-", f"not marked slow, yet over {FAST_TEST_SECONDS:g} s")
        for seconds, name in over:
            terminalreporter.write_line(f"{seconds:6.1f}s {name}")


@pytest.fixture(autouse=True)
def qt_garbage_collected_on_this_thread(request: pytest.FixtureRequest) -> Iterator[None]:
    """Cycles holding a QObject (a closed window's WorkerLink) are collected here, on the GUI thread.
    Left to the cyclic collector, they may be freed on whatever thread allocates next, such as the
    next test's inference thread; there the QObject's destructor holds Qt's connection lock while it
    waits for the GIL, which the GUI thread holds while it waits for that lock: a deadlock."""
    if "qtbot" not in request.fixturenames:
        yield
        return
    gc.collect()
    yield
    gc.collect()


@pytest.fixture(autouse=True)
def own_state_home(monkeypatch, tmp_path: Path) -> None:
    """The kiosk's log is written to the test's folder, never the user's."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture(autouse=True)
def no_log_handlers_left() -> Iterator[None]:
    """`kiosk.cli.main` run in this process sets up the kiosk's log: its handlers (one writing to the
    test's captured stderr) and the root level are taken back after the test."""
    from kiosk import log

    root = logging.getLogger()
    level = root.level
    yield
    for handler in log._installed:
        root.removeHandler(handler)
        handler.close()
    log._installed.clear()
    root.setLevel(level)


@pytest.fixture(scope="session")
def photos() -> Path:
    return need(PHOTOS)


@pytest.fixture(scope="session")
def manifest(photos: Path) -> list[dict[str, str]]:
    with open(photos / "MANIFEST.tsv", newline="") as file:
        return list(csv.DictReader(file, delimiter="\t"))


@pytest.fixture(scope="session")
def mini_pack() -> Path:
    return need(MINI_PACK)


_engines: dict = {}


def engine_for(pack_name: str):
    """One engine per pack for the whole session: loading and checking models takes a second."""
    from face_engine.engine import FaceEngine
    from models.packs import resolve_pack

    if pack_name not in _engines:
        source = pack_name if pack_name == "sface" else str(need(MINI_PACK))
        _engines[pack_name] = FaceEngine(resolve_pack(source), device="cpu")
    return _engines[pack_name]


@pytest.fixture(scope="session", params=PACKS)
def engine(request):
    return engine_for(request.param)


@pytest.fixture(scope="session")
def sface_engine():
    return engine_for("sface")


class Galleries:
    """Small real galleries built from LFW people, each built once per test run (the same people and
    options make the same gallery) and handed to each test as its own copy."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._built: dict[str, Path] = {}

    def built(self, people: dict[str, int], **options: Any) -> Path:
        """The folder holding `corpus`, the `gallery` link and `gallery.d`: read it, never change it."""
        from index_builder.build import BuildOptions, build

        key = repr((sorted(people.items()), sorted(options.items())))
        if key not in self._built:
            folder = self.root / f"gallery{len(self._built)}"
            copy_lfw_people(folder / "corpus", people)
            build(BuildOptions(corpus=folder / "corpus", out=folder / "gallery", workers=1, progress=False, **options))
            self._built[key] = folder
        return self._built[key]

    def copy(self, people: dict[str, int], target: Path, **options: Any) -> tuple[Path, Path]:
        """`corpus`, `gallery` and `gallery.d` copied into `target`, as if built there: free to change,
        rebuild or damage. Returns the corpus and the gallery link."""
        source = self.built(people, **options)
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)  # the link is relative: it follows
        move_recorded_paths(target, f"{source}/", f"{target}/")
        return target / "corpus", target / "gallery"


def move_recorded_paths(folder: Path, old: str, new: str) -> None:
    """The absolute paths a build recorded (photos in metadata.sqlite, corpus and out in the JSON
    files) changed from under `old` to under `new`, in every database and JSON file under `folder`."""
    for path in folder.rglob("*.json"):
        path.write_text(path.read_text(encoding="utf-8").replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1]),
                        encoding="utf-8")
    for path in folder.rglob("*.sqlite"):
        db = sqlite3.connect(path)
        with db:
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                for column in db.execute(f"PRAGMA table_info({table})").fetchall():
                    if column[2] == "TEXT":
                        db.execute(f"UPDATE {table} SET {column[1]} = replace({column[1]}, ?, ?)", (old, new))
        db.close()


@pytest.fixture(scope="session")
def galleries(tmp_path_factory: pytest.TempPathFactory) -> Galleries:
    need(LFW)
    return Galleries(tmp_path_factory.mktemp("galleries"))


class FlakyCamera(FolderSource):
    """A camera that can be unplugged and plugged back in by the test."""

    unplugged = False

    def open(self) -> None:
        if self.unplugged:
            raise CameraError("camera unplugged")
        super().open()

    def read(self) -> np.ndarray:
        if self.unplugged:
            raise CameraError("camera unplugged")
        return super().read()


def search(worker: InferenceWorker, frame: np.ndarray) -> SearchOutcome:
    """The worker's answer to one capture of `frame`, asked and taken on this thread."""
    outcomes: list[SearchOutcome] = []
    worker.searched.connect(outcomes.append)
    worker.search(frame, 5, 0.0)
    worker.searched.disconnect(outcomes.append)
    return outcomes[0]
