"""What staff keep off the screen, in the gallery's `.d` folder beside its versions (not in work/,
which `--fresh` wipes):

- the forget list, forgotten.json: people removed for good (`index-builder forget`). Every build
  leaves out their faces, by name and by photo (their photos filed again under another name stay
  out too), and the kiosk drops them from its exposure ledger.
- the hide list, hidden.json: people and captions kept off the screen without a rebuild
  (`index-builder hide` / `unhide`), read on every query by the query path, so a change shows
  within one visitor and is undone as easily.

Both are small JSON files written atomically (a temporary file, then os.replace). A reader never
fails on them: a damaged list is logged and read as the last good one (or empty), so a typo in
the file cannot take down the kiosk.
"""
from __future__ import annotations

import json
import logging
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from face_engine.gallery import Gallery
from models.folders import write_atomically

log = logging.getLogger(__name__)

FORGET_FILE = "forgotten.json"
HIDE_FILE = "hidden.json"
VERSIONS = "versions"


def gallery_home(out: Path) -> Path:
    """GALLERY.d beside the gallery link GALLERY: its versions, build state, lock and lists."""
    return out.parent / f"{out.name}.d"


def home_of(version: Path) -> Path | None:
    """The `.d` folder of a published version folder (GALLERY.d/versions/<stamp>); None for a
    gallery folder that index-builder did not publish (it has no lists)."""
    versions = version.resolve().parent
    if versions.name == VERSIONS and versions.parent.name.endswith(".d"):
        return versions.parent
    return None


@dataclass(frozen=True)
class Forgotten:
    """One forgotten person: the identity, and the photos (SHA-1) and faces (content keys) that
    showed them when they were forgotten."""

    identity: str
    photos: tuple[str, ...] = ()
    faces: tuple[str, ...] = ()
    when: str = ""


@dataclass(frozen=True)
class ForgetList:
    people: tuple[Forgotten, ...] = ()

    @property
    def identities(self) -> frozenset[str]:
        return frozenset(person.identity for person in self.people)

    @property
    def photos(self) -> frozenset[str]:
        return frozenset(photo for person in self.people for photo in person.photos)

    @property
    def faces(self) -> frozenset[str]:
        return frozenset(face for person in self.people for face in person.faces)

    def covers(self, identity: str, photo_sha1: str) -> bool:
        """True for a face of a forgotten person, or from a photo that showed one."""
        return (bool(identity) and identity in self.identities) or (bool(photo_sha1) and photo_sha1 in self.photos)

    def adding(self, person: Forgotten) -> ForgetList:
        others = tuple(known for known in self.people if known.identity != person.identity)
        return ForgetList((*others, person))


@dataclass(frozen=True)
class HideList:
    people: tuple[str, ...] = ()  # identities (FaceRecord.identity)
    captions: tuple[str, ...] = ()  # whole captions, as the gallery holds them

    def __bool__(self) -> bool:
        return bool(self.people or self.captions)


def read_forget_list(home: Path) -> ForgetList:
    data = _read(home / FORGET_FILE)
    people = data.get("people") if isinstance(data, dict) else None
    if not isinstance(people, list):
        return ForgetList()
    return ForgetList(tuple(_forgotten(entry) for entry in people if isinstance(entry, dict)
                            and isinstance(entry.get("identity"), str)))


def _forgotten(entry: dict[str, Any]) -> Forgotten:
    def texts(key: str) -> tuple[str, ...]:
        values = entry.get(key)
        return tuple(value for value in values if isinstance(value, str)) if isinstance(values, list) else ()

    return Forgotten(entry["identity"], texts("photos"), texts("faces"), str(entry.get("when", "")))


def write_forget_list(home: Path, forget: ForgetList) -> None:
    people = [{"identity": person.identity, "photos": list(person.photos), "faces": list(person.faces),
               "when": person.when} for person in forget.people]
    _write(home / FORGET_FILE, {"format": "other-me-forget-list", "people": people})


def read_hide_list(home: Path) -> HideList:
    data = _read(home / HIDE_FILE)
    if not isinstance(data, dict):
        return HideList()
    return HideList(_strings(data.get("people")), _strings(data.get("captions")))


def _strings(values: Any) -> tuple[str, ...]:
    return tuple(value for value in values if isinstance(value, str)) if isinstance(values, list) else ()


def write_hide_list(home: Path, hide: HideList) -> None:
    _write(home / HIDE_FILE, {"format": "other-me-hide-list", "people": list(hide.people),
                              "captions": list(hide.captions)})


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ListError(f"{path} cannot be read ({error})") from None


def _write(path: Path, data: dict[str, Any]) -> None:
    write_atomically(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


class ListError(RuntimeError):
    """A forget or hide list that cannot be read; the message names it."""


class _Hidden:
    """One gallery's hidden face ids, read again only when hidden.json changes (a stat per query);
    its `.d` folder, found once (a gallery's root never changes)."""

    def __init__(self, home: Path | None) -> None:
        self.home = home
        self.signature: tuple[int, int] | None = None
        self.ids = np.zeros(0, np.int64)


_hidden: weakref.WeakKeyDictionary[Gallery, _Hidden] = weakref.WeakKeyDictionary()


def hidden_ids(gallery: Gallery) -> np.ndarray:
    """The ids of `gallery`'s faces that its hide list keeps off the screen (none for a gallery
    outside a `.d` folder); the same array until the list changes. A damaged list keeps the last
    good one, with a warning."""
    known = _hidden.get(gallery)
    if known is None:
        known = _hidden[gallery] = _Hidden(home_of(gallery.root))
    home = known.home
    if home is None:
        return known.ids
    try:
        status = os.stat(home / HIDE_FILE)
        signature: tuple[int, int] | None = (status.st_mtime_ns, status.st_size)
    except FileNotFoundError:
        signature = None
    if signature != known.signature:
        try:
            known.ids = _ids_of(gallery, read_hide_list(home))
        except ListError as error:
            log.warning("%s; the hide list read before it stays in force", error)
        known.signature = signature
    return known.ids


def _ids_of(gallery: Gallery, hide: HideList) -> np.ndarray:
    if not hide:
        return np.zeros(0, np.int64)
    people, captions = ",".join("?" * len(hide.people)), ",".join("?" * len(hide.captions))
    rows = gallery.db.execute(f"SELECT id FROM faces WHERE identity IN ({people}) OR caption IN ({captions})",
                              [*hide.people, *hide.captions]).fetchall()
    return np.array(sorted(face_id for (face_id,) in rows), np.int64)
