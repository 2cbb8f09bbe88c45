"""Every text on screen comes from assets/i18n/<lang>.json; Chinese first."""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from kiosk.assets import ASSETS

LANGUAGES = ("zh", "en")


@cache
def table(lang: str) -> dict[str, str]:
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}: use one of {', '.join(LANGUAGES)}")
    return json.loads((Path(ASSETS) / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))


def tr(lang: str, key: str, **values: object) -> str:
    return table(lang)[key].format(**values)
