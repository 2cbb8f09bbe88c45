"""What each build of a gallery came to, for the staff who were not there: GALLERY.d/builds.json,
beside build.lock, holds the last HISTORY outcomes (when, exit code, faces added, removed and
skipped, how long), oldest first. Every `index-builder build` that got as far as the lock records
one, scheduled or not, on every way out; the kiosk's `--status` and its staff panel read the newest.

The file is rewritten whole into a temporary file and swapped in with os.replace, so a reader never
sees half of it; writers take an flock on GALLERY.d/build.lock (the file naming the build lock's
holder; the build lock itself is on GALLERY.d), because a build refused by the lock (exit 3) records
while the lock's holder may be recording too.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from face_engine.gallery import MANIFEST, METADATA_FILE
from index_builder.lock import lock_path
from index_builder.publish import gallery_home
from models.folders import write_atomically

log = logging.getLogger(__name__)

OUTCOMES_FILE = "builds.json"
HISTORY = 30  # outcomes kept: a month of nightly builds
RESULTS = {0: "published", 1: "published without its broken files", 2: "failed",
           3: "not run: another build held the lock", 130: "interrupted"}
SUCCESSES = (0, 1, 3)  # the exit codes that leave a sound gallery live, as the scheduled service's SuccessExitStatus


@dataclass(frozen=True)
class BuildOutcome:
    """One build's end. faces_added and faces_removed compare the live gallery before and after
    (None where the earlier version is gone); skipped counts the corpus's photos and rows left out,
    known only for a build that published or found the gallery up to date."""

    finished_at: str  # local time, ISO 8601 with its offset
    exit_code: int
    result: str
    ok: bool
    faces_added: int | None
    faces_removed: int | None
    skipped: int | None
    gallery_faces: int | None  # what the live gallery holds after the build, published by it or not
    seconds: float
    error: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BuildOutcome:
        known = {field.name for field in fields(cls)}
        return cls(**{name: value for name, value in data.items() if name in known})

    def summary(self) -> str:
        """One line for a person: when, what happened, and the counts."""
        counts = ", ".join(f"{what} {'?' if count is None else count}" for what, count in (
            ("added", self.faces_added), ("removed", self.faces_removed), ("skipped", self.skipped)))
        error = f": {self.error}" if self.error else ""
        return f"{self.finished_at[:19].replace('T', ' ')} {self.result} (exit {self.exit_code}){error}; " \
               f"faces {counts}; took {self.seconds:.0f} s"


class BuildRecording:
    """Times one build of the gallery `out` from its creation; `finish` records how it ended."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.started = time.monotonic()
        self.before = live_version(out)

    def finish(self, exit_code: int, error: str = "", crashed: bool = False) -> BuildOutcome | None:
        """Record the outcome; never raises, so recording cannot change how the build ends. None
        when nothing was recorded: a build refused before it reached the lock (a gallery inside its
        corpus, an --out that cannot be made) leaves no trace, in GALLERY.d or anywhere."""
        if not _lock_tried(self.out):
            return None
        after = live_version(self.out)
        added, removed = faces_changed(self.before, after)
        if exit_code == 0 and after == self.before:
            added, removed = 0, 0
        outcome = BuildOutcome(
            finished_at=datetime.now().astimezone().isoformat(timespec="seconds"), exit_code=exit_code,
            result="crashed" if crashed else _result(exit_code, after != self.before),
            ok=exit_code in SUCCESSES and not crashed, faces_added=added, faces_removed=removed,
            skipped=_skipped(after) if exit_code in (0, 1) and not crashed else None,
            gallery_faces=_manifest(after).get("count") if after else None,
            seconds=round(time.monotonic() - self.started, 2), error=error)
        try:
            record(self.out, outcome)
        except OSError as problem:
            log.warning("the build's outcome could not be recorded in %s: %s", gallery_home(self.out), problem)
            return None
        return outcome


def _lock_tried(out: Path) -> bool:
    try:
        return lock_path(out).is_file()
    except OSError:
        return False


def _result(exit_code: int, published: bool) -> str:
    if exit_code == 0 and not published:
        return "up to date"
    return RESULTS.get(exit_code, f"exit {exit_code}")


def live_version(out: Path) -> Path | None:
    """The version folder the gallery link points at now, or None where there is none."""
    try:
        return Path(os.path.realpath(out)) if out.is_symlink() and out.exists() else None
    except OSError:  # a name too long, a folder not readable: there is no gallery to compare with
        return None


def faces_changed(before: Path | None, after: Path | None) -> tuple[int | None, int | None]:
    """Faces (by content key) in `after` and not in `before`, and the other way round."""
    if after is None or before == after:
        return 0, 0
    try:
        with closing(sqlite3.connect(f"{(after / METADATA_FILE).as_uri()}?mode=ro", uri=True)) as db:
            if before is None:
                return db.execute("SELECT COUNT(*) FROM faces").fetchone()[0], 0
            db.execute("ATTACH DATABASE ? AS before", (f"{(before / METADATA_FILE).as_uri()}?mode=ro",))
            return _only_in(db, "main", "before"), _only_in(db, "before", "main")
    except sqlite3.Error as error:  # the earlier version was pruned or damaged: unknown, not zero
        log.info("faces added and removed unknown: %s", error)
        return None, None


def _only_in(db: sqlite3.Connection, first: str, second: str) -> int:
    keys = "SELECT photo_sha1, photo_face FROM {}.faces"
    query = f"SELECT COUNT(*) FROM ({keys.format(first)} EXCEPT {keys.format(second)})"
    return int(db.execute(query).fetchone()[0])


def _manifest(version: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((version / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _skipped(version: Path | None) -> int | None:
    skipped = _manifest(version).get("build", {}).get("skipped") if version else None
    return sum(skipped.values()) if isinstance(skipped, dict) else None


def outcomes_path(out: Path) -> Path:
    return gallery_home(out) / OUTCOMES_FILE


def record(out: Path, outcome: BuildOutcome) -> None:
    """Append `outcome` to the gallery's history, keeping the newest HISTORY. Raises OSError when
    GALLERY.d does not exist or cannot be written."""
    path = outcomes_path(out)
    with _locked(lock_path(out)):
        kept = [asdict(earlier) for earlier in history(out)][-(HISTORY - 1):]
        write_atomically(path, json.dumps([*kept, asdict(outcome)], indent=1, ensure_ascii=False) + "\n")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    descriptor = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def history(out: Path) -> list[BuildOutcome]:
    """The recorded outcomes of gallery `out`, oldest first; none where the file is absent or
    damaged (a damaged history is started afresh by the next build, never fatal)."""
    try:
        entries = json.loads(outcomes_path(out).read_text(encoding="utf-8"))
        return [BuildOutcome.from_json(entry) for entry in entries]
    except (OSError, ValueError, TypeError, AttributeError):
        return []


def last_outcome(out: Path) -> BuildOutcome | None:
    outcomes = history(out)
    return outcomes[-1] if outcomes else None
