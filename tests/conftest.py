"""Shared fixtures. Real data comes from ../shared beside the checkout; tests that need it skip with
the reason when it is absent (a user's fresh clone has none)."""
from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from kiosk.camera import CameraError, FolderSource

if TYPE_CHECKING:
    from kiosk.messages import SearchOutcome
    from kiosk.worker import InferenceWorker

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # Qt tests run without a screen

SHARED = Path(__file__).resolve().parents[2] / "shared"
PHOTOS = SHARED / "data" / "photos"
LFW = SHARED / "data" / "lfw"
MINI_PACK = SHARED / "models" / "insightface-mini"
PACKS = ("sface", "insightface-mini")


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


@pytest.fixture(autouse=True)
def own_state_home(monkeypatch, tmp_path: Path) -> None:
    """The kiosk's log is written to the test's folder, never the user's."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


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
