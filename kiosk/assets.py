"""Where the assets/ folder is: beside the packages in a checkout, or installed as package data."""
from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"
