"""The kiosk's log: a rotating file under $XDG_STATE_HOME/other-me/, repeated warnings rate-limited,
OpenCV's own warnings silenced (ours say the same once), and one line per visit with no image data.
A log file that cannot be written (a full disk) is said once on stderr, never with a traceback per
line; the kiosk goes on serving and the file is written again when it can be."""
from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.folders import APP, state_home

LOG_BYTES = 1_000_000  # per file; with BACKUPS older files the log never passes a few megabytes
BACKUPS = 3
REPEAT_SECONDS = 60.0  # the same warning at most once this often
TAIL_BYTES = 16_000
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


_installed: list[logging.Handler] = []


def log_path() -> Path:
    return state_home() / APP / "kiosk.log"


class RateLimit(logging.Filter):
    """Lets each distinct warning (or worse) through once per `seconds`; the next one that passes
    says how many were held back, so a camera retrying every second writes one line a minute."""

    def __init__(self, seconds: float = REPEAT_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.seconds, self.clock = seconds, clock
        self._passed: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """One decision per record, whichever handler asks first: the file and stderr agree."""
        decided = getattr(record, "rate_limit_passed", None)
        if decided is not None:
            return bool(decided)
        record.rate_limit_passed = passed = self._decide(record)
        return passed

    def _decide(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.getMessage())
        now = self.clock()
        if now - self._passed.get(key, -self.seconds) < self.seconds:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._passed[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.msg, record.args = f"{record.getMessage()} (and {held} more like it)", None
        return True


class SaidOnce:
    """A failure that recurs while it lasts (a full disk fails every write): said when it begins and
    when it ends, never in between, so a booth left failing for a day writes two lines."""

    def __init__(self, say: Callable[[str], object], ended: str) -> None:
        self.say, self.ended_line = say, ended
        self.failing = False

    def failed(self, line: str) -> None:
        if not self.failing:
            self.failing = True
            self.say(line)

    def ended(self) -> None:
        if self.failing:
            self.failing = False
            self.say(self.ended_line)


class LogFile(logging.handlers.RotatingFileHandler):
    """The rotating log file; a line it cannot write (a full disk, a file-size limit) is dropped, and
    said once on stderr until a line is written again."""

    def __init__(self, path: Path, **options: Any) -> None:
        super().__init__(path, **options)
        self.trouble = SaidOnce(_to_stderr, f"the log {self.baseFilename} is written again")

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)  # calls handleError when the line cannot be written
        if self.stream is not None:  # written: a line that failed let go of the stream
            self.trouble.ended()

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        why = getattr(error, "strerror", None) or error
        self.trouble.failed(f"the log {self.baseFilename} cannot be written ({why}): its lines are dropped "
                            f"until it can; the kiosk goes on")
        self._drop_stream()

    def _drop_stream(self) -> None:
        """Let go of the file and what its buffer holds: it is opened again for the next line."""
        stream, self.stream = self.stream, None
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass


def _to_stderr(line: str) -> None:
    """Straight to stderr: the log itself is what fails."""
    sys.stderr.write(f"kiosk: {line}\n")


def setup_logging(verbose: bool = False) -> Path:
    """Log to the rotating file (INFO and up) and to stderr (warnings, or INFO with `verbose`);
    returns the file's path."""
    import cv2.utils.logging

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # its camera retries would flood stderr
    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    to_file = LogFile(path, maxBytes=LOG_BYTES, backupCount=BACKUPS, encoding="utf-8")
    to_stderr = logging.StreamHandler()
    to_stderr.setLevel(logging.INFO if verbose else logging.WARNING)
    limit = RateLimit()
    root = logging.getLogger()
    for handler in _installed:  # set up again (main called twice in one process): replace, not add
        root.removeHandler(handler)
        handler.close()
    _installed[:] = [to_file, to_stderr]
    for handler in _installed:
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(limit)
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its search for CPU-specific builds is not news
    return path


def log_tail(path: Path, lines: int = 12) -> str:
    """The last `lines` lines of the log, as plain text ("" when there is no log yet)."""
    try:
        with open(path, "rb") as file:
            file.seek(max(0, file.seek(0, 2) - TAIL_BYTES))
            text = file.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def visit_line(number: int, faces: int, scores: list[float], total_ms: float, failure: str) -> str:
    """One visit as the log keeps it: counts, the best score and the time, never a picture or a name."""
    result = "results" if not failure else "no_face" if failure == "fail_no_face" else "error"
    best = f"{max(scores):.3f}" if scores else "-"
    return (f"visit {number}: faces={faces} matches={len(scores)} best={best} total_ms={total_ms:.0f} "
            f"result={result}")
