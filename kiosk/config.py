"""Kiosk settings: defaults, overridden by a TOML config file, overridden by the command line.

The staff PIN is stored only as a salted PBKDF2 hash.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

PIN_ITERATIONS = 200_000


def default_config_path() -> Path:
    home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return home / "other-me" / "kiosk.toml"


@dataclass(frozen=True)
class KioskConfig:
    gallery: str = ""
    camera: str = "0"           # a camera index, a video file, or a folder of photos
    pack: str = ""              # "" = the pack that built the gallery
    device: str = "auto"
    lang: str = "zh"
    fullscreen: bool = False
    lookalikes: int = 5         # the best one large, the rest small
    idle_seconds: float = 20.0
    results_seconds: float = 30.0
    countdown_seconds: float = 3.0
    pin_hash: str = ""
    # cosine similarity mapped linearly onto the percentage shown: at or below `floor` 0%,
    # at `ceiling` 99% (for SFace, the same person sits above about 0.5)
    similarity_floor: float = -0.2
    similarity_ceiling: float = 0.6

    def percent(self, score: float) -> int:
        share = (score - self.similarity_floor) / (self.similarity_ceiling - self.similarity_floor)
        return int(round(min(max(share, 0.0), 0.99) * 100))


def load_config(path: Path | None = None) -> KioskConfig:
    path = path or default_config_path()
    if not path.is_file():
        return KioskConfig()
    with open(path, "rb") as file:
        values = tomllib.load(file)
    known = {f.name for f in fields(KioskConfig)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"{path}: unknown settings {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    return replace(KioskConfig(), **values)


def save_config(config: KioskConfig, path: Path | None = None) -> Path:
    """Write every setting (a flat TOML file), atomically."""
    path = path or default_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, value in asdict(config).items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        else:
            text = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines.append(f"{name} = {text}")
    temporary = path.with_suffix(".tmp")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def hash_pin(pin: str) -> str:
    salt = secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), PIN_ITERATIONS).hex()
    return f"pbkdf2_sha256${PIN_ITERATIONS}${salt}${digest}"


def check_pin(pin: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "pbkdf2_sha256":
        return False
    candidate = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), int(iterations)).hex()
    return hmac.compare_digest(candidate, digest)
