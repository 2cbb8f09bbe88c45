"""The user's folders, as the XDG base directory spec names them: $XDG_CONFIG_HOME, $XDG_DATA_HOME
and $XDG_STATE_HOME when set and not empty, else ~/.config, ~/.local/share and ~/.local/state.

It lives in models, the package every other one may import, so the kiosk and the model packs
share one rule without an import cycle.
"""
from __future__ import annotations

import os
from pathlib import Path

APP = "other-me"
"""The folder inside each base folder that holds this project's files."""


def config_home() -> Path:
    return _base("XDG_CONFIG_HOME", Path(".config"))


def data_home() -> Path:
    return _base("XDG_DATA_HOME", Path(".local", "share"))


def state_home() -> Path:
    """Where logs go: kept between runs, but not worth a backup."""
    return _base("XDG_STATE_HOME", Path(".local", "state"))


def _base(variable: str, default_under_home: Path) -> Path:
    return Path(os.environ.get(variable) or Path.home() / default_under_home)
