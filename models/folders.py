"""The user's folders, as the XDG base directory spec names them: $XDG_CONFIG_HOME, $XDG_DATA_HOME
and $XDG_STATE_HOME when set and not empty, else ~/.config, ~/.local/share and ~/.local/state.

It lives in models, the package every other one may import, so the kiosk and the model packs
share one rule without an import cycle.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
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


def write_atomically(path: Path, text: str | Iterable[str], private: bool = False, durable: bool = True) -> None:
    """`text` (or its pieces, for a large file) as the whole of `path`, or `path` unchanged: written to
    a temporary file beside it, flushed to disk, then swapped in, so neither a reader nor a crash ever
    sees half of it. `private`: readable by its owner only (a file that holds a PIN hash). `durable`:
    on disk before the swap (fsync); a file rewritten every few seconds anyway may skip that wait.
    Raises OSError, leaving no temporary file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")  # one per file: a crashed writer's is reused, not left to pile up
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        if private:
            os.fchmod(descriptor, 0o600)  # a file left by a crashed writer keeps its old mode
        with open(descriptor, "w", encoding="utf-8") as file:
            for piece in [text] if isinstance(text, str) else text:
                file.write(piece)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
