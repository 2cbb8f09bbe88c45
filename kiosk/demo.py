"""The built-in demo: a small real gallery made on first use from photos that ship inside installed
packages, so a fresh machine can run the kiosk, and other such photos as its synthetic camera's
visitors. No visitor is in the gallery: each visit's scores are honest strangers' scores."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from importlib import resources
from pathlib import Path

import cv2

from face_engine.gallery import MANIFEST, Manifest
from face_engine.imaging import read_image
from index_builder.build import build
from index_builder.options import BuildOptions
from index_builder.worker import FaceFilter
from models.folders import APP, data_home, write_atomically

log = logging.getLogger(__name__)

# (package, resource, name, caption): the gallery's photos and the people in them, as far as their
# packages say. Every face of a photo joins (insightface's group photo holds six people, unnamed).
GALLERY = (
    ("insightface", "data/images/t1.jpg", "", "insightface sample photo"),
)
# (package, resource, crop): the synthetic camera's visitors, in order, none of them in the gallery;
# a crop (x1, y1, x2, y2 of the package's photo) frames a small face as a kiosk camera frames a
# visitor. The first two are public-domain photos (NASA, US Navy): docs/make_screenshots.py commits
# the first visit's results. scikit-image's camera.png is left out: its man looks sideways into his
# camera, never at the kiosk.
VISITORS = (
    ("skimage", "data/astronaut.png", (84, 0, 364, 280)),  # Eileen Collins, NASA astronaut
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", None),  # Grace Hopper
    ("insightface", "data/images/Tom_Hanks_54745.png", None),  # Tom Hanks
)


def demo_home() -> Path:
    return data_home() / APP / "demo"


def demo_gallery() -> Path:
    """The demo gallery, built the first time it is asked for (a few seconds), and again when its
    photos or the way they are split between gallery and visitors changed."""
    home = demo_home()
    gallery, stamp = home / "gallery", home / "gallery.key"
    corpus = home / "corpus"
    rows = [{"path": Path(resource).name, "name": name, "caption": caption, "source": f"{package} package data"}
            for package, resource, name, caption in GALLERY]
    sources = [package_file(package, resource) for package, resource, _, _ in GALLERY]
    key = content_key(rows, sources)
    if _built_by_this_version(gallery) and _read(stamp) == key:
        return gallery
    shutil.rmtree(corpus, ignore_errors=True)  # a photo of an older split must not stay in the corpus
    corpus.mkdir(parents=True)
    for source in sources:
        shutil.copy(source, corpus / source.name)
    manifest = corpus / "manifest.jsonl"
    manifest.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    log.info("building the demo gallery in %s", gallery)
    # fresh: a demo gallery cached by an older version has a work folder this one cannot resume
    build(BuildOptions(corpus=manifest, out=gallery, workers=1, face_filter=FaceFilter("all"), progress=False,
                       fresh=True))
    write_atomically(stamp, key)
    return gallery


def content_key(rows: list[dict[str, str]], sources: list[Path]) -> str:
    """What the demo gallery is made of, in one string: its corpus rows and its photos' bytes."""
    digest = hashlib.sha1(json.dumps(rows, sort_keys=True).encode())
    for source in sources:
        digest.update(source.read_bytes())
    return digest.hexdigest()


def _built_by_this_version(gallery: Path) -> bool:
    try:
        Manifest.from_json(json.loads((gallery / MANIFEST).read_text()))
    except (OSError, ValueError):  # ManifestError (an older format version among them) is a ValueError
        return False
    return True


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def package_file(package: str, resource: str) -> Path:
    return Path(str(resources.files(package).joinpath(resource)))


def demo_visitors() -> Path:
    """The synthetic camera's folder: the visitors' photos, framed; written afresh each time, so a
    photo an older version put there (one in the gallery, say) never shows."""
    folder = demo_home() / "visitors"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for number, (package, resource, crop) in enumerate(VISITORS, 1):
        photo = read_image(package_file(package, resource))
        if crop is not None:
            x1, y1, x2, y2 = crop
            photo = photo[y1:y2, x1:x2]
        cv2.imwrite(str(folder / f"{number}_{Path(resource).stem}.png"), photo)
    return folder


def demo_settings(keep: dict | None = None) -> dict[str, str]:
    """The demo's gallery (built now if needed) and camera, less the settings in `keep` (given by
    the user, they win)."""
    keep = keep or {}
    settings = {"gallery": keep.get("gallery") or str(demo_gallery()), "camera": keep.get("camera") or demo_camera()}
    return {name: value for name, value in settings.items() if name not in keep}


def demo_camera() -> str:
    """A real camera when one is plugged in, else the demo's visitors as a synthetic camera."""
    return "0" if Path("/dev/video0").exists() else str(demo_visitors())
