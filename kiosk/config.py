"""Kiosk settings: defaults, overridden by a TOML config file, overridden by the command line.

The staff PIN is stored only as a salted PBKDF2 hash, in a file only its owner can read, and
wrong PINs earn a growing wait. A relative path in the file (gallery, a camera's video or folder,
a pack's folder) is taken from the file's own folder; the file is written with absolute ones.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import re
import secrets
import stat
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TypeGuard

import tomli_w

from face_engine.fairness import POLICIES, MatchPolicy, policy_named
from face_engine.gallery import MAX_LAMBDA
from face_engine.providers import DEVICES
from kiosk.i18n import LANGUAGES, tr
from models.folders import APP, config_home, write_atomically

PIN_ITERATIONS = 200_000
MIN_PIN_DIGITS, MAX_PIN_DIGITS = 4, 12
MAX_PIN_ITERATIONS = 10_000_000  # more would stall the staff panel for minutes on every try
PIN_HASH = re.compile(r"pbkdf2_sha256\$(\d{1,8})\$((?:[0-9a-f]{2})+)\$([0-9a-f]{64})", re.ASCII)
MAX_LOOKALIKES = 5  # the results screen holds the best one large and four small
SHOWN_VALUE_CHARS = 60
MAX_FAIRNESS = MAX_LAMBDA  # λ beyond this ranks by hubness alone
MAX_CONFIG_BYTES = 1024 * 1024  # a kiosk.toml is a few hundred bytes
MAX_NOTICE_CHARS = 240  # the attract screen's notice: two lines at most on a 1080p screen
MAX_SCREEN = 15  # screens are numbered from 0, the primary one, in the windowing system's order
# Settings older kiosks had, read and ignored: the likeness shown is the gallery's (face_engine.likeness).
RETIRED = ("similarity_floor", "similarity_ceiling")

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """The config file cannot be used; the message is one line naming the file and what is wrong."""


def default_config_path() -> Path:
    return config_home() / APP / "kiosk.toml"


@dataclass(frozen=True)
class KioskConfig:
    gallery: str = ""
    camera: str = "0"           # a camera index, a video file, or a folder of photos
    pack: str = ""              # "" = the pack that built the gallery
    device: str = "auto"
    lang: str = "zh"
    fullscreen: bool = False
    screen: int = 0             # the monitor for fullscreen: 0 is the primary one
    lookalikes: int = 5         # the best one large, the rest small
    idle_seconds: float = 20.0
    results_seconds: float = 30.0   # results stay at most this long
    away_seconds: float = 8.0       # ... and close this long after the visitor's face has gone
    countdown_seconds: float = 3.0
    pin_hash: str = ""
    # which faces are shown (face_engine.fairness): "fair" re-ranks by score - fairness·hubness and
    # prefers the less-shown among near-equals; "exact" shows plain nearest neighbours
    policy: str = "fair"
    fairness: float | str = "gallery"  # λ, or "gallery": the one the gallery's build measured best
    sound: bool = True          # a soft tone with the countdown (kiosk.sound)
    # the attract screen's notice to passers-by (what the camera does, that nothing is kept), in the
    # booth's own words; "" = the wording in assets/i18n. Plain text, shown as typed.
    notice_en: str = ""
    notice_zh: str = ""

    def match_policy(self) -> MatchPolicy:
        return policy_named(self.policy, None if self.fairness == "gallery" else float(self.fairness))


def load_config(path: Path | None = None) -> KioskConfig:
    """The settings in `path` (the defaults when there is no such file). Raises ConfigError."""
    path = path or default_config_path()
    if not path.exists():
        return KioskConfig()
    try:
        with open(path, "rb") as file:
            text = file.read(MAX_CONFIG_BYTES + 1)
            status = os.fstat(file.fileno())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config file: {error.strerror}") from None
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: not a kiosk config file (over {MAX_CONFIG_BYTES // 1024} KB)")
    try:
        values = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not a valid TOML file: {error}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not a valid TOML file: values nested too deeply") from None
    retired = [name for name in RETIRED if values.pop(name, None) is not None]
    if retired:
        log.warning("%s: %s ignored: the likeness shown is calibrated on the gallery; delete %s",
                    path, " and ".join(retired), "them" if len(retired) > 1 else "it")
    known = {f.name for f in fields(KioskConfig)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"{path}: unknown settings {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    for name, value in values.items():
        wanted = requirement(name, value)
        if wanted:
            raise ConfigError(f"{path}: {name} must be {wanted}, not {shown(value)}")
    if values.get("pin_hash"):
        owner_only(path, status)
    return with_absolute_paths(replace(KioskConfig(), **values), path.parent)


def owner_only(path: Path, status: os.stat_result) -> None:
    """A config file holding the PIN hash that others may read, made readable by its owner only, with
    one warning; a file this user cannot change is left as it is, and the warning says so."""
    if not stat.S_ISREG(status.st_mode) or not status.st_mode & 0o077:
        return
    mode = stat.S_IMODE(status.st_mode)
    try:
        os.chmod(path, 0o600)
    except OSError as error:
        log.warning("%s: others may read it (mode %04o) and it holds the PIN hash; could not make it the "
                    "owner's only (%s): run chmod 600 on it", path, mode, error.strerror)
        return
    log.warning("%s: others could read it (mode %04o) and it holds the PIN hash: made it the owner's only (0600)",
                path, mode)


def with_absolute_paths(config: KioskConfig, base: Path) -> KioskConfig:
    """`config` with each relative path in it made absolute against the folder `base` (and ~ expanded)."""
    def absolute(name: str, value: str) -> str:
        # os.path's expanduser leaves "~nobody" as it is where Path's raises RuntimeError
        return os.path.abspath(base / os.path.expanduser(value)) if names_a_path(name, value) else value
    return replace(config, gallery=absolute("gallery", config.gallery), camera=absolute("camera", config.camera),
                   pack=absolute("pack", config.pack))


def names_a_path(name: str, value: str) -> bool:
    """Whether setting `name`'s `value` is a file or folder: not a camera index or a camera's URL,
    not a pack's name (a pack given as a folder has a slash)."""
    if not value or "://" in value:
        return False
    if name == "camera":
        return not value.strip().isdigit()
    return name != "pack" or "/" in value


def requirement(name: str, value: object) -> str:
    """What setting `name` must be, when `value` is not that; "" when it is fine."""
    if name == "camera":
        return "" if isinstance(value, str) else 'a string: a camera index in quotes ("0"), a video file or a folder'
    if name in ("gallery", "pack"):
        return "" if isinstance(value, str) else "a string"
    if name == "device":
        return "" if value in DEVICES else f"one of {', '.join(DEVICES)}"
    if name == "lang":
        return "" if value in LANGUAGES else f"one of {', '.join(LANGUAGES)}"
    if name.startswith("notice_"):
        fine = isinstance(value, str) and len(value) <= MAX_NOTICE_CHARS and value.isprintable()
        return "" if fine else f"one line of plain text of at most {MAX_NOTICE_CHARS} characters"
    if name in ("fullscreen", "sound"):
        return "" if isinstance(value, bool) else "true or false"
    if name == "screen":
        fine = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SCREEN
        return "" if fine else f"a whole number from 0 (the primary screen) to {MAX_SCREEN}"
    if name == "lookalikes":
        fine = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_LOOKALIKES
        return "" if fine else f"an integer from 1 to {MAX_LOOKALIKES}"
    if name.endswith("_seconds"):
        return "" if is_number(value) and value > 0 else "a positive number of seconds"
    if name == "policy":
        return "" if value in POLICIES else f"one of {', '.join(POLICIES)}"
    if name == "fairness":
        fine = value == "gallery" or is_number(value) and 0 <= value <= MAX_FAIRNESS
        return "" if fine else f'a number from 0 to {MAX_FAIRNESS}, or "gallery" (the λ its build chose)'
    if name == "pin_hash":
        fine = value == "" or (isinstance(value, str) and pin_hash_parts(value) is not None)
        return "" if fine else ("a hash written by kiosk --set-pin (pbkdf2_sha256$iterations$salt$digest): "
                                "delete that line, then run kiosk --set-pin")
    return ""


def notice(config: KioskConfig, lang: str) -> str:
    """The attract screen's notice in `lang`: the booth's wording, or the default one."""
    return {"en": config.notice_en, "zh": config.notice_zh}[lang] or tr(lang, "notice")


def is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def shown(value: object) -> str:
    """A setting's value as one short line, however long or odd it is."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= SHOWN_VALUE_CHARS else text[:SHOWN_VALUE_CHARS] + "…"


def save_config(config: KioskConfig, path: Path | None = None) -> Path:
    """Write every setting (a flat TOML file, by tomli_w: any text, newlines and control characters
    too, is written escaped), atomically, readable by its owner only: it holds the PIN hash. Paths
    are written absolute (relative ones are taken as from the working directory), so the file means
    the same whoever starts the kiosk, from wherever."""
    path = path or default_config_path()
    write_atomically(path, tomli_w.dumps(asdict(with_absolute_paths(config, Path.cwd()))), private=True)
    return path


def hash_pin(pin: str) -> str:
    salt = secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), PIN_ITERATIONS).hex()
    return f"pbkdf2_sha256${PIN_ITERATIONS}${salt}${digest}"


def pin_hash_parts(stored: str) -> tuple[int, bytes, str] | None:
    """Iterations, salt and hex digest of a hash written by hash_pin; None for anything else."""
    found = PIN_HASH.fullmatch(stored)
    if found is None or not 1 <= int(found[1]) <= MAX_PIN_ITERATIONS:
        return None
    return int(found[1]), bytes.fromhex(found[2]), found[3]


def check_pin(pin: str, stored: str) -> bool:
    parts = pin_hash_parts(stored)
    if parts is None:
        return False
    iterations, salt, digest = parts
    candidate = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations).hex()
    return hmac.compare_digest(candidate, digest)


class PinGuard:
    """Wrong staff PINs earn a wait: after FREE_TRIES of them, FIRST_WAIT seconds, doubling with
    each further one up to LONGEST_WAIT, so trying every 4-digit PIN takes months, not minutes.
    While a wait runs, a PIN is refused without being checked."""

    FREE_TRIES = 3
    FIRST_WAIT = 30.0
    LONGEST_WAIT = 15 * 60.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock  # monotonic seconds
        self.failures = 0
        self._locked_until = 0.0

    def wait_left(self) -> int:
        """Whole seconds before the next PIN will be checked (0: now)."""
        return max(0, math.ceil(self._locked_until - self.clock()))

    def attempt(self, pin: str, stored: str) -> bool:
        """True when `pin` matches the stored hash and no wait is running."""
        if self.wait_left():
            return False
        if check_pin(pin, stored):
            self.failures = 0
            return True
        self.failures += 1
        if self.failures >= self.FREE_TRIES:
            doublings = min(self.failures - self.FREE_TRIES, 10)  # 30 s doubled 10 times is past the cap already
            self._locked_until = self.clock() + min(self.FIRST_WAIT * 2 ** doublings, self.LONGEST_WAIT)
        return False
