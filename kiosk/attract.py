"""What the attract screen shows: gallery faces only, never a visitor's image. (The look side of
the booth adds the attract page itself to this module.)"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class AttractSet:
    """What the attract screen shows, all from the gallery (the worker builds it)."""

    faces: list[np.ndarray] = field(default_factory=list)  # BGR square gallery portraits, least shown first
    # two faces of different people who look alike, and a plain-text line (e.g. their names)
    pairs: list[tuple[np.ndarray, np.ndarray, str]] = field(default_factory=list)
