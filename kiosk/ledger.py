"""The exposure ledger: how often each gallery person, and each face, has been shown at this kiosk,
and nothing else (no visitor data). The fair policy uses the people's counts to break near-ties
toward the less-shown PEOPLE (a person with 40 photos is one person); the attract loop uses the
faces' counts to show the least-shown faces.

People are keyed by FaceRecord.person_key (the identity, or an unnamed face's own content key) and
faces by FaceRecord.content_key (the photo's SHA-1 and the face's number in it), so both survive a
rebuild of the gallery. They are written to the data folder, atomically (a temporary file, then
os.replace), at most every SAVE_SECONDS while visitors come and whenever a visitor has gone, so a
kill loses at most the last few seconds of counts. A ledger from before people were counted (faces
only) is read as it is, its people starting from nothing (one log line). A damaged file is set aside
(renamed *.damaged) with a warning, and counting starts afresh.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from face_engine.fairness import gini
from face_engine.gallery import FaceRecord
from kiosk.messages import ExposureSummary
from models.folders import APP, data_home

log = logging.getLogger(__name__)

FORMAT = "other-me-exposure"
SAVE_SECONDS = 5.0


def default_ledger_path() -> Path:
    return data_home() / APP / "exposure.json"


class Ledger:
    def __init__(self, path: Path | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path or default_ledger_path()
        self.clock = clock
        self.counts, self.people = self._read()  # showings per face (content key), per person (person key)
        self._saved_at = clock()
        self._unsaved = False
        self._changes = 0  # counted showings and resets: the staff panel's summary is recomputed only after one
        self._summary: tuple[int, list[str], ExposureSummary] | None = None

    def _read(self) -> tuple[dict[str, int], dict[str, int]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}, {}
        except (OSError, ValueError) as error:
            return self._start_afresh(f"unreadable ({error})")
        if not isinstance(data, dict) or data.get("format") != FORMAT or not _is_counts(data.get("counts")):
            return self._start_afresh("not an exposure ledger")
        if "people" not in data:
            log.info("exposure ledger %s counts faces only (an older ledger): people are counted from now on",
                     self.path)
            return data["counts"], {}
        if not _is_counts(data["people"]):
            return self._start_afresh("its people's counts are not counts")
        return data["counts"], data["people"]

    def _start_afresh(self, why: str) -> tuple[dict[str, int], dict[str, int]]:
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
        """Count one showing of each face and its person; written out when SAVE_SECONDS have passed
        since the last write."""
        for face in faces:
            self.counts[face.content_key] = self.counts.get(face.content_key, 0) + 1
            self.people[face.person_key] = self.people.get(face.person_key, 0) + 1
        self._unsaved = True
        self._changes += 1
        if self.clock() - self._saved_at >= SAVE_SECONDS:
            self.save()

    def save(self) -> None:
        """Write the counts now, atomically; a failed write is logged and retried on the next record."""
        temporary = self.path.with_suffix(".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "w", encoding="utf-8") as file:
                json.dump({"format": FORMAT, "counts": self.counts, "people": self.people}, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except OSError as error:
            log.warning("exposure ledger %s could not be written: %s", self.path, error)
            return
        self._saved_at, self._unsaved = self.clock(), False

    def flush(self) -> None:
        if self._unsaved:
            self.save()

    def forget(self, person_keys: Iterable[str], content_keys: Iterable[str]) -> None:
        """Drop every count of these people and faces (`index-builder forget`), written at once: a
        forgotten person leaves no trace here either."""
        dropped = [self.people.pop(key) for key in person_keys if key in self.people]
        dropped += [self.counts.pop(key) for key in content_keys if key in self.counts]
        if dropped:
            self._changes += 1
            self.save()

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
        counts = np.array([self.people.get(key, 0) for key in people], dtype=np.int64)
        summary = ExposureSummary(people=len(people), shown_people=int(np.count_nonzero(counts)),
                                  showings=int(counts.sum()),
                                  share_never_shown=float(np.mean(counts == 0)) if len(people) else 0.0,
                                  gini=gini(counts))
        self._summary = (self._changes, person_keys, summary)
        return summary


def _is_counts(counts: Any) -> bool:
    return isinstance(counts, dict) and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts.values())
