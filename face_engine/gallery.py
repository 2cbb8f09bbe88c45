"""Read a published gallery: manifest, FAISS index, per-vector metadata, thumbnails, portraits.

A gallery path is usually a link the builder swaps atomically; opening resolves it once, so a
reader keeps a consistent version while a newer one is published beside it. Opening checks what
every reader relies on, so a damaged gallery is one GalleryError line, never a reader's traceback.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from face_engine.engine import face_square
from face_engine.memory import read_flags

FORMAT = "other-me-gallery"
FORMAT_VERSION = 2  # 2: a portrait per face, so the kiosk never reads the corpus
MANIFEST = "manifest.json"
INDEX_FILE = "index.faiss"
METADATA_FILE = "metadata.sqlite"
THUMBNAILS = "thumbs"
PORTRAITS = "portraits"
# The results screen's big tile is 42% of its height, 453 px at 1080p: a portrait that size is
# never upscaled. 456, whole 8-pixel JPEG blocks, measured no larger a file than 453.
PORTRAIT_SIZE = 456

METADATA_COLUMNS = ("id", "image", "identity", "display_name", "caption", "source",
                    "x1", "y1", "x2", "y2", "score", "thumbnail", "portrait")

# What search, info and the kiosk read from a manifest, and the type they need it to be.
MANIFEST_KEYS: dict[str, type | tuple[type, ...]] = {
    "pack": str, "pack_source": str, "recognizer": str, "dim": int, "metric": str, "count": int,
    "identities": int, "built_at": str, "recall": dict,
    "files": dict, "files.index": str, "files.metadata": str,
    "index": dict, "index.factory": str, "index.search_params": dict, "index.reason": str,
    "build": dict, "build.corpus": str, "build.photos_in_corpus": int, "build.photos_with_faces": int,
    "build.skipped": dict, "build.faces_embedded_this_run": int, "build.embed_seconds": (int, float),
    "build.faces_per_second": (int, float, type(None)), "build.workers": int, "build.providers": list,
}


class GalleryError(RuntimeError):
    """A gallery that cannot be opened or does not fit this engine; the message says why."""


def thumbnail_path(face_id: int) -> str:
    """Where a face's thumbnail lives inside a gallery (a thousand files per folder)."""
    return f"{THUMBNAILS}/{face_id // 1000:05d}/{face_id}.jpg"


def portrait_path(face_id: int) -> str:
    """Where a face's portrait lives inside a gallery (a thousand files per folder)."""
    return f"{PORTRAITS}/{face_id // 1000:05d}/{face_id}.jpg"


def portrait_crop(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The square BGR crop the results screen shows large, with room for hair and chin: made at
    build time for each gallery face and from the camera for the visitor, so the two look alike."""
    return face_square(image, box, PORTRAIT_SIZE, margin=1.6, lift=0.05)


@contextmanager
def one_thread() -> Iterator[None]:
    """faiss on one OpenMP thread: for one query at a time, waking the others costs more than they
    save (measured: 10 ms against 0.2 ms for 13k vectors on a busy 2-core machine)."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def apply_search_params(index: faiss.Index, params: dict[str, Any]) -> None:
    if params:
        faiss.ParameterSpace().set_index_parameters(index, ",".join(f"{k}={v}" for k, v in params.items()))


class Gallery:
    def __init__(self, path: str | Path, use_gpu: bool | None = None) -> None:
        self.name = str(path)
        self.root = Path(path).resolve()
        self.manifest = self._read_manifest()
        self.index = self._read_index()
        if use_gpu is None:
            use_gpu = faiss.get_num_gpus() > 0
        if use_gpu:
            self.index = faiss.index_cpu_to_all_gpus(self.index)
        self.db = self._open_metadata()

    def _damaged(self, what: str) -> GalleryError:
        return GalleryError(f"{self.name}: {what}")

    def _read_manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        if not path.is_file():
            raise self._damaged(f"not a gallery (no {MANIFEST}); build one with `index-builder build`")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise self._damaged(f"{MANIFEST} cannot be read ({error.strerror})") from None
        except ValueError:
            raise self._damaged(f"{MANIFEST} is damaged (not valid JSON)") from None
        if not isinstance(manifest, dict):
            raise self._damaged(f"{MANIFEST} is damaged (not a JSON object)")
        if manifest.get("format") != FORMAT:
            raise self._damaged(f"unsupported gallery format {manifest.get('format')!r}")
        version = manifest.get("format_version")
        if isinstance(version, int) and version < FORMAT_VERSION:
            raise self._damaged(f"gallery format version {version} is older than {FORMAT_VERSION} (it has no "
                                "portraits); rebuild with `index-builder build --fresh`")
        if version != FORMAT_VERSION:
            raise self._damaged(f"unsupported gallery format version {version!r}")
        wrong = _wrong_keys(manifest)
        if wrong:
            raise self._damaged(f"{MANIFEST} is damaged (missing or malformed: {', '.join(wrong)})")
        return manifest

    def _read_index(self) -> faiss.Index:
        path = self.root / self.manifest["files"]["index"]
        if not path.is_file():
            raise self._damaged(f"{path.name} is missing")
        try:
            index = faiss.read_index(str(path), read_flags(path))
        except RuntimeError:  # faiss says why in C++ terms, meaningless to staff
            raise self._damaged(f"{path.name} is damaged (truncated or not a FAISS index)") from None
        if index.ntotal != self.manifest["count"] or index.d != self.manifest["dim"]:
            raise self._damaged(f"{path.name} holds {index.ntotal} vectors of {index.d} dimensions; "
                                f"{MANIFEST} says {self.manifest['count']} of {self.manifest['dim']}")
        try:
            apply_search_params(index, self.manifest["index"]["search_params"])
        except RuntimeError:
            raise self._damaged(f"{MANIFEST}'s search parameters {self.manifest['index']['search_params']} "
                                f"do not fit {path.name}") from None
        return index

    def _open_metadata(self) -> sqlite3.Connection:
        path = self.root / self.manifest["files"]["metadata"]
        if not path.is_file():
            raise self._damaged(f"{path.name} is missing")
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        try:
            db.execute(f"SELECT {','.join(METADATA_COLUMNS)} FROM faces LIMIT 0")
            rows = db.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
        except sqlite3.DatabaseError as error:
            db.close()
            raise self._damaged(f"{path.name} is damaged ({error})") from None
        if rows != self.count:
            db.close()
            raise self._damaged(f"{path.name} has {rows} rows for {self.count} vectors")
        return db

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    @property
    def recognizer(self) -> str:
        return self.manifest["recognizer"]

    def check_compatible(self, recognizer_id: str) -> None:
        """Refuse a query engine whose recognizer differs from the one that made the gallery."""
        if recognizer_id != self.recognizer:
            raise GalleryError(
                f"gallery {self.root.name} was built with pack {self.manifest['pack']} (recognizer "
                f"{self.recognizer}); this engine uses recognizer {recognizer_id}: embeddings of different "
                "recognizers cannot be compared. Rebuild the gallery or use its pack."
            )

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """D, I for queries xq (nq, dim): inner-product scores and vector ids, best first."""
        xq = np.ascontiguousarray(xq, dtype=np.float32)
        if len(xq) > 1:
            return self.index.search(xq, min(k, self.count))
        with one_thread():
            return self.index.search(xq, min(k, self.count))

    def faces(self, ids: list[int]) -> list[dict[str, Any]]:
        """Metadata of each id, in the order given; thumbnail and portrait as absolute paths."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        try:
            rows = self.db.execute(f"SELECT {','.join(METADATA_COLUMNS)} FROM faces WHERE id IN ({marks})",
                                   [int(i) for i in ids]).fetchall()
        except sqlite3.DatabaseError as error:  # a page damaged after the count on open
            raise self._damaged(f"{METADATA_FILE} is damaged ({error})") from None
        by_id = {row[0]: dict(zip(METADATA_COLUMNS, row)) for row in rows}
        found = [by_id[int(i)] for i in ids if int(i) in by_id]
        for face in found:
            face["thumbnail"] = str(self.root / face["thumbnail"])
            face["portrait"] = str(self.root / face["portrait"])
        return found

    def close(self) -> None:
        self.db.close()


def _wrong_keys(manifest: dict[str, Any]) -> list[str]:
    """The MANIFEST_KEYS that are absent or of another type; a key inside a wrong one is not listed."""
    wrong: list[str] = []
    for dotted, kind in MANIFEST_KEYS.items():
        if any(dotted.startswith(f"{parent}.") for parent in wrong):
            continue
        value: Any = manifest
        for key in dotted.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
            wrong.append(dotted)
    return wrong
