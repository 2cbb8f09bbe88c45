"""The user's folders: one XDG rule shared by the kiosk's config, the demo gallery, autostart and the model packs."""
from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.cli import install_autostart
from kiosk.config import default_config_path
from kiosk.demo import demo_home
from models.folders import config_home, data_home
from models.packs import models_dir


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for variable in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "OTHERME_MODELS_DIR"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path / "home"


def test_without_the_variables_the_standard_folders_under_home_are_used(home: Path):
    assert config_home() == home / ".config"
    assert data_home() == home / ".local" / "share"


def test_an_empty_variable_counts_as_unset(home: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", "")
    monkeypatch.setenv("XDG_DATA_HOME", "")
    assert (config_home(), data_home()) == (home / ".config", home / ".local" / "share")


def test_every_user_folder_follows_the_variables(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_config_path() == tmp_path / "config" / "other-me" / "kiosk.toml"
    assert demo_home() == tmp_path / "data" / "other-me" / "demo"
    assert models_dir() == tmp_path / "data" / "other-me" / "models"
    assert install_autostart(default_config_path()) == 0
    assert (tmp_path / "config" / "autostart" / "other-me-kiosk.desktop").is_file()
    assert not home.exists(), "nothing is written under HOME when the variables point elsewhere"
