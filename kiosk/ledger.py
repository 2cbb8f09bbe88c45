"""The exposure ledger: how often each gallery person, and each face, has been shown at this kiosk,
and nothing else (no visitor data). The fair policy uses the people's counts to break near-ties
toward the less-shown PEOPLE (a person with 40 photos is one person); the attract loop uses the
faces' counts to show the least-shown faces.

People are keyed by FaceRecord.person_key (the identity, or an unnamed face's own content key) and
faces by FaceRecord.content_key (the photo's SHA-1 and the face's number in it), so both survive a
rebuild of the gallery; `keep_only` drops the entries of people and faces a new gallery no longer
holds, so the ledger never outgrows the gallery it serves.

The counts are written to the data folder at most every SAVE_SECONDS while visitors come and
whenever a visitor has gone: the inference thread only copies them (a snapshot), and one writer
thread per file writes the newest snapshot atomically (a temporary file, then os.replace), so a
kill loses at most the last few seconds of counts and a visitor never waits for the disk. A write
that fails (a full disk) is said once, counting goes on in memory, and it is retried.

A ledger from before people were counted (faces only) is read as it is, its people starting from
nothing (one log line). Every count is checked where it is read: a whole number from 0 to MAX_COUNT.
A damaged file (not JSON, nested too deeply, too large, a count out of range, of another type or not
finite) is set aside (renamed *.damaged) with one warning naming the file and what is wrong, and
counting starts afresh; the kiosk keeps serving.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import stat
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from face_engine.fairness import gini
from face_engine.gallery import FaceRecord
from kiosk.log import SaidOnce
from kiosk.messages import ExposureSummary
from models.folders import APP, data_home, write_atomically

log = logging.getLogger(__name__)

FORMAT = "other-me-exposure"
SAVE_SECONDS = 5.0
MAX_COUNT = 2**53  # a count past this is no count of showings (and a float could no longer hold it exactly)
MAX_BYTES = 2**30  # a larger file is no ledger of any gallery this kiosk can open
CHUNK = 2_000  # entries encoded at a time: the writer lets go of Python's lock between chunks

Counts = dict[str, int]


def default_ledger_path() -> Path:
    return data_home() / APP / "exposure.json"


class LedgerDamaged(ValueError):
    """What is wrong with a ledger file, in words."""


class Ledger:
    def __init__(self, path: Path | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path or default_ledger_path()
        self.clock = clock
        self._writer = writer_for(self.path)
        self._writer.wait()  # this process's last write of the file is read, not a half-written one
        self.counts, self.people = self._read()  # showings per face (content key), per person (person key)
        self._saved_at = clock()
        self._changes = 0  # counted showings, resets and prunes: the staff panel's summary is recomputed only after one
        self._handed = 0  # the changes in the last snapshot given to the writer
        self._summary: tuple[int, list[str], ExposureSummary] | None = None

    def _read(self) -> tuple[Counts, Counts]:
        try:
            data = read_ledger(self.path)
        except FileNotFoundError:
            return {}, {}
        except LedgerDamaged as damage:
            return self._start_afresh(str(damage))
        if data.get("people") is None:
            log.info("exposure ledger %s counts faces only (an older ledger): people are counted from now on",
                     self.path)
            return data["counts"], {}
        return data["counts"], data["people"]

    def _start_afresh(self, why: str) -> tuple[Counts, Counts]:
        aside = self.path.with_suffix(".damaged")
        try:
            os.replace(self.path, aside)
        except OSError:
            aside = self.path  # it stays, and is replaced on the first write
        log.warning("exposure ledger %s is damaged (%s): set aside as %s, counting starts afresh", self.path, why,
                    aside.name)
        return {}, {}

    def shown(self, person_keys: list[str]) -> list[int]:
        """Times each person (FaceRecord.person_key) was shown so far, whichever of their faces: the
        policy's `counts`."""
        return [self.people.get(key, 0) for key in person_keys]

    def faces_shown(self, content_keys: list[str]) -> list[int]:
        """Times each face (FaceRecord.content_key) was shown so far: the attract loop's least shown."""
        return [self.counts.get(key, 0) for key in content_keys]

    def record(self, faces: list[FaceRecord]) -> None:
        """Count one showing of each face and its person; handed to the writer when SAVE_SECONDS
        have passed since the last hand-over."""
        for face in faces:
            self.counts[face.content_key] = min(self.counts.get(face.content_key, 0) + 1, MAX_COUNT)
            self.people[face.person_key] = min(self.people.get(face.person_key, 0) + 1, MAX_COUNT)
        self._changes += 1
        if self.clock() - self._saved_at >= SAVE_SECONDS:
            self.save(wait=False)

    def save(self, wait: bool = True) -> bool:
        """Hand a copy of the counts to the file's writer thread; with `wait`, return once it is on
        disk (True) or failed (False, logged). A failed write is retried on a later save."""
        self._handed, self._saved_at = self._changes, self.clock()
        generation = self._writer.hand({"format": FORMAT, "counts": dict(self.counts), "people": dict(self.people)})
        return self._writer.wait(generation) if wait else True

    def flush(self, wait: bool = True) -> None:
        """Save whatever was counted since the last save (the visitor has gone, or the kiosk closes);
        with `wait`, return once it is on disk."""
        if self._changes != self._handed or self._writer.trouble.failing:
            self.save(wait)
        elif wait:
            self._writer.wait()

    def forget(self, person_keys: Iterable[str], content_keys: Iterable[str]) -> None:
        """Drop every count of these people and faces (`index-builder forget`), written at once: a
        forgotten person leaves no trace here either."""
        dropped = [self.people.pop(key) for key in person_keys if key in self.people]
        dropped += [self.counts.pop(key) for key in content_keys if key in self.counts]
        if dropped:
            self._changes += 1
            self.save()

    def keep_only(self, person_keys: Iterable[str], content_keys: Iterable[str]) -> int:
        """Drop the entries of people and faces not in these (the gallery just swapped in), so the
        ledger never outgrows its gallery; written on the next save. Returns the entries dropped."""
        people, faces = set(person_keys), set(content_keys)
        before = len(self.people) + len(self.counts)
        self.people = {key: n for key, n in self.people.items() if key in people}
        self.counts = {key: n for key, n in self.counts.items() if key in faces}
        dropped = before - len(self.people) - len(self.counts)
        if dropped:
            self._changes += 1
        return dropped

    def reset(self) -> None:
        self.counts.clear()
        self.people.clear()
        self._changes += 1
        self.save()

    def summary(self, person_keys: list[str]) -> ExposureSummary:
        """For the people of the current gallery (every face's FaceRecord.person_key, in gallery
        order): how many were shown, the share never shown and the Gini coefficient of their counts.
        Kept until the next showing: the staff panel asks every second, and at 10^6 faces the answer
        takes a second of the inference thread."""
        if self._summary is not None and self._summary[0] == self._changes and self._summary[1] is person_keys:
            return self._summary[2]
        people = list(dict.fromkeys(person_keys))
        shown = [self.people.get(key, 0) for key in people]
        counts = np.array(shown, dtype=np.float64)  # a sum of many counts may pass 2^63: Python sums them exactly
        summary = ExposureSummary(people=len(people), shown_people=int(np.count_nonzero(counts)),
                                  showings=sum(shown),
                                  share_never_shown=float(np.mean(counts == 0)) if len(people) else 0.0,
                                  gini=gini(counts))
        self._summary = (self._changes, person_keys, summary)
        return summary


def read_ledger(path: Path) -> dict[str, Any]:
    """The ledger file's {"format", "counts", "people"} (people None in a ledger of faces only), every
    count checked; FileNotFoundError when there is none, LedgerDamaged saying what is wrong otherwise."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise LedgerDamaged("not a regular file")
        if info.st_size > MAX_BYTES:
            raise LedgerDamaged(f"{info.st_size} bytes: a ledger has at most {MAX_BYTES}")
        data = json.loads(path.read_bytes(), parse_constant=_no_constant)
    except FileNotFoundError:
        raise
    except RecursionError:
        raise LedgerDamaged("nested too deeply") from None
    except (OSError, ValueError) as error:
        raise LedgerDamaged(f"unreadable: {_short(error)}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LedgerDamaged("not an exposure ledger")
    for section in ("counts", "people"):
        if section != "people" or data.get(section) is not None:
            _check_counts(section, data.get(section))
    return {"format": FORMAT, "counts": data["counts"], "people": data.get("people")}


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a count")


def _check_counts(section: str, counts: Any) -> None:
    if not isinstance(counts, dict):
        raise LedgerDamaged(f"{section} is {type(counts).__name__}, not an object of counts")
    for key, n in counts.items():
        if type(n) is not int or not 0 <= n <= MAX_COUNT:
            raise LedgerDamaged(f"{section}[{_short(key)}] is {_short(n)}: a count is a whole number from 0 to "
                                f"2^53")


def _short(value: Any) -> str:
    """A value as a log line may quote it: one line, at most 60 characters."""
    text = repr(value) if not isinstance(value, BaseException) else str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= 60 else text[:57] + "..."


def encoded(snapshot: dict[str, Any]) -> Iterator[str]:
    """The ledger's JSON text in pieces of CHUNK entries (what json.dumps writes, whole)."""
    yield f'{{"format": {json.dumps(snapshot["format"])}'
    for section in ("counts", "people"):
        yield f', "{section}": {{'
        items = iter(snapshot[section].items())
        first = True
        while chunk := dict(itertools.islice(items, CHUNK)):
            yield ("" if first else ", ") + json.dumps(chunk)[1:-1]
            first = False
        yield "}"
    yield "}"


class Writer:
    """The one thread that writes a ledger file: the newest snapshot handed to it is written, an
    older one it has not begun is dropped. One per file in a process, so two writes never race."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._turn = threading.Condition()
        self._pending: tuple[int, dict[str, Any]] | None = None
        self._handed = self._done = self._written = 0  # generations: handed over, finished, written whole
        self.trouble = SaidOnce(log.warning, f"exposure ledger {path} is written again")
        self._thread: threading.Thread | None = None

    def hand(self, snapshot: dict[str, Any]) -> int:
        with self._turn:
            self._handed += 1
            self._pending = (self._handed, snapshot)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="ledger-writer")
                self._thread.start()
            self._turn.notify_all()
            return self._handed

    def wait(self, generation: int | None = None) -> bool:
        """Until `generation` (else every snapshot handed over) is written or failed: True if written."""
        with self._turn:
            generation = self._handed if generation is None else generation
            self._turn.wait_for(lambda: self._done >= generation)
            return self._written >= generation

    def _run(self) -> None:
        """Write snapshots until none is left, then end (the next hand-over starts another thread)."""
        while True:
            with self._turn:
                if self._pending is None:
                    self._thread = None
                    return
                (generation, snapshot), self._pending = self._pending, None
            ok = self._write(snapshot)
            with self._turn:
                self._done = generation
                if ok:
                    self._written = generation
                self._turn.notify_all()

    def _write(self, snapshot: dict[str, Any]) -> bool:
        try:
            write_atomically(self.path, encoded(snapshot))
        except OSError as error:  # said once: a full disk fails every retry
            self.trouble.failed(f"exposure ledger {self.path} could not be written ({error.strerror or error}): "
                                "counting goes on in memory and the write is retried")
            return False
        self.trouble.ended()
        return True


_writers: weakref.WeakValueDictionary[Path, Writer] = weakref.WeakValueDictionary()  # kept by ledgers and writes
_writers_lock = threading.Lock()


def writer_for(path: Path) -> Writer:
    """This process's one writer of the file at `path`."""
    with _writers_lock:
        writer = _writers.get(path.absolute())
        if writer is None:
            writer = _writers[path.absolute()] = Writer(path)
        return writer
