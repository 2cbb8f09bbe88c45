"""The build's memory between runs: which photos are done, their faces, and where their embeddings
are. Embeddings live in shard files; a shard is written (temp file, then rename) before the
transaction that records it, so a killed build loses at most the shard it was filling."""
from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from index_builder.corpus import CorpusItem
from index_builder.indexes import Vectors

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
    x1 REAL, y1 REAL, x2 REAL, y2 REAL, score REAL, landmarks TEXT, thumbnail BLOB, portrait BLOB,
    PRIMARY KEY (key, face)
);
"""


GALLERY_ORDER = "ORDER BY key, face"


class BuildState:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.shards = work / "shards"
        self.shards.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(work / "state.sqlite")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        self._shard_number = max((int(p.stem) for p in self.shards.glob("*.npy") if p.stem.isdigit()), default=-1)

    def has_portraits(self) -> bool:
        """False for a work folder from before portraits: its faces would publish without them."""
        return "portrait" in {column for _, column, *_ in self.db.execute("PRAGMA table_info(faces)")}

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

    def original_of(self, sha1: str) -> str | None:
        row = self.db.execute("SELECT key FROM items WHERE sha1 = ? AND duplicate_of IS NULL AND reason = '' LIMIT 1",
                              (sha1,)).fetchone()
        return row[0] if row else None

    def next_shard_name(self) -> str:
        self._shard_number += 1
        return f"{self._shard_number:06d}"

    def commit(self, shard: str, vectors: np.ndarray, items: Iterable[tuple], faces: Iterable[tuple]) -> None:
        """Record a flushed batch: the shard's vectors first, then its rows in one transaction.

        items: (key, size, mtime_ns, sha1, reason, duplicate_of); faces: (key, face, row, box, score,
        landmarks, thumbnail, portrait)."""
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
                "INSERT OR REPLACE INTO faces VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(key, face, shard, row, *map(float, box), float(score), json.dumps(np.round(landmarks, 2).tolist()),
                  thumb, portrait)
                 for key, face, row, box, score, landmarks, thumb, portrait in faces],
            )

    def remove_unreferenced_shards(self) -> None:
        used = {shard for (shard,) in self.db.execute("SELECT DISTINCT shard FROM faces")}
        for path in self.shards.iterdir():
            if path.name.split(".")[0] not in used:
                path.unlink()

    def skip_counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT reason, COUNT(*) FROM items WHERE reason != '' GROUP BY reason"))

    def gallery_rows(self) -> list[tuple]:
        """Every face, ordered by photo key then face number: the gallery's vector order, the same
        whatever order or how many runs the photos were processed in."""
        return self.db.execute(
            f"SELECT key, face, shard, row, x1, y1, x2, y2, score FROM faces {GALLERY_ORDER}").fetchall()

    def pictures(self) -> Iterator[tuple[bytes, bytes]]:
        """The faces' (thumbnail, portrait) JPEGs in gallery order, streamed (all of them would not
        fit in memory)."""
        yield from self.db.execute(f"SELECT thumbnail, portrait FROM faces {GALLERY_ORDER}")

    def vectors(self, rows: list[tuple]) -> np.ndarray:
        """The embeddings of `rows`, in their order, read one shard at a time."""
        shards = np.array([row[2] for row in rows])
        positions = np.array([row[3] for row in rows], dtype=np.int64)
        vectors: np.ndarray | None = None
        for shard in np.unique(shards):
            stored = np.load(self.shards / f"{shard}.npy", mmap_mode="r")
            if vectors is None:
                vectors = np.empty((len(rows), stored.shape[1]), np.float32)
            mine = shards == shard
            vectors[mine] = stored[positions[mine]]
        return vectors if vectors is not None else np.zeros((0, 0), np.float32)

    def vector_blocks(self, rows: list[tuple], block: int = 100_000) -> Vectors:
        """The embeddings of `rows` as Vectors: blocks in their order, read from the shards on each
        pass, so the index stage never holds the whole gallery."""
        dim = 0
        if rows:
            dim = np.load(self.shards / f"{rows[0][2]}.npy", mmap_mode="r").shape[1]
        return Vectors(len(rows), dim, lambda: (self.vectors(rows[start:start + block])
                                                for start in range(0, len(rows), block)))

    def close(self) -> None:
        self.db.close()
