"""What `index-builder build` is asked to do: the settings both engines and the orchestrator read."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from face_engine.memory import KIOSK_MEMORY_BYTES
from index_builder.indexes import default_memory_budget
from index_builder.worker import FaceFilter


@dataclass
class BuildOptions:
    corpus: Path
    out: Path
    pack: str = "sface"
    device: str = "auto"
    workers: int = max(1, os.cpu_count() or 1)
    batch: int = 32  # faces per recognizer batch
    face_filter: FaceFilter = field(default_factory=FaceFilter)  # which faces of a photo are kept
    min_quality: float = 0.0  # faces of lower portrait quality (face_engine.quality, 0..1) are left out
    fresh: bool = False
    shard_size: int = 1024
    budget_ms: float = 20.0
    memory_budget_bytes: int = field(default_factory=default_memory_budget)  # for the gallery's index
    kiosk_memory_bytes: int = KIOSK_MEMORY_BYTES  # the kiosk PC's memory: two galleries must fit during a swap
    index: str | None = None  # a faiss factory string forced for experiments; None: chosen by measurement
    index_params: dict[str, Any] = field(default_factory=dict)  # search parameters of the forced index
    engine: str = "local"  # or "ray"
    address: str | None = None  # a Ray cluster; None starts a local Ray instance
    allow_outside: bool = False  # manifest paths may lead outside the manifest's folder
    progress: bool = True
    wait: bool = False  # for another build of the same gallery to end, instead of refusing

    def recorded(self) -> dict[str, str]:
        """The options as the manifest records them: the face filter's fields in its place, every
        value as text, without the ones that do not shape the gallery (progress, wait)."""
        recorded: dict[str, str] = {}
        for option in fields(self):
            value = getattr(self, option.name)
            if option.name == "face_filter":
                recorded.update({name: str(setting) for name, setting in asdict(value).items()})
            elif option.name not in ("progress", "wait"):
                recorded[option.name] = str(value)
        return recorded
