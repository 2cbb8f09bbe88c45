"""`index-builder forget`, `rollback`, `hide` and `unhide`: staff's answers to a takedown request
and to a face or caption that must leave the screen now.

Forgetting publishes the live version less the person, rather than running a build: a build reads
the corpus, which may have changed since (a forget must not wait for a night's embedding) or gone.
What depends on who else is in the gallery is measured again, as the build measures it (the index,
of the same factory and settings, trained on the faces that stay; every face's hubness and the
fair policy's λ; the likeness table); the rest is copied (metadata, portraits, thumbnails, portrait
quality). The vectors come from the build's work state, or, where it no longer holds a face, from
an index that stores them whole. The new version gets a new content id, so the next build, which
leaves the forgotten out by itself (the forget list in GALLERY.d), publishes its own.

The kiosk swaps to the new version at its next break between visitors or capture (kiosk.worker);
the version it replaced is removed once no process holds it open (RELEASE_SECONDS at most), and
every other kept version is purged the same way, so `rollback` never brings the person back.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import faiss
import numpy as np

from face_engine.gallery import (
    FACE_PICTURES,
    METADATA_FILE,
    FaceRecord,
    Gallery,
    Manifest,
    face_record,
    write_gallery,
)
from face_engine.withheld import (
    ForgetList,
    Forgotten,
    HideList,
    read_forget_list,
    read_hide_list,
    write_forget_list,
    write_hide_list,
)
from index_builder.build import people_measures
from index_builder.indexes import Vectors, set_search, train_and_add
from index_builder.lock import build_lock
from index_builder.publish import gallery_home, held_versions, kept_versions, point, publish, write_version
from index_builder.state import BuildState

log = logging.getLogger(__name__)
RELEASE_SECONDS = 90.0  # the kiosk swaps within a minute; a version still held after this is removed anyway
RECORDS_AT_ONCE = 10_000  # face records read per query (SQLite caps the parameters of one)
LOSSY_CODES = ("PQ", "SQ", "LSH", "RQ")  # factory parts whose index keeps only approximate vectors


class ForgetError(RuntimeError):
    """Bad input (an unknown person, no earlier version) or a version that cannot be rewritten."""


@dataclass
class ForgetOutcome:
    identity: str
    faces: int  # of the person, in the live version
    published: Path | None  # None: the live version held none of them (forgotten before)
    purged: list[Path]  # older versions rewritten without them
    still_held: list[Path]  # removed, though a reader still held them after RELEASE_SECONDS


def forget(out: Path, name: str, wait: bool = False, release_seconds: float = RELEASE_SECONDS) -> ForgetOutcome:
    """Forget the person `name` (identity or shown name) of gallery `out`: see the module's docstring.
    Raises BuildLocked while a build holds the gallery, ForgetError for a person it never held."""
    home = gallery_home(out)
    with build_lock(out, wait):
        live = _live(out)
        forget_list = read_forget_list(home)
        person = _person(live, str(out), name, forget_list)
        write_forget_list(home, forget_list.adding(person))  # first: any later build honours it
        forget_list = read_forget_list(home)
        _withhold_in_work_state(home / "work", person)
        retired: list[Path] = []
        purged = [_purge(version, forget_list, home, retired) for version in kept_versions(out)
                  if version != live and _holds(version, forget_list)]
        published = None
        if _holds(live, forget_list):
            published = publish(out, *_without(live, forget_list, home), retired=live)
            retired.append(live)
        held = _remove_when_released(retired, release_seconds)
    return ForgetOutcome(person.identity, len(person.faces), published, purged, held)


def rollback(out: Path, wait: bool = False) -> Path:
    """Point `out` back at the kept version before the live one, purged first of anyone forgotten
    since; returns it. ForgetError when no earlier version is kept."""
    home = gallery_home(out)
    with build_lock(out, wait):
        live = _live(out)
        earlier = [version for version in kept_versions(out) if version.name < live.name]
        if not earlier:
            raise ForgetError(f"{out} keeps no version older than the live one ({live.name}): nothing to roll back to")
        target, retired = earlier[-1], list[Path]()
        forget_list = read_forget_list(home)
        if _holds(target, forget_list):
            target = _purge(target, forget_list, home, retired)
        point(out, target)
        _remove_when_released(retired, RELEASE_SECONDS)
    return target


def hide(out: Path, name: str | None, caption: str | None) -> str:
    """Add a person (by identity or shown name) or a whole caption to the hide list; returns what
    was hidden, as the gallery holds it. ForgetError when the live gallery has no such person or caption."""
    home = gallery_home(out)
    hidden = read_hide_list(home)
    gallery = Gallery(out, use_gpu=False)
    try:
        if caption is not None:
            text = _caption(gallery.db, gallery.name, caption)
            write_hide_list(home, replace(hidden, captions=_added(hidden.captions, text)))
            return text
        identity = _identity(gallery.db, gallery.name, name or "")
    finally:
        gallery.close()
    write_hide_list(home, replace(hidden, people=_added(hidden.people, identity)))
    return identity


def unhide(out: Path, name: str | None, caption: str | None) -> str:
    """Take a person or a caption off the hide list; ForgetError when it is not on it."""
    home = gallery_home(out)
    hidden = read_hide_list(home)
    if caption is not None:
        text = caption.strip()
        if text not in hidden.captions:
            raise ForgetError(f"the caption {text!r} is not hidden in {out}")
        write_hide_list(home, replace(hidden, captions=tuple(c for c in hidden.captions if c != text)))
        return text
    wanted = (name or "").strip()
    found = [identity for identity in hidden.people if _same(identity, wanted)]
    if not found:
        raise ForgetError(f"{wanted!r} is not hidden in {out}")
    write_hide_list(home, replace(hidden, people=tuple(p for p in hidden.people if p not in found)))
    return found[0]


def hide_list(out: Path) -> HideList:
    return read_hide_list(gallery_home(out))


def _added(values: tuple[str, ...], value: str) -> tuple[str, ...]:
    return values if value in values else (*values, value)


def _same(identity: str, name: str) -> bool:
    """A name as staff type it matches the identity (a corpus folder's name) or the name shown."""
    wanted = " ".join(name.replace("_", " ").split()).casefold()
    return bool(wanted) and " ".join(identity.replace("_", " ").split()).casefold() == wanted


def _live(out: Path) -> Path:
    if not out.is_symlink():
        raise ForgetError(f"{out} is not a gallery published by index-builder (no gallery link there)")
    return out.resolve()


def _identity(db: sqlite3.Connection, gallery: str, name: str) -> str:
    """The identity in the gallery of metadata `db` that `name` names; ForgetError for nobody or for several."""
    identities: list[str] = [identity for (identity,) in db.execute(
        "SELECT DISTINCT identity FROM faces WHERE identity != ''")]
    exact = [identity for identity in identities if identity == name]
    found = exact or [identity for identity in identities if _same(identity, name)]
    if not found:
        raise ForgetError(f"{name!r} is not a person in {gallery} (see `index-builder info`)")
    if len(found) > 1:
        raise ForgetError(f"{name!r} names several people in {gallery}: {', '.join(found[:5])}; give one exactly")
    return found[0]


def _caption(db: sqlite3.Connection, gallery: str, caption: str) -> str:
    text = caption.strip()
    if not text or db.execute("SELECT 1 FROM faces WHERE caption = ? LIMIT 1", (text,)).fetchone() is None:
        raise ForgetError(f"no face in {gallery} has the caption {text!r} (a whole caption, as shown)")
    return text


def _person(live: Path, gallery: str, name: str, forget_list: ForgetList) -> Forgotten:
    """The forget list's entry for `name`: their photos and faces in the `live` version (an entry
    already on the list when they are gone from it: a forget run again finishes its purge)."""
    with _metadata(live) as db:
        try:
            identity = _identity(db, gallery, name)
        except ForgetError:
            known = [person for person in forget_list.people if _same(person.identity, name)]
            if known:
                return known[0]
            raise
        rows = db.execute("SELECT photo_sha1, photo_face FROM faces WHERE identity = ?", (identity,)).fetchall()
    return Forgotten(identity, tuple(sorted({sha1 for sha1, _ in rows})),
                     tuple(sorted(f"{sha1}:{face}" for sha1, face in rows)), time.strftime("%Y-%m-%dT%H:%M:%S%z"))


def _holds(version: Path, forget_list: ForgetList) -> bool:
    with _metadata(version) as db:
        return any(forget_list.covers(identity, sha1) for identity, sha1 in
                   db.execute("SELECT identity, photo_sha1 FROM faces"))


@contextmanager
def _metadata(version: Path) -> Iterator[sqlite3.Connection]:
    """The faces table of `version`, read-only. Who is in a version needs no Gallery, whose index
    (gigabytes at 10^7 faces, loaded beside the kiosk's own copy) would be read for nothing."""
    try:
        with closing(sqlite3.connect(f"{(version / METADATA_FILE).as_uri()}?mode=ro", uri=True)) as db:
            yield db
    except sqlite3.Error as error:
        raise ForgetError(f"{version.name}: {METADATA_FILE} cannot be read ({error})") from None


def _purge(version: Path, forget_list: ForgetList, home: Path, retired: list[Path]) -> Path:
    """`version` rewritten without the forgotten, beside it (its name and a -f, so it keeps its
    place in time); the original joins `retired`."""
    purged = write_version(version.parent, f"{version.name}-f", *_without(version, forget_list, home))
    retired.append(version)
    return purged


def _without(version: Path, forget_list: ForgetList, home: Path) -> tuple[np.ndarray, Writer]:
    """The vectors and the writer of `version` less the faces the forget list covers."""
    gallery = Gallery(version, use_gpu=False)
    try:
        faces = [face for start in range(0, gallery.count, RECORDS_AT_ONCE)
                 for face in gallery.faces(list(range(start, min(start + RECORDS_AT_ONCE, gallery.count))))]
        kept = [face for face in faces if not forget_list.covers(face.identity, face.photo_sha1)]
        if not kept:
            raise ForgetError(f"{version.name} would hold nobody once the forgotten are left out")
        xb = _vectors(gallery, kept, home / "work")
        quality = gallery.quality[[face.id for face in kept]] if gallery.quality is not None else None
        return xb, Writer(gallery.manifest, kept, xb, quality, len(faces) - len(kept))
    finally:
        gallery.close()


@dataclass
class Writer:
    """Writes a gallery of the `kept` faces of a version, measuring again what depends on who is in it."""

    manifest: Manifest
    kept: list[FaceRecord]
    xb: np.ndarray
    quality: np.ndarray | None
    left_out: int

    def __call__(self, folder: Path) -> None:
        old = self.manifest
        started = time.time()
        index = train_and_add(old.index.factory, self.xb, faiss.get_num_gpus() > 0)
        set_search(index, old.index.settings or old.index.search_params)
        identities = [face.identity for face in self.kept]
        quality = self.quality if self.quality is not None else np.zeros((len(self.kept), 4), np.float32)
        measures = people_measures(index, Vectors.of(self.xb), identities, quality, time.time() - started,
                                   progress=False, pack=old.pack)
        manifest = replace(
            old, count=len(self.kept), identities=len({name for name in identities if name}),
            index=replace(old.index, reason=f"{old.index.reason}; rebuilt without {self.left_out} forgotten face(s)"),
            build=replace(old.build, gallery_faces=len(self.kept), identities=len({n for n in identities if n}),
                          photos_with_faces=len({face.photo_sha1 for face in self.kept}),
                          content_id=_content_id(old.build.content_id, self.kept)),
            built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), fairness=measures.fairness, likeness=measures.likeness)
        faces = [face_record(i, **{key: value for key, value in asdict(face).items()
                                   if key != "id" and key not in FACE_PICTURES}) for i, face in enumerate(self.kept)]
        pictures = (tuple(Path(getattr(face, kind)).read_bytes() for kind in FACE_PICTURES) for face in self.kept)
        write_gallery(folder, manifest, index, faces, pictures, measures.hubness, self.quality, measures.pairs)


def _content_id(before: str, kept: list[FaceRecord]) -> str:
    """A new content id: the next build (whose own id differs) publishes its own version."""
    return hashlib.sha1(repr((before, [face.content_key for face in kept])).encode()).hexdigest()


def _vectors(gallery: Gallery, kept: list[FaceRecord], work: Path) -> np.ndarray:
    """The embeddings of `kept`, from the work state, else from an index that stores them whole."""
    found = _state_vectors(work, [face.content_key for face in kept])
    missing = [i for i, face in enumerate(kept) if face.content_key not in found]
    if missing and any(code in gallery.manifest.index.factory for code in LOSSY_CODES):
        raise ForgetError(f"{len(missing)} face(s) of {gallery.root.name} are not in the work folder {work}, and its "
                          f"{gallery.manifest.index.factory} index keeps no whole vectors: run `index-builder build` "
                          "instead (it leaves the forgotten out)")
    index = gallery.index
    if missing:
        if isinstance(index, faiss.IndexIVF):
            index.make_direct_map()
        rebuilt = index.reconstruct_batch(np.array([kept[i].id for i in missing], np.int64))
        found.update({kept[i].content_key: vector for i, vector in zip(missing, rebuilt, strict=True)})
    return np.stack([found[face.content_key] for face in kept]).astype(np.float32)


def _state_vectors(work: Path, keys: list[str]) -> dict[str, np.ndarray]:
    """The vectors the build's work state holds for these content keys (photo SHA-1 : face)."""
    if not (work / "state.sqlite").is_file():
        return {}
    state = BuildState(work)
    try:
        wanted = set(keys)
        rows = [row for row in state.gallery_rows() if f"{row.sha1}:{row.face}" in wanted]
        vectors = state.vectors(rows) if rows else np.zeros((0, 0), np.float32)
        return {f"{row.sha1}:{row.face}": vector for row, vector in zip(rows, vectors, strict=True)}
    finally:
        state.close()


def _withhold_in_work_state(work: Path, person: Forgotten) -> None:
    """The person's photos marked forgotten in the build's work state now, their pictures dropped
    from it (the next build would do the same): nothing of them waits there for the night."""
    if not (work / "state.sqlite").is_file() or not person.photos:
        return
    state = BuildState(work)
    try:
        marks = ",".join("?" * len(person.photos))
        keys = {key for (key,) in state.db.execute(f"SELECT key FROM items WHERE sha1 IN ({marks})", person.photos)}
        state.withhold(keys)
    finally:
        state.close()


def _remove_when_released(versions: list[Path], seconds: float) -> list[Path]:
    """Remove `versions` once no process holds a file of theirs open (the kiosk that showed one has
    swapped), waiting at most `seconds`; returns those still held when they were removed."""
    deadline = time.monotonic() + seconds
    held = held_versions(versions)
    while held and time.monotonic() < deadline:
        time.sleep(0.5)
        held = held_versions(versions)
    for version in versions:
        shutil.rmtree(version, ignore_errors=True)
    return held
