"""Read a corpus: a folder tree (a photo's identity is its parent folder's name, as in LFW) or a
manifest (CSV or JSONL with `path` and optional `name`, `caption`, `source`).

A corpus is written by strangers. Its names, captions and sources become one line of plain text of
bounded length here; a manifest row may not reach outside the manifest's folder; a malformed
manifest is refused with one line naming the file, the line and what is wrong. A row or folder the
reader leaves out is counted by reason, like a photo the build skips."""
from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFESTS = (".csv", ".jsonl")
LIMITS = {"name": 80, "caption": 200, "source": 200}  # characters kept; a cut text ends with "…"
MAX_WARNINGS = 20
# csv refuses fields over 131072 characters by default; a longer caption is data, cut like any other
MAX_CSV_FIELD = 64 * 1024 * 1024
# Control characters, line and paragraph separators, bidi embeddings, overrides and isolates would
# break a label onto several lines or reorder it: each becomes a space. A lone surrogate (from a
# JSON escape) cannot be stored as UTF-8: it becomes the replacement character.
_UNPRINTABLE = {
    **dict.fromkeys([*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F),
                     *range(0x2066, 0x206A)], " "),
    **dict.fromkeys(range(0xD800, 0xE000), "\ufffd"),
}
_JSON_TYPES = {int: "a number", float: "a number", bool: "true or false", str: "a string", list: "an array",
               dict: "an object", type(None): "null"}


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


@dataclass
class Corpus:
    """What the reader found: the photos, and what it left out or cut, counted."""

    items: list[CorpusItem] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)  # rows, files or folders left out, by reason
    truncated: Counter[str] = field(default_factory=Counter)  # texts cut to LIMITS, by field
    warnings: list[str] = field(default_factory=list)  # the first MAX_WARNINGS; `refused` counts them all

    def add(self, key: str, path: Path, identity: str, caption: str = "", source: str = "") -> None:
        identity, caption, source = (self._plain(name, text) for name, text in
                                     (("name", identity), ("caption", caption), ("source", source)))
        try:
            status = path.stat()
            size, mtime_ns = status.st_size, status.st_mtime_ns
        except OSError:
            size, mtime_ns = -1, -1
        self.items.append(CorpusItem(key, str(path), identity, caption, source, size, mtime_ns))

    def warn(self, message: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)

    def _plain(self, name: str, text: str) -> str:
        text = text.translate(_UNPRINTABLE).strip()
        if len(text) <= LIMITS[name]:
            return text
        self.truncated[name] += 1
        return text[:LIMITS[name] - 1].rstrip() + "…"


def read_corpus(corpus: Path, allow_outside: bool = False) -> Corpus:
    """Every photo of the corpus, sorted by key. Missing files in a manifest are kept (they are
    reported as `missing` by the build, like any unreadable photo). A manifest row whose path,
    resolved, lies outside the manifest's folder is refused unless `allow_outside`. A corpus with
    no photo at all is a CorpusError that says what was found."""
    corpus = Path(corpus).resolve()  # galleries record absolute photo paths: readers run from anywhere
    if corpus.is_dir():
        found = _read_tree(corpus)
    elif corpus.suffix.lower() in MANIFESTS:
        found = _read_manifest(corpus, allow_outside)
    else:
        raise CorpusError(f"{corpus}: a corpus is a folder of photos or a .csv / .jsonl manifest")
    found.items.sort(key=lambda item: item.key)
    return found


def display_name(identity: str) -> str:
    return identity.replace("_", " ").strip()


def _read_tree(root: Path) -> Corpus:
    """Links to folders are followed wherever they lead (a tree of linked person folders is a
    corpus); a folder reached a second time is read once, so a link loop ends."""
    corpus = Corpus()
    seen = {_folder_id(root): root}
    folders = linked = hidden = 0

    def unreadable(error: OSError) -> None:
        corpus.refused["unreadable_folder"] += 1

    for folder, subfolders, files in os.walk(root, onerror=unreadable, followlinks=True):
        folders += 1
        visible = sorted(name for name in subfolders if not name.startswith("."))  # sorted: the first name wins
        hidden += len(subfolders) - len(visible)
        subfolders[:] = [name for name in visible if _first_visit(Path(folder), name, seen, corpus)]
        linked += sum(1 for name in subfolders if os.path.islink(os.path.join(folder, name)))
        for name in files:
            path = Path(folder) / name
            key = path.relative_to(root).as_posix()
            if name.startswith("."):
                hidden += 1
            elif not _is_unicode(key):  # undecodable bytes: the gallery stores names as UTF-8 text
                corpus.refused["undecodable_name"] += 1
            else:
                corpus.add(key, path, path.parent.name if path.parent != root else "")
    if not corpus.items:
        left_out = _counts(corpus.refused + Counter(hidden=hidden))
        raise CorpusError(f"no photo found in {root}: {folders} folder(s) read ({linked} through symlinks), "
                          + (f"left out: {left_out}" if left_out else "no file in them"))
    return corpus


def _folder_id(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_dev, status.st_ino


def _first_visit(folder: Path, name: str, seen: dict[tuple[int, int], Path], corpus: Corpus) -> bool:
    """Whether to walk into folder/name: not when a link brings the walk back to a folder it has
    reached before (`seen`: each folder's device and inode, and the path it was first reached by).
    Back inside the first path's own walk, it is a loop."""
    try:
        identity = _folder_id(folder / name)
    except OSError:
        return True  # os.walk reports it as unreadable
    if identity not in seen:
        seen[identity] = folder / name
        return True
    corpus.refused["symlink_loop" if folder.is_relative_to(seen[identity]) else "repeated_folder"] += 1
    return False


def _read_manifest(manifest: Path, allow_outside: bool) -> Corpus:
    folder = manifest.parent
    rows = _csv_rows(manifest) if manifest.suffix.lower() == ".csv" else _jsonl_rows(manifest)
    corpus = Corpus()
    first_line: dict[str, int] = {}
    count = 0
    for line, row in rows:
        count += 1
        path = _checked_path(manifest, line, row)
        real = os.path.realpath(folder / path)
        if not allow_outside and not Path(real).is_relative_to(folder):
            corpus.refused["outside_corpus"] += 1
        elif real in first_line:
            corpus.refused["duplicate_row"] += 1
            corpus.warn(f"{manifest}: line {line} repeats the path of line {first_line[real]} "
                        f"(kept line {first_line[real]})")
        else:
            first_line[real] = line
            corpus.add(path, folder / path, row.get("name") or "", row.get("caption") or "", row.get("source") or "")
    if not corpus.items:
        why = "it has no rows" if not count else f"its {count} rows were refused ({_counts(corpus.refused)})"
        hint = f"; paths must lie inside {folder} unless --allow-outside" if corpus.refused["outside_corpus"] else ""
        raise CorpusError(f"no photo found in {manifest}: {why}{hint}")
    return corpus


def _checked_path(manifest: Path, line: int, row: dict[str, Any]) -> str:
    """The row's path, once every text field of the row is known to be text."""
    for name in ("path", "name", "caption", "source"):
        value = row.get(name)
        if value is not None and not isinstance(value, str):
            raise CorpusError(f"{manifest}: line {line}: `{name}` is {_JSON_TYPES[type(value)]}, not text")
    path: str | None = row.get("path")
    if path is None:
        raise CorpusError(f"{manifest}: line {line}: no `path`")
    if not path.strip():
        raise CorpusError(f"{manifest}: line {line}: empty `path`")
    if "\0" in path or not _is_unicode(path):
        raise CorpusError(f"{manifest}: line {line}: `path` holds a character no file name can")
    return path


def _csv_rows(manifest: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line where the row starts, row) for each row with any text; the first row names the columns."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CSV_FIELD))
    reader = csv.reader(io.StringIO(_manifest_text(manifest), newline=""), strict=True)
    start = 1
    try:
        columns = [name.strip() for name in next(reader, [])]
        if "path" not in columns:
            raise CorpusError(f"{manifest}: line 1: no `path` column "
                              "(the first line names the columns: path,name,caption,source)")
        start = reader.line_num + 1
        for row in reader:
            if len(row) > len(columns):
                raise CorpusError(f"{manifest}: line {start}: {len(row)} fields under {len(columns)} columns "
                                  "(quote a field that holds a comma)")
            if any(value.strip() for value in row):  # spreadsheets write empty rows as ",,,"
                yield start, dict(zip(columns, row, strict=False))  # a short row leaves its last columns out
            start = reader.line_num + 1
    except csv.Error as error:
        raise CorpusError(f"{manifest}: line {start}: not CSV ({error})") from None


def _jsonl_rows(manifest: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for line, text in enumerate(_manifest_text(manifest).split("\n"), 1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as error:
            raise CorpusError(f"{manifest}: line {line}: not JSON ({error.msg}, column {error.colno})") from None
        except RecursionError:
            raise CorpusError(f"{manifest}: line {line}: not JSON (nested too deeply)") from None
        if not isinstance(row, dict):
            raise CorpusError(f"{manifest}: line {line}: {_JSON_TYPES[type(row)]}, "
                              'not an object such as {"path": "photo.jpg"}')
        yield line, row


def _manifest_text(manifest: Path) -> str:
    try:
        if not stat.S_ISREG(manifest.stat().st_mode):
            raise CorpusError(f"{manifest}: not a regular file")
        data = manifest.read_bytes()
    except OSError as error:
        raise CorpusError(f"{manifest}: {error.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise CorpusError(f"{manifest}: line {line}: not UTF-8 text (save it as UTF-8)") from None
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise CorpusError(f"{manifest}: line {line}: a NUL byte, so not UTF-8 text (save it as UTF-8)")
    return text


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _counts(counts: Counter[str]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in sorted(counts.items()))
