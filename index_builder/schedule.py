"""The nightly rebuild: a systemd user timer and the service it starts, which runs the same
`index-builder build CORPUS --out GALLERY` staff would type, every day at HH:MM.

A night missed while the machine was off is caught up at the next start (Persistent=true). The
build's exit codes 1 (published without its broken files) and 3 (another build held the lock) are
no failure of the service. Its output is appended to GALLERY.d/rebuild.log, rotated by size before
each run, and every build records its outcome beside it (index_builder.outcome). Stopping the
service, or its day running out, interrupts the build as Ctrl-C does: the outcome says so and the
next run resumes from the last finished shard.

Every path in the units is absolute, so they work whatever folder systemd starts them in. This
module writes its own units: the builder sits below the kiosk and does not import it.
"""
from __future__ import annotations

import logging.handlers
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from index_builder.publish import gallery_home
from models.folders import config_home, write_atomically
from models.packs import models_dir

LOG_FILE = "rebuild.log"
LOG_BYTES = 1_000_000  # rotated before a run once past this; a night's build writes a few lines
LOG_BACKUPS = 3
BUILD_HOURS = 23  # a build still running after this is interrupted (and resumes the next night)
UNIT_PREFIX = "other-me-rebuild-"


class ScheduleError(ValueError):
    """The schedule cannot be written as asked; nothing was written."""


@dataclass(frozen=True)
class Schedule:
    corpus: Path
    out: Path
    hour: int
    minute: int
    build_options: tuple[str, ...] = ()  # further `index-builder build` options, checked by the caller

    @property
    def name(self) -> str:
        """The units' name without suffix: one schedule per gallery name; scheduling again replaces it."""
        return UNIT_PREFIX + re.sub(r"[^A-Za-z0-9_-]", "_", self.out.name)

    @property
    def log(self) -> Path:
        return gallery_home(self.out) / LOG_FILE

    @property
    def at(self) -> str:
        return f"{self.hour:02d}:{self.minute:02d}"

    def build_command(self) -> list[str]:
        builder = Path(sys.executable).parent / "index-builder"
        return [str(builder), "build", str(self.corpus), "--out", str(self.out), *self.build_options]


def schedule(corpus: Path, out: Path, at: str, build_options: tuple[str, ...] = ()) -> Schedule:
    """A Schedule with absolute paths (links kept: the gallery's own path is a link), or ScheduleError."""
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", at)
    if not match:
        raise ScheduleError(f"--at must be a time of day as HH:MM (00:00 to 23:59), not {at[:40]!r}")
    return Schedule(Path(os.path.abspath(corpus)), Path(os.path.abspath(out)), int(match[1]), int(match[2]),
                    tuple(build_options))


def service_unit(plan: Schedule) -> str:
    log = unit_value(str(plan.log))
    return "\n".join([
        "[Unit]",
        f"Description=Meet the other me: rebuild the gallery {unit_value(str(plan.out))}",
        "",
        "[Service]",
        "Type=oneshot",
        f"WorkingDirectory={unit_value(str(plan.out.parent))}",
        exec_line("Environment", [f"OTHERME_MODELS_DIR={os.path.abspath(models_dir())}"]),
        exec_line("ExecStartPre", [sys.executable, "-m", "index_builder.schedule", str(plan.log)]),
        exec_line("ExecStart", plan.build_command()),
        "SuccessExitStatus=1 3",
        f"StandardOutput=append:{log}",
        f"StandardError=append:{log}",
        "KillSignal=SIGINT",  # the build's Ctrl-C: it stops cleanly, records "interrupted" and resumes next time
        "KillMode=mixed",  # the signal to the build alone; its worker processes follow it out
        f"TimeoutStartSec={BUILD_HOURS}h",
        "Nice=10",
        "IOSchedulingClass=idle",
        "",
    ])


def timer_unit(plan: Schedule) -> str:
    return "\n".join([
        "[Unit]",
        f"Description=Meet the other me: rebuild the gallery {unit_value(str(plan.out))} every day at {plan.at}",
        "",
        "[Timer]",
        f"OnCalendar=*-*-* {plan.at}:00",
        "Persistent=true",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])


# The unit-file writing both the rebuild's units and the kiosk's service (kiosk.service) use.
PLAIN_WORD = re.compile(r"[\w@%+=:,./-]+")  # a command-line word that needs no quotes (after escaping %)


def refuse_line_breaks(text: str) -> None:
    if re.search(r"[\x00-\x1f]", text):
        raise ScheduleError(f"{text[:80]!r} holds a line break or another control character: it cannot go into "
                            "a unit file; use another path")


def unit_value(text: str) -> str:
    """`text` as a unit file's plain value (a path, a description): specifiers (%) stay literal."""
    refuse_line_breaks(text)
    return text.replace("%", "%%")


def unit_word(word: str, command: bool = True) -> str:
    """`word` as one word of a unit file's command line (systemd.syntax, systemd.service) or, not
    `command`, of an Environment= line: % doubled (and $ in a command, where systemd expands
    variables), quoted when it holds more than plain characters."""
    word = unit_value(word).replace("$", "$$" if command else "$")
    return word if PLAIN_WORD.fullmatch(word) else '"' + re.sub(r'(["\\])', r"\\\1", word) + '"'


def exec_line(key: str, words: list[str]) -> str:
    """`key=` and the words, each quoted where systemd would otherwise split or unescape it; an
    Environment= line's words are not expanded, so their $ stays single."""
    return f"{key}={' '.join(unit_word(word, command=key != 'Environment') for word in words)}"


def default_unit_dir() -> Path:
    return config_home() / "systemd" / "user"


def install(plan: Schedule, unit_dir: Path) -> tuple[Path, Path]:
    """Write the service and the timer into `unit_dir`; returns their paths. GALLERY.d is made
    too, since the service appends its log there from the first run."""
    unit_dir.mkdir(parents=True, exist_ok=True)
    gallery_home(plan.out).mkdir(parents=True, exist_ok=True)
    service, timer = unit_dir / f"{plan.name}.service", unit_dir / f"{plan.name}.timer"
    for path, text in ((service, service_unit(plan)), (timer, timer_unit(plan))):
        write_atomically(path, text)
    return service, timer


def enable_instructions(plan: Schedule, installed: bool) -> str:
    """What staff type next: enable the timer, and let it run while nobody is logged in."""
    first = "" if installed else f"copy both files into {default_unit_dir()}, then:\n"
    return (f"{first}  systemctl --user daemon-reload\n"
            f"  systemctl --user enable --now {plan.name}.timer\n"
            "  loginctl enable-linger $USER   # runs it at night with nobody logged in\n"
            f"  systemctl --user start {plan.name}.service   # a rebuild now, to try it")


def rotate(log: Path) -> None:
    """Move `log` to log.1 (and so on, LOG_BACKUPS kept) once it has grown past LOG_BYTES, as the
    logging module's rotating handler does."""
    if log.is_file() and log.stat().st_size >= LOG_BYTES:
        handler = logging.handlers.RotatingFileHandler(log, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, delay=True)
        handler.doRollover()
        handler.close()


if __name__ == "__main__":  # the service's ExecStartPre: python -m index_builder.schedule LOG
    rotate(Path(sys.argv[1]))
