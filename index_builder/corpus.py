"""Read a corpus: a folder tree (a photo's identity is its parent folder's name, as in LFW) or a
manifest (CSV or JSONL with `path` and optional `name`, `caption`, `source`)."""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path


class CorpusError(ValueError):
    """A corpus that cannot be read at all (a bad photo inside one is never a CorpusError)."""


@dataclass(frozen=True)
class CorpusItem:
    key: str  # stable name of the photo within the corpus; orders the gallery
    path: str
    identity: str
    caption: str
    source: str
    size: int  # with mtime_ns: a changed file is embedded again
    mtime_ns: int


def read_corpus(corpus: Path) -> list[CorpusItem]:
    """Every photo of the corpus, sorted by key. Missing files in a manifest are kept (they are
    reported as `missing` by the build, like any unreadable photo)."""
    corpus = Path(corpus).resolve()  # galleries record absolute photo paths: readers run from anywhere
    if corpus.is_dir():
        items = _read_tree(corpus)
    elif corpus.suffix.lower() in (".csv", ".jsonl"):
        items = _read_manifest(corpus)
    else:
        raise CorpusError(f"{corpus}: a corpus is a folder of photos or a .csv / .jsonl manifest")
    return sorted(items, key=lambda item: item.key)


def display_name(identity: str) -> str:
    return identity.replace("_", " ").strip()


def _read_tree(root: Path) -> list[CorpusItem]:
    items = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            path = Path(folder) / name
            identity = path.parent.name if path.parent != root else ""
            items.append(_item(path.relative_to(root).as_posix(), path, identity, "", ""))
    return items


def _read_manifest(manifest: Path) -> list[CorpusItem]:
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise CorpusError(f"{manifest}: {error.strerror}") from None
    if manifest.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
    else:
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as error:
            raise CorpusError(f"{manifest}: line {error.lineno}: not JSON ({error.msg})") from None
    items = []
    for number, row in enumerate(rows, 1):
        if not row.get("path"):
            raise CorpusError(f"{manifest}: row {number} has no 'path'")
        path = manifest.parent / row["path"]
        items.append(_item(str(row["path"]), path, row.get("name") or "", row.get("caption") or "",
                           row.get("source") or ""))
    return items


def _item(key: str, path: Path, identity: str, caption: str, source: str) -> CorpusItem:
    try:
        stat = path.stat()
        size, mtime_ns = stat.st_size, stat.st_mtime_ns
    except OSError:
        size, mtime_ns = -1, -1
    return CorpusItem(key, str(path), identity, caption, source, size, mtime_ns)
