"""The built-in demo: a small real gallery made on first use from photos that ship inside installed
packages (insightface's and scikit-image's sample photos), so a fresh machine can run the kiosk."""
from __future__ import annotations

import json
import logging
import shutil
from importlib import resources
from pathlib import Path

from face_engine.gallery import MANIFEST, Manifest
from index_builder.build import build
from index_builder.options import BuildOptions
from index_builder.worker import FaceFilter
from models.folders import APP, data_home

log = logging.getLogger(__name__)

# (package, resource, name, caption): the people in them, as far as their packages say
PHOTOS = (
    ("insightface", "data/images/t1.jpg", "", "insightface sample photo"),
    ("insightface", "data/images/Tom_Hanks_54745.png", "Tom Hanks", "Actor"),
    ("skimage", "data/astronaut.png", "Eileen Collins", "NASA astronaut"),
)


def demo_home() -> Path:
    return data_home() / APP / "demo"


def demo_gallery() -> Path:
    """The demo gallery, built the first time it is asked for (a few seconds)."""
    home = demo_home()
    gallery = home / "gallery"
    if _built_by_this_version(gallery):
        return gallery
    corpus = home / "photos"
    corpus.mkdir(parents=True, exist_ok=True)
    rows = []
    for package, resource, name, caption in PHOTOS:
        source = Path(str(resources.files(package).joinpath(resource)))
        shutil.copy(source, corpus / source.name)
        rows.append({"path": source.name, "name": name, "caption": caption, "source": f"{package} package data"})
    manifest = corpus / "manifest.jsonl"
    manifest.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    log.info("building the demo gallery in %s", gallery)
    # fresh: a demo gallery cached by an older version has a work folder this one cannot resume
    build(BuildOptions(corpus=manifest, out=gallery, workers=1, face_filter=FaceFilter("all"), progress=False,
                       fresh=True))
    return gallery


def _built_by_this_version(gallery: Path) -> bool:
    try:
        Manifest.from_json(json.loads((gallery / MANIFEST).read_text()))
    except (OSError, ValueError):  # ManifestError (an older format version among them) is a ValueError
        return False
    return True


def demo_settings(keep: dict | None = None) -> dict[str, str]:
    """The demo's gallery (built now if needed) and camera, less the settings in `keep` (given by
    the user, they win)."""
    keep = keep or {}
    settings = {"gallery": keep.get("gallery") or str(demo_gallery()), "camera": demo_camera()}
    return {name: value for name, value in settings.items() if name not in keep}


def demo_camera() -> str:
    """A real camera when one is plugged in, else the demo photos as a synthetic camera."""
    return "0" if Path("/dev/video0").exists() else str(demo_home() / "photos")
