"""One build per gallery at a time, as git's index.lock intends but held by the OS: an exclusive
`flock` on the gallery's folder GALLERY.d itself. The OS drops the lock when its holder exits, even
by kill -9, so a stale file is never mistaken for a running build. The lock is on the folder, not on
a file in it, because a file can be deleted under a running build (a second build would then lock
a new file and get in); GALLERY.d/build.lock only names the holder (its pid and start time) for the
build that is refused. Readers (search, info, the kiosk) never take the lock.

The lock sits beside work/, not in it: `--fresh` deletes work/, and does so only under the lock.
"""
from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from index_builder.publish import gallery_home

LOCK_FILE = "build.lock"
HOLDER_TEXT_LIMIT = 80  # the file is only ever ours, but a damaged one must not flood the message


class BuildLocked(RuntimeError):
    """Another build holds the gallery's lock; nothing was changed."""


def lock_path(out: Path) -> Path:
    return gallery_home(out) / LOCK_FILE


@contextmanager
def build_lock(out: Path, wait: bool = False) -> Iterator[None]:
    """Hold the build lock of gallery `out` for the block. Raises BuildLocked when another build
    holds it, or with `wait` blocks until that build ends (saying so once on stderr)."""
    home = gallery_home(out)
    home.mkdir(parents=True, exist_ok=True)
    folder = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _lock(folder, out, wait)
        with _holder_note(lock_path(out)):
            yield
    finally:
        os.close(folder)  # closing the last descriptor of the folder drops the lock


def _lock(folder: int, out: Path, wait: bool) -> None:
    try:
        fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(lock_path(out))
        if not wait:
            raise BuildLocked(f"{out} is being built by {holder}; rerun with --wait to queue behind it") from None
        print(f"index-builder: {out} is being built by {holder}; waiting for it to finish",
              file=sys.stderr, flush=True)
        fcntl.flock(folder, fcntl.LOCK_EX)


@contextmanager
def _holder_note(path: Path) -> Iterator[None]:
    """build.lock names this process while the block runs, and nobody after."""
    with open(path, "w") as file:
        file.write(f"{os.getpid()} {datetime.now().isoformat(sep=' ', timespec='seconds')}\n")
        file.flush()
        try:
            yield
        finally:
            file.truncate(0)  # a free lock names nobody


def _holder(path: Path) -> str:
    """'pid 1234 since 2026-11-27 18:02:11', as the holder wrote it; it may not have written yet, or
    its note may have been deleted."""
    try:
        with open(path) as file:
            pid, _, since = file.read(HOLDER_TEXT_LIMIT).strip().partition(" ")
    except (OSError, UnicodeDecodeError):
        return "another build"
    if not pid.isdigit():
        return "another build"
    return f"pid {pid} since {since}" if since and since.isprintable() else f"pid {pid}"
