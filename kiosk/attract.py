"""What the attract loop shows: gallery faces only, never a visitor's image."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class AttractSet:
    faces: list[np.ndarray]  # BGR square gallery portraits, least shown first
    pairs: list[tuple[np.ndarray, np.ndarray, str]]  # two faces of different people who look alike, and a line
