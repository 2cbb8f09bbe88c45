"""The gallery contract: its typed manifest and face records, the writer and the reader.

A gallery folder holds manifest.json (a Manifest), the FAISS index, metadata.sqlite (one FaceRecord
per vector, its columns derived from FaceRecord's fields) and one JPEG per face of each kind in
FACE_PICTURES. The builder writes it with write_gallery; search, info and the kiosk read it with
Gallery.

A gallery path is usually a link the builder swaps atomically; opening resolves it once, so a
reader keeps a consistent version while a newer one is published beside it. Opening checks what
every reader relies on, so a damaged gallery is one GalleryError line, never a reader's traceback.
"""
from __future__ import annotations

import io
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import cv2
import faiss
import numpy as np
from PIL import Image

from face_engine.imaging import ImageError, inside_square, read_file
from face_engine.likeness import Calibration, pack_calibration
from face_engine.memory import read_flags
from face_engine.quality import COLUMNS as QUALITY_COLUMNS
from face_engine.shards import sharded

log = logging.getLogger(__name__)

FORMAT = "other-me-gallery"
FORMAT_VERSION = 5
# What each format version added: a gallery older than FORMAT_VERSION lacks these.
ADDED = {2: "portraits", 3: "hubness scores and photo hashes", 4: "the likeness calibration",
         5: "portraits' source scales and attract pairs"}
# The oldest format still read: a format-3 gallery lacks only its likeness table, and its matches use
# its pack's (face_engine.likeness); an older one lacks what every reader needs, and is rebuilt.
OLDEST_READABLE_VERSION = 3
MANIFEST = "manifest.json"
INDEX_FILE = "index.faiss"
METADATA_FILE = "metadata.sqlite"
HUBNESS_FILE = "hubness.npy"
QUALITY_FILE = "quality.npy"
SOURCE_SIDE_FILE = "source_side.npy"
PAIRS_FILE = "attract_pairs.npy"
THUMBNAILS = "thumbs"
PORTRAITS = "portraits"
# The results screen's big tile is 42% of its height, 453 px at 1080p: a portrait that size is
# never upscaled. 456, whole 8-pixel JPEG blocks, measured no larger a file than 453.
PORTRAIT_SIZE = 456
# a portrait's square: this many times the face box's longer side, centred on the box and lifted by
# PORTRAIT_LIFT of its height, room for hair and chin (the visitor's own square in the kiosk is framed alike)
PORTRAIT_MARGIN, PORTRAIT_LIFT = 1.6, 0.05
# A picture the builder wrote is PORTRAIT_SIZE square: one far larger was put there by someone else.
MAX_PICTURE_PIXELS = 16 * 10**6

# What search, info and the kiosk read from a manifest, and the type they need it to be: checked
# before a Manifest is made, so a damaged one is named key by key.
MANIFEST_KEYS: dict[str, type | tuple[type, ...]] = {
    "pack": str, "pack_source": str, "recognizer": str, "dim": int, "metric": str, "count": int,
    "identities": int, "built_at": str, "recall": dict, "fairness": dict,
    "files": dict, "files.index": str, "files.metadata": str,
    "index": dict, "index.factory": str, "index.search_params": dict, "index.reason": str,
    "build": dict, "build.corpus": str, "build.photos_in_corpus": int, "build.photos_with_faces": int,
    "build.skipped": dict, "build.faces_embedded_this_run": int, "build.embed_seconds": (int, float),
    "build.faces_per_second": (int, float, type(None)), "build.workers": int, "build.providers": list,
}
# Keys a reader may go without, and the type each must be where present.
OPTIONAL_KEYS: dict[str, type | tuple[type, ...]] = {
    "detector": str, "options": dict, "likeness": dict, "fairness.measured": dict,
    "fairness.lambda": (int, float, type(None)), "index.measurements": list, "index.settings": dict,
    "files.hubness": str, "files.quality": str, "files.thumbnails": str, "files.portraits": str,
    "files.source_side": str, "files.pairs": str,
}
# The type of each item of a list, or each value of a dict, that a reader prints or sums.
ITEM_TYPES: dict[str, type | tuple[type, ...]] = {
    "build.providers": str, "build.warnings": str, "build.skipped": int, "build.truncated": int,
    "recall": (int, float), "options": str,
}
MAX_LAMBDA = 5.0  # λ beyond this ranks by hubness alone
MAX_FACES = 10**10  # more than any gallery of faces on Earth
MAX_DIM = 65_536
# The numbers a reader uses, and the range each must lie in (a number of faces, a count of photos,
# seconds, a recall): checked where present, beside the finiteness of every number in the manifest.
MANIFEST_RANGES: dict[str, tuple[float, float]] = {
    "dim": (1, MAX_DIM), "count": (0, MAX_FACES), "identities": (0, MAX_FACES),
    "fairness.lambda": (0, MAX_LAMBDA), "fairness.k": (0, MAX_FACES), "fairness.references": (0, MAX_FACES),
    "index.stranger_queries": (0, MAX_FACES), "index.bytes_per_face": (0, 2**40), "likeness.people": (0, MAX_FACES),
    **{f"build.{name}": (0, MAX_FACES) for name in (
        "photos_in_corpus", "photos_processed_this_run", "photos_removed_since_last_build", "faces_embedded_this_run",
        "gallery_faces", "identities", "photos_with_faces", "faces_below_min_quality", "bad_files", "workers",
        "faiss_gpus", "embed_seconds", "faces_per_second", "photos_per_second", "wall_seconds", "index_seconds")},
    "build.min_quality": (0, 1),
}
MAX_MANIFEST_BYTES = 64 * 2**20  # a manifest of 10^6 faces is a few KB
MAX_NESTING = 32  # a manifest is a few levels deep; deeper is damage, and would overflow a writer's recursion
# The files a gallery may lack: a gallery written without them records them as "" (a benchmark's
# gallery has no pictures, a gallery built before portrait quality scores has no quality file).
PICTURE_FOLDERS = ("thumbnails", "portraits")  # the GalleryFiles of FACE_PICTURES' folders
# A gallery of format 4 or older has no source_side nor pairs file (its faces' source_side reads 0).
OPTIONAL_FILES = (*PICTURE_FOLDERS, "quality", "source_side", "pairs")


@dataclass(frozen=True)
class FaceRecord:
    """One gallery vector's metadata: a row of metadata.sqlite, whose columns are these fields.
    thumbnail and portrait are paths inside the gallery (absolute when read through Gallery.faces)."""

    id: int
    image: str
    identity: str  # the raw key: the corpus folder name or the manifest's `name`
    display_name: str
    caption: str
    source: str
    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    thumbnail: str
    portrait: str
    photo_sha1: str = ""  # the photo's content hash and the face's number in it: the face's name
    photo_face: int = 0   # across rebuilds (the kiosk's exposure ledger counts by it)
    # photo pixels across the portrait's square (SOURCE_SIDE_FILE, not a metadata column): a screen
    # showing the portrait larger than twice this shows it blurred; 0 where unknown (format 3 and 4)
    source_side: int = 0

    @property
    def content_key(self) -> str:
        return content_key_of(self.photo_sha1, self.photo_face)

    @property
    def person_key(self) -> str:
        return person_key_of(self.identity, self.content_key)


def content_key_of(photo_sha1: str, photo_face: int) -> str:
    """A face's name across rebuilds: its photo's content hash and its number in that photo."""
    return f"{photo_sha1}:{photo_face}"


def person_key_of(identity: str, content_key: str) -> str:
    """Who a face shows, by a name that survives rebuilds (the kiosk's exposure ledger counts people
    by it): the identity, or for an unnamed face (a person of its own) the face's content key."""
    return identity or content_key


# FaceRecord fields held in a per-face file of their own rather than in metadata.sqlite
FILE_FIELDS = ("source_side",)
METADATA_COLUMNS = tuple(column.name for column in fields(FaceRecord) if column.name not in FILE_FIELDS)
_SQL_TYPES = {"int": "INTEGER", "str": "TEXT", "float": "REAL"}

# The per-face pictures a gallery carries: the FaceRecord field that holds each one's path, and the
# folder it lives in. A new per-face file is one more entry here, one more FaceRecord field and one
# more GalleryFiles field.
FACE_PICTURES = {"thumbnail": THUMBNAILS, "portrait": PORTRAITS}


def picture_path(kind: str, face_id: int) -> str:
    """Where a face's picture of `kind` (a FACE_PICTURES key) lives in a gallery, a thousand per folder."""
    return f"{FACE_PICTURES[kind]}/{face_id // 1000:05d}/{face_id}.jpg"


def face_record(face_id: int, **fields: Any) -> FaceRecord:
    """The record of vector `face_id`, its pictures at their places in the gallery."""
    pictures: dict[str, Any] = {kind: picture_path(kind, face_id) for kind in FACE_PICTURES}
    return FaceRecord(id=face_id, **pictures, **fields)


@dataclass(frozen=True)
class GalleryFiles:
    """The files of a gallery, as the manifest's "files" names them."""

    index: str = INDEX_FILE
    metadata: str = METADATA_FILE
    thumbnails: str = THUMBNAILS
    portraits: str = PORTRAITS
    hubness: str = HUBNESS_FILE  # r_g per face, float32 in gallery order (face_engine.fairness)
    # (count, 4) float32 in gallery order: portrait quality and its parts (face_engine.quality.COLUMNS);
    # a gallery built before quality scores has none, and its near-ties keep their rank order
    quality: str = QUALITY_FILE
    source_side: str = SOURCE_SIDE_FILE  # (count,) uint16 in gallery order: FaceRecord.source_side
    # (pairs, 2) int64 face ids, most alike first: lookalike pairs of different people for the attract
    # loop, mined by the build (index_builder.pairs)
    pairs: str = PAIRS_FILE


@dataclass(frozen=True)
class IndexSpec:
    """The FAISS index a gallery holds, the search parameters it is used with, and why it was chosen."""

    factory: str
    search_params: dict[str, Any]
    reason: str
    measurements: list[dict[str, Any]] = field(default_factory=list)
    stranger_queries: int = 0
    settings: dict[str, Any] = field(default_factory=dict)  # search_params and those stored in the index file
    bytes_per_face: float = 0.0  # of the index, as expected before it was built


@dataclass(frozen=True, kw_only=True)
class BuildReport:
    """The manifest's `build`: what the build that made the gallery read, embedded and measured
    (index_builder.build's report, less where it was published). The fields MANIFEST_KEYS checks
    have no default; the others default to what a gallery built before them stands for."""

    corpus: str
    photos_in_corpus: int
    photos_processed_this_run: int = 0
    photos_removed_since_last_build: int = 0
    faces_embedded_this_run: int
    gallery_faces: int = 0
    identities: int = 0
    photos_with_faces: int
    skipped: dict[str, int]  # photos and corpus rows, by reason
    faces_below_min_quality: int = 0
    min_quality: float = 0.0
    bad_files: int = 0
    truncated: dict[str, int] = field(default_factory=dict)  # texts cut to length, by field
    warnings: list[str] = field(default_factory=list)
    embed_seconds: float
    faces_per_second: float | None  # None: nothing new was embedded
    photos_per_second: float | None = None
    wall_seconds: float | None = None
    workers: int
    device: str = ""
    engine: str = ""
    providers: list[str]
    faiss_gpus: int = 0
    content_id: str = ""  # what the gallery is made of: a build of the same content is up to date
    index_seconds: float = 0.0
    index_stage_peak_rss_mb: float = 0.0
    peak_rss_mb_before_index_stage: float = 0.0


@dataclass(frozen=True)
class FairnessReport:
    """The manifest's `fairness`: how each face's hubness r_g was measured and the λ the fair policy
    uses unless told another (index_builder.attention.gallery_fairness). `lambda_` is "lambda" on
    disk. Every field has a default: a reader needs none of them, and a gallery built before one was
    recorded still opens."""

    k: int = 0
    seconds: float = 0.0
    method: str = ""
    references: int = 0
    lambda_: float | None = None  # None: none measured (or "lambda" is not a number)
    choice_visitors: int = 0
    choice_seconds: float = 0.0
    measured: dict[str, dict[str, Any]] = field(default_factory=dict)  # bench exposure's keys, per policy

    def to_json(self) -> dict[str, Any]:
        return {("lambda" if key == "lambda_" else key): value for key, value in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FairnessReport:
        chosen = data.get("lambda")
        return cls(**_known(cls, data), lambda_=float(chosen) if isinstance(chosen, (int, float)) else None)


@dataclass(frozen=True)
class Manifest:
    """manifest.json: what a gallery holds and how it was made."""

    pack: str
    pack_source: str
    recognizer: str
    detector: str
    dim: int
    metric: str
    count: int
    identities: int
    index: IndexSpec
    recall: dict[str, float]
    build: BuildReport
    options: dict[str, str]
    built_at: str
    files: GalleryFiles = GalleryFiles()
    fairness: FairnessReport | None = None  # None: the gallery was written without the hubness step ({} on disk)
    # strangers' best-match cosines (face_engine.likeness); None: too few people, or format 3 ({} on disk)
    likeness: Calibration | None = None

    @property
    def measured_lambda(self) -> float | None:
        """The λ the build measured best for the fair policy; None where it measured none."""
        return self.fairness.lambda_ if self.fairness else None

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self),
                "fairness": self.fairness.to_json() if self.fairness else {},
                "likeness": self.likeness.to_json() if self.likeness else {}}

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """The manifest of parsed manifest.json; ManifestError says what is wrong with it."""
        if not isinstance(data, dict):
            raise ManifestError(f"{MANIFEST} is damaged (not a JSON object)")
        if data.get("format") != FORMAT:
            raise ManifestError(f"unsupported gallery format {data.get('format')!r}")
        version = data.get("format_version")
        if isinstance(version, int) and version < OLDEST_READABLE_VERSION:
            lacks = ", ".join(ADDED[v] for v in range(max(version + 1, 2), OLDEST_READABLE_VERSION + 1))
            raise ManifestError(f"gallery format version {version} is older than {OLDEST_READABLE_VERSION} (it has "
                                f"no {lacks}); rebuild with `index-builder build --fresh`")
        if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
            raise ManifestError(f"unsupported gallery format version {version!r}")
        wrong = _wrong_keys(data)
        if wrong:
            raise ManifestError(f"{MANIFEST} is damaged (missing or malformed: {', '.join(wrong)})")
        bad = (_unusable_number(data) or _unusable_item(data) or _unusable_file_name(data["files"])
               or _unusable_likeness(data))
        if bad:
            raise ManifestError(f"{MANIFEST} is damaged ({bad})")
        return cls(**{**_known(cls, data), "detector": data.get("detector", ""), "options": data.get("options", {}),
                      "index": IndexSpec(**_known(IndexSpec, data["index"])),
                      # a manifest written before quality scores names no quality file: the gallery has none
                      "files": GalleryFiles(**{"quality": "", "source_side": "", "pairs": "",
                                               **_known(GalleryFiles, data["files"])}),
                      "build": BuildReport(**_known(BuildReport, data["build"])),
                      "fairness": FairnessReport.from_json(data["fairness"]) if data["fairness"] else None,
                      "likeness": Calibration.from_json(data.get("likeness"))})


def _unusable_number(data: dict[str, Any]) -> str:
    """What is wrong with the first number of the manifest that is not finite or out of its
    MANIFEST_RANGES, or with a part nested deeper than MAX_NESTING; "" when every one is fine."""
    waiting: list[tuple[str, Any, int]] = [("", data, 0)]
    while waiting:
        where, value, depth = waiting.pop()
        if depth > MAX_NESTING:
            return f"{where} is nested more than {MAX_NESTING} levels deep"
        if isinstance(value, dict):
            waiting += [(f"{where}.{key}" if where else str(key), item, depth + 1) for key, item in value.items()]
        elif isinstance(value, list):
            waiting += [(f"{where}[{i}]", item, depth + 1) for i, item in enumerate(value)]
        elif isinstance(value, float) and not np.isfinite(value):
            return f"{where} is {value}, not a finite number"
        elif where in MANIFEST_RANGES and value is not None:
            low, high = MANIFEST_RANGES[where]
            if not _number_in(value, low, high):
                return f"{where} is {_short(value)}, not a number from {low:g} to {high:g}"
    return ""


def _unusable_item(data: dict[str, Any]) -> str:
    """What is wrong with the first item of an ITEM_TYPES list or dict that is of another type; ""
    when every one is fine."""
    for dotted, kind in ITEM_TYPES.items():
        value = _at(data, dotted)
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
        for item in items:
            if not isinstance(item, kind) or isinstance(item, bool):
                return f"{dotted} holds {_short(item)}, not {_TYPE_NAMES.get(kind, 'a number')}"
    return ""


_TYPE_NAMES: dict[type | tuple[type, ...], str] = {str: "text", int: "a whole number"}


def _unusable_file_name(files: dict[str, Any]) -> str:
    """What is wrong with the first of the manifest's `files` that is not a plain name inside the
    gallery folder (only OPTIONAL_FILES may be "", absent); "" when every one is fine."""
    for kind, name in files.items():
        if kind not in GalleryFiles.__dataclass_fields__:
            continue
        if name == "" and kind in OPTIONAL_FILES:
            continue
        if not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in "/\\\0"):
            return f"files.{kind} is {_short(name)}, not the name of a file in the gallery folder"
    return ""


def _unusable_likeness(data: dict[str, Any]) -> str:
    """What is wrong with a likeness table that is there (not {}) yet unusable; "" otherwise."""
    table = data.get("likeness")
    if table and Calibration.from_json(table) is None:
        return "likeness is not a table of rising cosines from -1 to 1 at the likeness levels"
    return ""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"


def _known(kind: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of `data` that are fields of the dataclass `kind` (a key written by a newer
    builder is left out)."""
    names = {column.name for column in fields(kind)}
    return {key: value for key, value in data.items() if key in names}


class GalleryError(RuntimeError):
    """A gallery that cannot be opened or does not fit this engine; the message says why."""


class ManifestError(ValueError):
    """A manifest.json that is not one this reader can use; the message says why."""


def portrait_crop(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The square BGR crop the results screen shows large, with room for hair and chin: made at
    build time for each gallery face."""
    return portrait_and_side(image, box)[0]


def portrait_and_side(image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, int]:
    """portrait_crop, and the photo pixels across it (FaceRecord.source_side). The square lies inside
    the photo and off any corpus border (face_engine.imaging.inside_square): no black wedge, no
    smeared edge, at the price of a tighter frame where the photo leaves no room."""
    x, y, side = inside_square(image, box, margin=PORTRAIT_MARGIN, lift=PORTRAIT_LIFT)
    square = image[y:y + side, x:x + side]
    shrink = cv2.INTER_AREA if side > PORTRAIT_SIZE else cv2.INTER_CUBIC
    return cv2.resize(square, (PORTRAIT_SIZE, PORTRAIT_SIZE), interpolation=shrink), side


def read_picture(path: str | os.PathLike[str]) -> np.ndarray:
    """A picture the gallery holds (a JPEG the builder wrote, plain BGR with no orientation to
    apply), decoded by OpenCV directly: the same pixels as read_image, in a third of the time.
    ImageError for a file that is missing, special, not a JPEG, or over MAX_PICTURE_PIXELS by its
    header (refused undecoded: a 144-megapixel picture would take 430 MB as BGR)."""
    data = read_file(path)
    width, height = _picture_size(data)
    if width * height > MAX_PICTURE_PIXELS:
        raise ImageError("too_large", f"{path} is {width}x{height} pixels; a gallery picture may have at most "
                                      f"{MAX_PICTURE_PIXELS // 10**6} megapixels")
    picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if picture is None:
        raise ImageError("corrupt", f"{path} is not a picture OpenCV can decode")
    return picture


def _picture_size(data: bytes) -> tuple[int, int]:
    """Width and height from a picture's header, without decoding its pixels."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (OSError, SyntaxError, ValueError):  # not a picture: imdecode says so below
        return 0, 0


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
        settings = ",".join(f"{k}={v}" for k, v in params.items())
        # faiss's stub declares the (index, str) form without @overload, so only (index, int) is seen
        faiss.ParameterSpace().set_index_parameters(index, settings)  # type: ignore[arg-type]


def write_gallery(folder: Path, manifest: Manifest, index: faiss.Index, faces: list[FaceRecord],
                  pictures: Iterable[tuple[bytes, ...]] | None, hubness: np.ndarray,
                  quality: np.ndarray | None = None, pairs: np.ndarray | None = None) -> None:
    """A complete gallery in `folder`: manifest, index, metadata, hubness scores, quality scores (when
    given: (count, 4), face_engine.quality.COLUMNS), each face's source_side, the attract pairs (when
    given: (pairs, 2) face ids) and the pictures of each face (`pictures`: their JPEGs in
    FACE_PICTURES order, one tuple per face, in the order of `faces`; None: no pictures, a
    benchmark's gallery of 10^6 synthetic faces that nobody looks at)."""
    folder.mkdir(parents=True)
    np.save(folder / HUBNESS_FILE, np.asarray(hubness, dtype=np.float32))
    if quality is not None:
        np.save(folder / QUALITY_FILE, np.asarray(quality, dtype=np.float32))
    np.save(folder / SOURCE_SIDE_FILE, np.array([face.source_side for face in faces], dtype=np.uint16))
    if pairs is not None:
        np.save(folder / PAIRS_FILE, np.asarray(pairs, dtype=np.int64).reshape(-1, 2))
    with open(folder / INDEX_FILE, "wb") as file:  # through Python: a full disk is an OSError, not faiss's C++ text
        faiss.write_index(index, faiss.PyCallbackIOWriter(file.write))  # type: ignore[attr-defined]  # not in faiss's stub
    columns = [f"{column.name} {_SQL_TYPES[str(column.type)]}" for column in fields(FaceRecord)
               if column.name in METADATA_COLUMNS]
    columns[0] += " PRIMARY KEY"
    db = sqlite3.connect(folder / METADATA_FILE)
    with db:
        db.execute(f"CREATE TABLE faces ({', '.join(columns)})")
        db.executemany(f"INSERT INTO faces VALUES ({', '.join('?' * len(columns))})",
                       ([getattr(face, name) for name in METADATA_COLUMNS] for face in faces))
    db.close()
    if pictures is not None:
        _write_pictures(folder, faces, pictures)
    written = _as_written(manifest, pictures is not None, quality is not None, pairs is not None)
    (folder / MANIFEST).write_text(json.dumps(written.to_json(), indent=2, ensure_ascii=False) + "\n")


def _as_written(manifest: Manifest, pictures: bool, quality: bool, pairs: bool) -> Manifest:
    """`manifest` naming only the files written: a reader refuses a gallery that lacks one it names."""
    files = replace(manifest.files, **({} if pictures else dict.fromkeys(PICTURE_FOLDERS, "")),
                    **({} if quality else {"quality": ""}), source_side=SOURCE_SIDE_FILE,
                    pairs=PAIRS_FILE if pairs else "")
    return replace(manifest, files=files)


def _write_pictures(folder: Path, faces: list[FaceRecord], pictures: Iterable[tuple[bytes, ...]]) -> None:
    for face, jpegs in zip(faces, pictures, strict=True):
        for kind, data in zip(FACE_PICTURES, jpegs, strict=True):
            path = folder / getattr(face, kind)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def _on_gpus_if_possible(index: faiss.Index, factory: str) -> faiss.Index:
    """The index cloned to the GPUs, or kept on the CPU where faiss has no GPU form of its type (4-bit
    PQ fast-scan, refinement): a CPU search of those is still fast, and the kiosk must not fail."""
    try:
        return faiss.index_cpu_to_all_gpus(index)
    except RuntimeError as error:
        log.info("the %s index stays on the CPU: faiss cannot move it to a GPU (%s)", factory,
                 str(error).strip().splitlines()[-1][:120])
        return index


class Gallery:
    def __init__(self, path: str | os.PathLike[str], use_gpu: bool | None = None) -> None:
        self.name = str(path)
        self.root = Path(path).resolve()
        self.manifest = self._read_manifest()
        self.index = self._read_index()
        if use_gpu is None:
            use_gpu = faiss.get_num_gpus() > 0
        if use_gpu:
            self.index = _on_gpus_if_possible(self.index, self.manifest.index.factory)
        self.index = sharded(self.index, release=True)  # a large CPU index: one shard a core, searched together
        self._check_pictures()
        self.hubness = self._read_hubness()
        self.quality = self._read_quality()
        self.source_side = self._read_source_side()
        self.pairs = self._read_pairs()
        self.calibration = self._calibration()
        self.db = self._open_metadata()  # last: nothing after it can fail and leave it open

    def _damaged(self, what: str) -> GalleryError:
        return GalleryError(f"{self.name}: {what}")

    def _read_manifest(self) -> Manifest:
        path = self.root / MANIFEST
        if not path.is_file():
            raise self._damaged(f"not a gallery (no {MANIFEST}); build one with `index-builder build`")
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise self._damaged(f"{MANIFEST} is damaged (over {MAX_MANIFEST_BYTES // 2**20} MB)")
        try:
            return Manifest.from_json(json.loads(path.read_text(encoding="utf-8")))
        except OSError as error:
            raise self._damaged(f"{MANIFEST} cannot be read ({error.strerror})") from None
        except ManifestError as error:
            raise self._damaged(str(error)) from None
        except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
            raise self._damaged(f"{MANIFEST} is damaged (not valid JSON)") from None

    def _read_index(self) -> faiss.Index:
        path = self.root / self.manifest.files.index
        if not path.is_file():
            raise self._damaged(f"{path.name} is missing")
        try:
            index = faiss.read_index(str(path), read_flags(path))
        except RuntimeError:  # faiss says why in C++ terms, meaningless to staff
            raise self._damaged(f"{path.name} is damaged (truncated or not a FAISS index)") from None
        if index.ntotal != self.manifest.count or index.d != self.manifest.dim:
            raise self._damaged(f"{path.name} holds {index.ntotal} vectors of {index.d} dimensions; "
                                f"{MANIFEST} says {self.manifest.count} of {self.manifest.dim}")
        try:
            apply_search_params(index, self.manifest.index.search_params)
        except RuntimeError:
            raise self._damaged(f"{MANIFEST}'s search parameters {self.manifest.index.search_params} "
                                f"do not fit {path.name}") from None
        return index

    def _calibration(self) -> Calibration:
        """The gallery's likeness table, or its pack's where it has none (face_engine.likeness)."""
        if self.manifest.likeness is not None:
            return self.manifest.likeness
        log.info("%s has no likeness table of its own: likeness uses pack %s's", self.name, self.manifest.pack)
        return pack_calibration(self.manifest.pack)

    def _read_hubness(self) -> np.ndarray | None:
        """r_g per face, or None when the gallery has none (the fair policy then falls back to exact)."""
        return self._read_scores(self.manifest.files.hubness, (self.count,), "finite float32 scores",
                                 logging.WARNING, "its matches use the exact policy")

    def _check_pictures(self) -> None:
        """Each folder of face pictures the manifest names is there: without its portraits a gallery
        would answer every visitor with nobody."""
        for folder in PICTURE_FOLDERS:
            name = getattr(self.manifest.files, folder)
            if name and self.count and not (self.root / name).is_dir():
                raise self._damaged(f"{name}/ is missing (the faces' pictures); rebuild with `index-builder build`")

    def _read_quality(self) -> np.ndarray | None:
        """(count, 4) portrait quality and its parts per face, or None for a gallery built before them
        (one warning); a quality file the manifest names must be there."""
        name = self.manifest.files.quality
        if not name:
            log.warning("%s was built before portrait quality scores: near-ties are not broken by portrait "
                        "quality (rebuild to have them)", self.name)
            return None
        if not (self.root / name).is_file():
            raise self._damaged(f"{name} is missing")
        return self._read_scores(name, (self.count, len(QUALITY_COLUMNS)),
                                 f"rows of {len(QUALITY_COLUMNS)} finite float32 scores",
                                 logging.INFO, "near-ties are not broken by portrait quality")

    def _read_source_side(self) -> np.ndarray:
        """(count,) uint16 FaceRecord.source_side per face; zeros (unknown) for a gallery of format 4 or
        older, which has no such file."""
        name = self.manifest.files.source_side
        if not name:
            return np.zeros(self.count, np.uint16)
        sides = self._read_array(name)
        if sides.shape != (self.count,) or sides.dtype != np.uint16:
            raise self._damaged(f"{name} is damaged (not {self.count} uint16 sides)")
        return sides

    def _read_pairs(self) -> np.ndarray | None:
        """(pairs, 2) int64 face ids of the build's attract pairs, or None for a gallery without them
        (format 4 or older: the kiosk searches for pairs itself)."""
        name = self.manifest.files.pairs
        if not name:
            return None
        pairs = self._read_array(name)
        if (pairs.ndim != 2 or pairs.shape[1:] != (2,) or pairs.dtype != np.int64
                or ((pairs < 0) | (pairs >= self.count)).any()):
            raise self._damaged(f"{name} is damaged (not pairs of face ids below {self.count})")
        return pairs

    def _read_array(self, name: str) -> np.ndarray:
        """The NumPy array in the gallery's file `name`, which its manifest names: GalleryError when
        it is missing or not an array file."""
        path = self.root / name
        if not path.is_file():
            raise self._damaged(f"{name} is missing")
        try:
            array: np.ndarray = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            raise self._damaged(f"{name} is damaged (not a NumPy array file)") from None
        return array

    def _read_scores(self, name: str, shape: tuple[int, ...], shape_says: str, absent_level: int,
                     absent_means: str) -> np.ndarray | None:
        """The float32 array of `shape` in the gallery's file `name`, or None where the gallery has no
        such file (logged at `absent_level`, saying what that means)."""
        path = self.root / name
        if not path.is_file():
            log.log(absent_level, "%s has no %s: %s", self.name, path.name, absent_means)
            return None
        scores = self._read_array(name)
        if scores.shape != shape or scores.dtype != np.float32 or not np.isfinite(scores).all():
            raise self._damaged(f"{path.name} is damaged (not {self.count} {shape_says})")
        return scores

    def _open_metadata(self) -> sqlite3.Connection:
        path = self.root / self.manifest.files.metadata
        if not path.is_file():
            raise self._damaged(f"{path.name} is missing")
        # as_uri quotes the path: a folder name holding '?', '#' or '%' must not end the file name
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
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
        return self.manifest.recognizer

    def check_compatible(self, recognizer_id: str) -> None:
        """Refuse a query engine whose recognizer differs from the one that made the gallery."""
        if recognizer_id != self.recognizer:
            raise GalleryError(
                f"gallery {self.root.name} was built with pack {self.manifest.pack} (recognizer "
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

    def faces(self, ids: list[int]) -> list[FaceRecord]:
        """The record of each id, in the order given; its pictures as absolute paths."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        try:
            rows = self.db.execute(f"SELECT {','.join(METADATA_COLUMNS)} FROM faces WHERE id IN ({marks})",
                                   [int(i) for i in ids]).fetchall()
        except sqlite3.DatabaseError as error:  # a page damaged after the count on open
            raise self._damaged(f"{METADATA_FILE} is damaged ({error})") from None
        by_id = {row[0]: self._record(row) for row in rows}
        found = [by_id[int(i)] for i in ids if int(i) in by_id]
        return [self._with_absolute_pictures(face) for face in found]

    def _record(self, row: tuple[Any, ...]) -> FaceRecord:
        """The FaceRecord of a metadata row, once each value is of its column's type, each number
        finite and in range, and each picture path inside the gallery."""
        wrong = _unusable_row(row)
        if wrong:
            raise self._damaged(f"{METADATA_FILE} is damaged (face {_short(row[0])}: {wrong})")
        side = int(self.source_side[row[0]]) if row[0] < len(self.source_side) else 0
        return FaceRecord(**dict(zip(METADATA_COLUMNS, row, strict=True)), source_side=side)

    def _with_absolute_pictures(self, face: FaceRecord) -> FaceRecord:
        pictures: dict[str, Any] = {kind: str(self.root / getattr(face, kind)) for kind in FACE_PICTURES}
        return replace(face, **pictures)

    def people(self, ids: list[int]) -> tuple[list[str], list[str]]:
        """The identity and FaceRecord.content_key of each id, in the order given: what a policy needs
        of a shortlist, without building whole records."""
        marks = ",".join("?" * len(ids))
        try:
            rows = self.db.execute(f"SELECT id, identity, photo_sha1, photo_face FROM faces WHERE id IN ({marks})",
                                   [int(i) for i in ids]).fetchall()
        except sqlite3.DatabaseError as error:
            raise self._damaged(f"{METADATA_FILE} is damaged ({error})") from None
        by_id = {row[0]: self._person_row(row)[1:] for row in rows}
        if len(by_id) < len(set(ids)):
            raise self._damaged(f"{METADATA_FILE} is damaged (rows missing for some vectors)")
        found = [by_id[int(i)] for i in ids]
        return [identity for identity, _, _ in found], [content_key_of(sha1, face) for _, sha1, face in found]

    def content_keys(self) -> list[str]:
        """Every face's FaceRecord.content_key, in gallery order."""
        return [content_key_of(sha1, face) for _, _, sha1, face in self._person_rows()]

    def person_keys(self) -> list[str]:
        """Every face's FaceRecord.person_key, in gallery order."""
        return [person_key_of(identity, content_key_of(sha1, face)) for _, identity, sha1, face in self._person_rows()]

    def _person_rows(self) -> Iterator[tuple[Any, ...]]:
        """(id, identity, photo_sha1, photo_face) of every face, in gallery order, row by row: a list
        of every row would hold ~3 GB beside the keys made of them at 10^7 faces."""
        try:
            for row in self.db.execute("SELECT id, identity, photo_sha1, photo_face FROM faces ORDER BY id"):
                yield self._person_row(row)
        except sqlite3.DatabaseError as error:
            raise self._damaged(f"{METADATA_FILE} is damaged ({error})") from None

    def _person_row(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """`row` (id, identity, photo_sha1, photo_face), once each is of its column's type."""
        wrong = _unusable_values(row, ("id", "identity", "photo_sha1", "photo_face"))
        if wrong:
            raise self._damaged(f"{METADATA_FILE} is damaged (face {_short(row[0])}: {wrong})")
        return row

    def close(self) -> None:
        self.db.close()


def _wrong_keys(manifest: dict[str, Any]) -> list[str]:
    """The MANIFEST_KEYS that are absent or of another type, and the OPTIONAL_KEYS present with
    another type; a key inside a wrong one is not listed."""
    wrong: list[str] = []
    for dotted, kind in [*MANIFEST_KEYS.items(), *OPTIONAL_KEYS.items()]:
        if any(dotted.startswith(f"{parent}.") for parent in wrong):
            continue
        value = _at(manifest, dotted)
        if value is _ABSENT and dotted in OPTIONAL_KEYS:
            continue
        if not isinstance(value, kind) or isinstance(value, bool) and bool not in _types(kind):
            wrong.append(dotted)
    return wrong


def _at(data: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted key of `data`: _ABSENT where its last key is missing, None where a part
    above it is not a dict."""
    value: Any = data
    for key in dotted.split("."):
        value = value.get(key, _ABSENT) if isinstance(value, dict) else None
    return value


_ABSENT = object()
MAX_COORDINATE = 1e7  # a face box's corner, in pixels of its photo: far past any photo's size
_COLUMN_TYPES = {column.name: str(column.type) for column in fields(FaceRecord)}


def _unusable_row(row: tuple[Any, ...]) -> str:
    """What is wrong with a metadata row (METADATA_COLUMNS), or "" when it is fine."""
    wrong = _unusable_values(row, METADATA_COLUMNS)
    if wrong:
        return wrong
    for kind in FACE_PICTURES:
        path = row[METADATA_COLUMNS.index(kind)]
        if path.startswith("/") or ".." in Path(path).parts or "\0" in path:
            return f"its {kind} {_short(path)} lies outside the gallery"
    return ""


def _unusable_values(row: tuple[Any, ...], columns: tuple[str, ...]) -> str:
    """What is wrong with the first value of `row` (of `columns`) that is not of its column's type,
    or is a number out of range; "" when every one is fine."""
    for name, value in zip(columns, row, strict=True):
        kind = _COLUMN_TYPES[name]
        if value is None:
            return f"its {name} is NULL"
        if kind == "str" and not isinstance(value, str):
            return f"its {name} is {_short(value)}, not text"
        if kind == "int" and (not isinstance(value, int) or not _number_in(value, 0, MAX_FACES * 100)):
            return f"its {name} is {_short(value)}, not a whole number from 0"
        if kind == "float" and not _number_in(value, -MAX_COORDINATE, MAX_COORDINATE):
            return f"its {name} is {_short(value)}, not a finite number"
    return ""


def _number_in(value: Any, low: float, high: float) -> bool:
    """True for a number (not a bool) from `low` to `high`; NaN is in no range."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


def _types(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)
