"""One build per gallery at a time, as git's index.lock intends but held by the OS: an exclusive
`flock` on GALLERY.d/build.lock. The OS drops the lock when its holder exits, even by kill -9, so
a stale file is never mistaken for a running build; the pid and start time written into it only
name the holder for the build that is refused. Readers (search, info, the kiosk) never take it.

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
from typing import TextIO

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
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as file:  # a+: opening must not erase the holder's pid before it is read
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(file)
            if not wait:
                raise BuildLocked(f"{out} is being built by {holder}; rerun with --wait to queue behind it") from None
            print(f"index-builder: {out} is being built by {holder}; waiting for it to finish",
                  file=sys.stderr, flush=True)
            fcntl.flock(file, fcntl.LOCK_EX)
        file.truncate(0)
        file.write(f"{os.getpid()} {datetime.now().isoformat(sep=' ', timespec='seconds')}\n")
        file.flush()
        try:
            yield
        finally:
            file.truncate(0)  # a free lock names nobody


def _holder(file: TextIO) -> str:
    """'pid 1234 since 2026-11-27 18:02:11', as the holder wrote it; it may not have written yet."""
    file.seek(0)
    pid, _, since = file.read(HOLDER_TEXT_LIMIT).strip().partition(" ")
    if not pid.isdigit():
        return "another build"
    return f"pid {pid} since {since}" if since and since.isprintable() else f"pid {pid}"
