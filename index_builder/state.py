"""The build's memory between runs: which photos are done, their faces, and where their embeddings
are. Embeddings live in shard files; a shard is written (temp file, then rename) before the
transaction that records it, so a killed build loses at most the shard it was filling."""
from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from index_builder.corpus import CorpusItem
from index_builder.indexes import Vectors
from index_builder.worker import PhotoResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    key TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, sha1 TEXT,
    reason TEXT NOT NULL,            -- '' when the photo added faces, else why it was skipped
    duplicate_of TEXT
);
CREATE INDEX IF NOT EXISTS items_sha1 ON items (sha1);
CREATE TABLE IF NOT EXISTS faces (
    key TEXT NOT NULL, face INTEGER NOT NULL, shard TEXT NOT NULL, row INTEGER NOT NULL,
    x1 REAL, y1 REAL, x2 REAL, y2 REAL, score REAL, thumbnail BLOB, portrait BLOB,
    quality REAL, sharpness REAL, frontal REAL, size REAL,  -- face_engine.quality.COLUMNS
    source_side INTEGER,  -- photo pixels across the portrait (FaceRecord.source_side)
    PRIMARY KEY (key, face)
);
"""


GALLERY_ORDER = "ORDER BY key, face"


class ItemRow(NamedTuple):
    """A photo of the corpus as the state remembers it."""

    key: str
    size: int
    mtime_ns: int
    sha1: str
    reason: str  # '' when the photo added faces, else why it was skipped
    duplicate_of: str | None = None  # the photo with the same bytes, for a duplicate


class Box(NamedTuple):
    """A face box in image pixels, x1, y1, x2, y2, as Python floats. The detector's (n, 4) float32
    arrays become Boxes once, where a face enters the state, and stay Boxes up to the gallery's
    FaceRecord: what is stored and published never depends on numpy's types."""

    x1: float
    y1: float
    x2: float
    y2: float

    @classmethod
    def of(cls, box: np.ndarray) -> Box:
        return cls(*map(float, box))


Quality = tuple[float, float, float, float]  # face_engine.quality.COLUMNS: the overall score and its parts


class FaceRow(NamedTuple):
    """A face in the state: its photo, its number in the photo, where its vector is, box, score and
    portrait quality."""

    key: str
    face: int
    shard: str
    row: int
    box: Box
    score: float
    sha1: str = ""  # the photo's content hash
    quality: Quality = (0.0, 0.0, 0.0, 0.0)
    source_side: int = 0  # photo pixels across the portrait


class NewFace(NamedTuple):
    """A face of the shard being filled, with its pictures' JPEGs; the shard is named on commit."""

    key: str
    face: int
    row: int
    box: Box
    score: float
    thumbnail: bytes
    portrait: bytes
    quality: Quality
    source_side: int = 0


def _face_columns(db: sqlite3.Connection) -> list[str]:
    return [column for _, column, *_ in db.execute("PRAGMA table_info(faces)")]


def _schema_face_columns() -> list[str]:
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(SCHEMA)
        return _face_columns(db)
    finally:
        db.close()


FACE_COLUMNS = _schema_face_columns()


def _quality(scores: np.ndarray) -> Quality:
    overall, sharpness, frontal, size = map(float, scores)
    return overall, sharpness, frontal, size


class BuildState:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.shards = work / "shards"
        self.shards.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(work / "state.sqlite")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        self._shard_number = max((int(p.stem) for p in self.shards.glob("*.npy") if p.stem.isdigit()), default=-1)

    def outdated(self) -> str | None:
        """Why a work folder made by an older index-builder cannot be resumed (its faces table is
        laid out otherwise: without portraits or quality scores, with the landmarks no longer kept),
        or None."""
        columns = _face_columns(self.db)
        if "portrait" not in columns:
            return "its faces have no portraits"
        if "quality" not in columns:
            return "its faces have no quality scores"
        if "source_side" not in columns:
            return "its portraits were cut before corpus borders were trimmed"
        if columns != FACE_COLUMNS:
            return f"its faces table differs in {', '.join(sorted(set(columns) ^ set(FACE_COLUMNS)))}"
        return None

    def settings(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT name, value FROM settings"))

    def save_settings(self, settings: dict[str, str]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO settings VALUES (?, ?)", settings.items())

    def sync(self, corpus: list[CorpusItem]) -> tuple[list[CorpusItem], int]:
        """Forget photos that left the corpus or changed; return the photos still to process and
        how many were removed. A duplicate whose original is forgotten is processed again."""
        known = {key: (size, mtime) for key, size, mtime in self.db.execute("SELECT key, size, mtime_ns FROM items")}
        current = {item.key: item for item in corpus}
        stale = [key for key, signature in known.items()
                 if key not in current or signature != (current[key].size, current[key].mtime_ns)]
        with self.db:
            for key in stale:
                self._forget(key)
        done = {key for (key,) in self.db.execute("SELECT key FROM items")}
        removed = sum(1 for key in known if key not in current)
        return [item for item in corpus if item.key not in done], removed

    def _forget(self, key: str) -> None:
        orphans = [k for (k,) in self.db.execute("SELECT key FROM items WHERE duplicate_of = ?", (key,))]
        self.db.execute("DELETE FROM items WHERE key = ?", (key,))
        self.db.execute("DELETE FROM faces WHERE key = ?", (key,))
        for orphan in orphans:
            self._forget(orphan)

    def withhold(self, keys: set[str]) -> None:
        """Photos of forgotten people: their faces (and pictures) leave the state, and the photos stay
        known as skipped ("forgotten"), so they are neither embedded again nor published."""
        with self.db:
            for key in keys:
                self.db.execute("DELETE FROM faces WHERE key = ?", (key,))
                self.db.execute("UPDATE items SET reason = 'forgotten' WHERE key = ?", (key,))

    def original_of(self, sha1: str) -> str | None:
        row = self.db.execute("SELECT key FROM items WHERE sha1 = ? AND duplicate_of IS NULL AND reason = '' LIMIT 1",
                              (sha1,)).fetchone()
        return row[0] if row else None

    def next_shard_name(self) -> str:
        self._shard_number += 1
        return f"{self._shard_number:06d}"

    def commit(self, shard: str, vectors: np.ndarray, items: Iterable[ItemRow], faces: Iterable[NewFace]) -> None:
        """Record a filled shard: its vectors first, then its rows in one transaction."""
        if len(vectors):
            temporary = self.shards / f"{shard}.npy.tmp"
            with open(temporary, "wb") as file:
                np.save(file, vectors)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.shards / f"{shard}.npy")
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?, ?)", items)
            self.db.executemany(
                f"INSERT OR REPLACE INTO faces VALUES ({', '.join('?' * len(FACE_COLUMNS))})",
                [(face.key, face.face, shard, face.row, *face.box, face.score, face.thumbnail, face.portrait,
                  *face.quality, face.source_side) for face in faces],
            )

    def remove_unreferenced_shards(self) -> None:
        used = {shard for (shard,) in self.db.execute("SELECT DISTINCT shard FROM faces")}
        for path in self.shards.iterdir():
            if path.name.split(".")[0] not in used:
                path.unlink()

    def skip_counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT reason, COUNT(*) FROM items WHERE reason != '' GROUP BY reason"))

    def gallery_rows(self) -> list[FaceRow]:
        """Every face, ordered by photo key then face number: the gallery's vector order, the same
        whatever order or how many runs the photos were processed in."""
        rows = self.db.execute("SELECT key, face, shard, row, x1, y1, x2, y2, score, sha1, quality, sharpness, "
                               f"frontal, faces.size, source_side FROM faces JOIN items USING (key) {GALLERY_ORDER}")
        return [FaceRow(key, face, shard, row, Box(x1, y1, x2, y2), score, sha1, (quality, sharpness, frontal, size),
                        side) for key, face, shard, row, x1, y1, x2, y2, score, sha1, quality, sharpness, frontal, size,
                side in rows]

    def pictures(self, rows: list[FaceRow]) -> Iterator[tuple[bytes, bytes]]:
        """The (thumbnail, portrait) JPEGs of `rows` (in gallery order, some faces perhaps left out),
        streamed: all of them would not fit in memory."""
        wanted = iter(rows)
        next_row = next(wanted, None)
        for key, face, thumbnail, portrait in self.db.execute(
                f"SELECT key, face, thumbnail, portrait FROM faces {GALLERY_ORDER}"):
            if next_row is None:
                return
            if (key, face) == (next_row.key, next_row.face):  # both in gallery order: one merging pass
                yield thumbnail, portrait
                next_row = next(wanted, None)


    def vectors(self, rows: list[FaceRow]) -> np.ndarray:
        """The embeddings of `rows`, in their order, read one shard at a time."""
        shards = np.array([row.shard for row in rows])
        positions = np.array([row.row for row in rows], dtype=np.int64)
        vectors: np.ndarray | None = None
        for shard in np.unique(shards):
            stored = np.load(self.shards / f"{shard}.npy", mmap_mode="r")
            if vectors is None:
                vectors = np.empty((len(rows), stored.shape[1]), np.float32)
            mine = shards == shard
            vectors[mine] = stored[positions[mine]]
        return vectors if vectors is not None else np.zeros((0, 0), np.float32)

    def vector_blocks(self, rows: list[FaceRow], block: int = 100_000) -> Vectors:
        """The embeddings of `rows` as Vectors: blocks in their order, read from the shards on each
        pass, so the index stage never holds the whole gallery."""
        dim = np.load(self.shards / f"{rows[0].shard}.npy", mmap_mode="r").shape[1] if rows else 0
        return Vectors(len(rows), dim, lambda: (self.vectors(rows[start:start + block])
                                                for start in range(0, len(rows), block)))

    def close(self) -> None:
        self.db.close()


class PendingShard:
    """The shard being filled: the photos processed since the last one, their rows, their faces,
    and their embeddings, computed a recognizer batch at a time as crops arrive (or computed
    already, by a Ray actor)."""

    def __init__(self, embed: Callable[[np.ndarray], np.ndarray] | None, dim: int, batch_size: int) -> None:
        self.embed, self.dim, self.batch_size = embed, dim, batch_size
        self._empty()

    def _empty(self) -> None:
        self.items: list[ItemRow] = []
        self.new_faces: list[NewFace] = []
        self.crops: list[np.ndarray] = []
        self.vectors: list[np.ndarray] = []
        self.sha1s: dict[str, str] = {}

    @property
    def faces(self) -> int:
        return len(self.new_faces)

    def add(self, item: CorpusItem, result: PhotoResult, state: BuildState) -> None:
        row = ItemRow(item.key, item.size, item.mtime_ns, result.sha1, result.reason)
        if not result.reason:
            original = self.sha1s.get(result.sha1) or state.original_of(result.sha1)
            if original:
                row = row._replace(reason="duplicate", duplicate_of=original)
            else:
                self.sha1s[result.sha1] = item.key
                self._add_faces(result)
        self.items.append(row)

    def _add_faces(self, result: PhotoResult) -> None:
        pictures = zip(result.boxes, result.scores, result.thumbnails, result.portraits, result.qualities,
                       result.source_sides, strict=True)
        for face, (box, score, thumbnail, portrait, quality, side) in enumerate(pictures):
            self.new_faces.append(NewFace(result.key, face, len(self.new_faces), Box.of(box), float(score),
                                          thumbnail, portrait, _quality(quality), int(side)))
        if result.vectors is not None:  # embedded already (by a Ray actor)
            self._embed_pending()
            self.vectors.append(result.vectors)
        else:
            self.crops.extend(result.crops)
            if len(self.crops) >= self.batch_size:
                self._embed_pending()

    def _embed_pending(self) -> None:
        if self.crops:
            assert self.embed is not None, "crops arrived without a recognizer to embed them"
            self.vectors.append(self.embed(np.stack(self.crops)))
            self.crops = []

    def commit(self, state: BuildState) -> int:
        """Write the shard and its rows; returns the number of faces committed."""
        if not self.items:
            return 0
        self._embed_pending()
        vectors = np.concatenate(self.vectors) if self.vectors else np.zeros((0, self.dim), np.float32)
        state.commit(state.next_shard_name(), vectors, self.items, self.new_faces)
        self._empty()
        return len(vectors)
