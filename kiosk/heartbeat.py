"""The booth seen from another room: the running kiosk writes $XDG_STATE_HOME/other-me/heartbeat.json
every BEAT_SECONDS (state, uptime, gallery, visits today, results latency, frame rates, camera,
last error: counts and settings only, never anything about a visitor), and `kiosk --status` reads
it beside the gallery's last build outcome, with an exit status a monitoring system can alert on:
0 healthy, 1 degraded (heartbeat older than STALE_SECONDS, camera lost, last build failed), 2 no
kiosk (no heartbeat, its process gone, or closed).

The file is written whole to a temporary file and swapped in with os.replace: a reader never sees
half of it.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QWidget

from index_builder.outcome import BuildOutcome, last_outcome
from kiosk.flow import Flow
from kiosk.log import SaidOnce
from kiosk.messages import WorkerInfo
from kiosk.rates import Tally
from models.folders import APP, state_home, write_atomically

log = logging.getLogger(__name__)

BEAT_SECONDS = 5.0
STALE_SECONDS = 60.0  # a heartbeat older than this: the kiosk hangs, or its disk is full
LATENCY_VISITS = 200  # the p95 covers the last this many results shown
HEALTHY, DEGRADED, ABSENT = 0, 1, 2
VERDICTS = {HEALTHY: "healthy", DEGRADED: "degraded", ABSENT: "no kiosk"}
CLOSED = "closed"  # the state a kiosk that closed normally leaves behind


def heartbeat_path() -> Path:
    return state_home() / APP / "heartbeat.json"


@dataclass(frozen=True)
class Pulse:
    """What one heartbeat says: the file's JSON object."""

    written_at: float  # time.time()
    pid: int
    state: str  # the Flow's state ("attract", "results"...), "staff" while the panel is open, or "closed"
    uptime_seconds: float
    gallery: str = ""  # the version folder the worker serves
    gallery_faces: int = 0
    gallery_built_at: str = ""
    day: str = ""  # the date visits_today counts
    visits_today: int = 0
    p95_latency_ms: float | None = None  # from a capture to its results on screen
    fps: dict[str, float] = field(default_factory=dict)  # camera, drawn, analysed
    camera_ok: bool = True
    camera_problem: str = ""
    last_error: str = ""  # the last warning or error the kiosk logged, with its time

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pulse:
        known = {item.name for item in fields(cls)}
        return cls(**{name: value for name, value in data.items() if name in known})


class LastError(logging.Handler):
    """Keeps the last warning or error logged anywhere in the kiosk, as one line with its time."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.line = ""

    def emit(self, record: logging.LogRecord) -> None:
        when = datetime.fromtimestamp(record.created).isoformat(sep=" ", timespec="seconds")
        self.line = f"{when} {record.levelname} {record.getMessage()}"[:500]


class Heartbeat:
    """The heartbeat file of this kiosk process: what it says now, written whole."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or heartbeat_path()
        self.started = time.monotonic()
        self.day = date.today().isoformat()
        self.visits_before_today = -self._visits_earlier_today()
        self.errors = LastError()
        self.trouble = SaidOnce(log.warning, f"heartbeat {self.path} is written again")
        logging.getLogger().addHandler(self.errors)

    def _visits_earlier_today(self) -> int:
        """Visits today by this kiosk before it (re)started, so a restart does not reset the count."""
        pulse = read_heartbeat(self.path)
        return pulse.visits_today if pulse and pulse.day == self.day else 0

    def pulse(self, state: str, flow: Flow, tally: Tally, info: WorkerInfo) -> Pulse:
        today = date.today().isoformat()
        if today != self.day:  # midnight: today's visits start from here
            self.day, self.visits_before_today = today, tally.visits
        latencies = tally.results_latency_ms[-LATENCY_VISITS:]
        return Pulse(
            written_at=time.time(), pid=os.getpid(), state=state,
            uptime_seconds=round(time.monotonic() - self.started, 1), gallery=info.gallery,
            gallery_faces=info.faces, gallery_built_at=info.built_at, day=self.day,
            visits_today=tally.visits - self.visits_before_today,
            p95_latency_ms=round(float(np.percentile(latencies, 95)), 1) if latencies else None,
            fps={name: round(rate, 1) for name, rate in tally.rates.last.items()},
            camera_ok=not flow.camera_problem, camera_problem=flow.camera_problem, last_error=self.errors.line)

    def write(self, pulse: Pulse) -> None:
        try:
            # on the GUI thread, and rewritten in 5 s anyway: no wait for the disk
            write_atomically(self.path, json.dumps(asdict(pulse), ensure_ascii=False), durable=False)
        except OSError as error:  # a full disk must not stop the booth; the heartbeat goes stale instead
            self.trouble.failed(f"heartbeat not written to {self.path}: {error}")
            return
        self.trouble.ended()

    def stop(self, flow: Flow, tally: Tally, info: WorkerInfo) -> None:
        """The last heartbeat: the kiosk closed on purpose, so no kiosk is running."""
        logging.getLogger().removeHandler(self.errors)
        self.write(self.pulse(CLOSED, flow, tally, info))


class StaffView(Protocol):
    @property
    def is_open(self) -> bool: ...

    @property
    def info(self) -> WorkerInfo: ...


class Booth(Protocol):
    """What the heartbeat reads of the kiosk window (kiosk.window imports this module, not the reverse)."""

    @property
    def flow(self) -> Flow: ...

    @property
    def tally(self) -> Tally: ...

    @property
    def staff_panel(self) -> StaffView: ...


class WindowHeartbeat(QObject):
    """The window's heartbeat, every BEAT_SECONDS from a timer of the GUI thread (a hung window
    stops beating), and "closed" when the window closes."""

    def __init__(self, window: QWidget, path: Path | None = None) -> None:
        """`window` is the kiosk window: a Booth, read when it beats (it is still being made now)."""
        super().__init__(window)
        self.window, self.booth, self.heartbeat = window, cast(Booth, window), Heartbeat(path)
        # PySide6 takes a signal's slot as a keyword (timeout=); its stubs know only the properties
        self.timer = QTimer(self, interval=int(BEAT_SECONDS * 1000), timeout=self.beat)  # type: ignore[call-arg]
        self.timer.start()
        window.installEventFilter(self)

    def beat(self) -> None:
        booth = self.booth
        state = "staff" if booth.staff_panel.is_open else booth.flow.state.value
        self.heartbeat.write(self.heartbeat.pulse(state, booth.flow, booth.tally, booth.staff_panel.info))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.window and event.type() == QEvent.Type.Close and self.timer.isActive():
            self.timer.stop()
            self.heartbeat.stop(self.booth.flow, self.booth.tally, self.booth.staff_panel.info)
        return False


def read_heartbeat(path: Path | None = None) -> Pulse | None:
    """The last heartbeat written, or None where there is none (or it cannot be read)."""
    try:
        return Pulse.from_json(json.loads((path or heartbeat_path()).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class Verdict:
    code: int
    problems: list[str]
    pulse: Pulse | None
    age_seconds: float | None
    last_build: BuildOutcome | None

    def to_json(self) -> dict[str, Any]:
        return {"status": VERDICTS[self.code], "exit_code": self.code, "problems": self.problems,
                "heartbeat_age_seconds": self.age_seconds, "heartbeat": asdict(self.pulse) if self.pulse else None,
                "last_build": asdict(self.last_build) if self.last_build else None}


def judge(pulse: Pulse | None, last_build: BuildOutcome | None, now: float) -> Verdict:
    """How the booth stands, from its heartbeat and its gallery's last build outcome."""
    age = round(now - pulse.written_at, 1) if pulse else None
    if pulse is None or age is None:
        return Verdict(ABSENT, [f"no heartbeat at {heartbeat_path()}: the kiosk is not running"], None, None,
                       last_build)
    if pulse.state == CLOSED:
        return Verdict(ABSENT, ["the kiosk was closed"], pulse, age, last_build)
    if not _running(pulse.pid):
        return Verdict(ABSENT, [f"the kiosk (pid {pulse.pid}) is no longer running"], pulse, age, last_build)
    problems = []
    if age > STALE_SECONDS:
        problems.append(f"the heartbeat is {age:.0f} s old: the kiosk may hang")
    if not pulse.camera_ok:
        problems.append(f"camera lost: {pulse.camera_problem}")
    if last_build is not None and not last_build.ok:
        problems.append(f"the last build {last_build.result}: {last_build.error}".rstrip(": "))
    return Verdict(DEGRADED if problems else HEALTHY, problems, pulse, age, last_build)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def status(gallery: str, as_json: bool) -> int:
    """`kiosk --status`: print the verdict, return its exit status."""
    verdict = judge(read_heartbeat(), last_outcome(Path(gallery)) if gallery else None, time.time())
    if as_json:
        print(json.dumps(verdict.to_json(), ensure_ascii=False, indent=1))
    else:
        print("\n".join(status_lines(verdict)))
    return verdict.code


def status_lines(verdict: Verdict) -> list[str]:
    lines = [f"kiosk: {VERDICTS[verdict.code]}", *(f"  problem: {problem}" for problem in verdict.problems)]
    pulse = verdict.pulse
    if pulse is not None:
        p95 = "none yet" if pulse.p95_latency_ms is None else f"{pulse.p95_latency_ms:.0f} ms"
        fps = ", ".join(f"{name} {rate:.0f}" for name, rate in pulse.fps.items()) or "not measured yet"
        lines += [f"  state {pulse.state}, up {pulse.uptime_seconds / 3600:.1f} h, pid {pulse.pid}, "
                  f"heartbeat {verdict.age_seconds:.0f} s ago",
                  f"  gallery {pulse.gallery or '(loading)'}: {pulse.gallery_faces} faces, "
                  f"built {pulse.gallery_built_at}",
                  f"  visits today {pulse.visits_today}; results p95 {p95}; frames/s {fps}",
                  f"  camera {'ok' if pulse.camera_ok else 'LOST: ' + pulse.camera_problem}",
                  f"  last error: {pulse.last_error or 'none'}"]
    build = verdict.last_build
    lines.append(f"  last build: {build.summary() if build else 'none recorded'}")
    return lines


def last_build_line(gallery: str) -> str:
    """The staff panel's line on the gallery's last build."""
    build = last_outcome(Path(gallery)) if gallery else None
    return f"last build: {build.summary() if build else 'none recorded'}"
