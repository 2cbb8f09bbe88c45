"""Write a gallery version beside the live one, validate it, then swap the link atomically.

Layout for `--out galleries/lfw`:
    galleries/lfw            -> a symlink to the live version (what readers open)
    galleries/lfw.d/versions/<stamp>/   published versions (the live one, the one before it, and
                                        any older one a reader such as the kiosk still holds open)
    galleries/lfw.d/work/               the build's resumable state
    galleries/lfw.d/forgotten.json, hidden.json  staff's lists (face_engine.withheld)
A failed or interrupted build never touches the link, so the last good gallery stays in use.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path

import numpy as np

from face_engine.gallery import FACE_PICTURES, Gallery
from face_engine.withheld import VERSIONS
from face_engine.withheld import gallery_home as gallery_home
from index_builder.indexes import Vectors

KEEP_VERSIONS = 2  # the live one and the one before it (to roll back to); held ones are kept besides


class PublishError(RuntimeError):
    """The new gallery was not published; the live one is untouched."""


def validate(folder: Path, xb: np.ndarray | Vectors) -> None:
    """It opens, its counts agree, and known faces find themselves."""
    gallery = Gallery(folder, use_gpu=False)
    try:
        rows = gallery.db.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
        if not gallery.count == rows == gallery.manifest.count == len(xb):
            raise PublishError(f"counts disagree: index {gallery.count}, metadata {rows}, "
                               f"manifest {gallery.manifest.count}, vectors {len(xb)}")
        probes = np.unique(np.linspace(0, len(xb) - 1, num=min(10, len(xb))).astype(int))
        D, I = gallery.search(xb[probes], 1)
        if (D[:, 0] < 0.99).any():
            raise PublishError(f"known faces did not find themselves: best scores {D[:, 0].round(3).tolist()}")
        # faces() leaves out ids it cannot find: then fewer faces than probes
        missing = [p for p, face in zip(probes, gallery.faces(I[:, 0].tolist()), strict=False)
                   if not all(Path(getattr(face, kind)).is_file() for kind in FACE_PICTURES)]
        if missing:
            raise PublishError(f"thumbnails or portraits missing for vectors {missing}")
    finally:
        gallery.close()


def publish(out: Path, xb: np.ndarray | Vectors, write: Callable[[Path], None], retired: Path | None = None) -> Path:
    """Write with `write(folder)`, validate against xb, then point `out` at it. Returns the version folder.
    `retired`: a version the new one replaces (itself less forgotten people), not kept as the one
    before it: the caller removes it once no reader holds it."""
    check_out(out)
    versions = gallery_home(out) / VERSIONS
    final = write_version(versions, version_name(), xb, write)
    try:
        point(out, final)
    except PublishError:
        shutil.rmtree(final, ignore_errors=True)
        raise
    _prune(versions, live=final, retired=retired)
    return final


def check_out(out: Path) -> None:
    """`out` is free, or the gallery link index-builder made there: a link into its own
    GALLERY.d/versions. Anything else (a file, a folder, a link elsewhere such as into /etc) is never
    replaced: PublishError."""
    if not out.is_symlink():
        if out.exists():
            raise PublishError(f"{out} exists and is not a gallery link made by index-builder; choose another --out")
        return
    target = os.readlink(out)
    if _normal(out.parent / target).parent != _normal(gallery_home(out) / VERSIONS):
        raise PublishError(f"{out} is a link to {target[:200]!r}, not to a version of this gallery in "
                           f"{gallery_home(out) / VERSIONS}; it is left as it is: choose another --out")


def _normal(path: Path) -> Path:
    return Path(os.path.normpath(path.absolute()))


def version_name() -> str:
    """A new version's name: its time to the microsecond, so names sort as versions were made even
    when a build, a forget and a rebuild publish within one second (rollback and pruning go by them)."""
    return datetime.now().strftime("%Y%m%d-%H%M%S-%f")


def write_version(versions: Path, name: str, xb: np.ndarray | Vectors, write: Callable[[Path], None]) -> Path:
    """A validated version folder versions/<name> (or <name>-1, ... when taken), written with
    `write(folder)` beside the others; nothing points at it yet."""
    versions.mkdir(parents=True, exist_ok=True)
    for partial in versions.glob(".*.partial"):
        shutil.rmtree(partial)  # left by a build that was killed while writing
    staging = versions / f".{name}.partial"
    try:
        write(staging)
        validate(staging, xb)
    except (OSError, sqlite3.OperationalError) as error:  # disk full, read-only
        shutil.rmtree(staging, ignore_errors=True)
        raise cannot_write(error, staging) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    final = versions / name
    suffix = 1
    while final.exists():
        final, suffix = versions / f"{name}-{suffix}", suffix + 1
    try:
        os.rename(staging, final)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise cannot_write(error, final) from None
    return final


def point(out: Path, version: Path) -> None:
    """Point the gallery link `out` at `version`, atomically: a reader opens the old or the new."""
    link = out.parent / f".{out.name}.link-{os.getpid()}"
    try:
        os.symlink(os.path.relpath(version, out.parent), link)
        os.replace(link, out)
    except OSError as error:
        link.unlink(missing_ok=True)
        raise cannot_write(error, out) from None


def kept_versions(out: Path) -> list[Path]:
    """The published versions of gallery `out`, oldest first (their names are their times)."""
    versions = gallery_home(out) / VERSIONS
    if not versions.is_dir():
        return []
    return sorted(path for path in versions.iterdir() if path.is_dir() and not path.name.startswith("."))


def cannot_write(error: OSError | sqlite3.OperationalError, path: Path) -> PublishError:
    """A disk-full or read-only error as one line naming the file (else `path`) and the reason."""
    where = getattr(error, "filename", None) or path
    reason = getattr(error, "strerror", None) or error
    return PublishError(f"cannot write {where}: {reason}; the live gallery is unchanged")


def _prune(versions: Path, live: Path, retired: Path | None = None) -> None:
    """Remove the versions older than the KEEP_VERSIONS newest, except those a reader holds open:
    the kiosk serves its version until its next break, however many publishes come before it (a
    held version goes at the first publish after it is let go)."""
    older = sorted((p for p in versions.iterdir() if not p.name.startswith(".") and p not in (live, retired)),
                   reverse=True)
    stale = older[KEEP_VERSIONS - 1:]
    held = held_versions(stale)
    for version in stale:
        if version not in held:
            shutil.rmtree(version)


def held_versions(versions: Iterable[Path]) -> list[Path]:
    """The versions some other process (the kiosk, a search) holds a file of open or mapped (Linux
    /proc; elsewhere nothing is seen held)."""
    prefixes = {version: f"{version.resolve()}/" for version in versions}
    if not prefixes:
        return []
    held: set[Path] = set()
    for opened in _files_of_other_processes():
        held.update(version for version, prefix in prefixes.items() if any(path.startswith(prefix) for path in opened))
        if len(held) == len(prefixes):  # the scan stops at the kiosk's process, not at the last of /proc
            break
    return [version for version in prefixes if version in held]


def _files_of_other_processes() -> Iterator[set[str]]:
    """Per process but this one, the paths it holds open or mapped (none for another user's, or one that has ended)."""
    for process in Path("/proc").glob("[0-9]*"):
        if process.name == str(os.getpid()):
            continue
        try:
            opened = {os.readlink(fd) for fd in (process / "fd").iterdir()}
            opened.update(line.split(maxsplit=5)[-1] for line in (process / "maps").read_text().splitlines()
                          if "/" in line)
        except OSError:
            continue
        yield opened
