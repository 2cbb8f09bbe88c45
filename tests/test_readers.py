"""The readers of files the kiosk and the builder trust, given damaged files: each answers with its
own error type and one line, or a valid result, never another exception.

Property tests mutate valid files (bytes flipped, cut short, keys dropped, values replaced by NaN,
infinities, huge or negative numbers, other types, deep nesting) with hypothesis: the "fast" profile
tries a few per reader, the "ci" profile (CI=true) at least 1,000 (tests/conftest.py). Each example
is cheap (no model is loaded, and the gallery is the small one built once per run, copied once per
test), so they stay in the fast tier: well under a second each in the fast profile. The examples
beside them pin down one case each of issue 22."""
from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import SMALL_GALLERY, Galleries
from face_engine.gallery import (
    MANIFEST,
    METADATA_COLUMNS,
    METADATA_FILE,
    QUALITY_FILE,
    Gallery,
    GalleryError,
    read_picture,
)
from face_engine.imaging import ImageError
from index_builder.corpus import CorpusError, read_corpus
from kiosk.config import ConfigError, KioskConfig, load_config, requirement, save_config, with_absolute_paths

# --- what damage looks like ---

HOSTILE_VALUES = st.sampled_from([
    math.nan, math.inf, -math.inf, 10**30, -(10**30), -1, -1.5, 0, 1e308, -1e-308, True, False, None, "", "x" * 300,
    "../../../etc/passwd", "/etc/passwd", "\n\x00\x1b", [], {}, [1, "a", None], {"nested": {"deeper": [math.nan]}},
    "DEEP:5", "DEEP:3000"])
DEEP = "DEEP:"


def deep(text: str) -> str:
    """JSON text with each "DEEP:n" string replaced by arrays nested n deep (past what json.dumps writes)."""
    for depth in (5, 3000):
        text = text.replace(json.dumps(f"{DEEP}{depth}"), "[" * depth + "]" * depth)
    return text


def paths_of(value: Any, where: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path inside parsed JSON, outermost first."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*where, key)
            yield from paths_of(item, (*where, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*where, index)
            yield from paths_of(item, (*where, index))


@st.composite
def damaged_json(draw: st.DrawFn, valid: dict[str, Any]) -> bytes:
    """`valid` with a few keys dropped or values replaced, written as JSON (NaN and infinities as
    Python writes them), then perhaps with bytes flipped or cut short."""
    data = json.loads(json.dumps(valid))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(list(paths_of(data)) or [()]))
        if not where:
            break
        parent = data
        for key in where[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[where[-1]]
        else:
            parent[where[-1]] = copy.deepcopy(draw(HOSTILE_VALUES))  # never the strategy's own list or dict
        if not isinstance(data, dict):
            break
    return draw(damaged_bytes(deep(json.dumps(data)).encode()))


@st.composite
def damaged_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` as it is, with a few bytes flipped, or cut short."""
    how = draw(st.sampled_from(["as is", "flipped", "cut"]))
    if how == "cut" or not data:
        return data[:draw(st.integers(0, len(data)))]
    if how == "flipped":
        mutable = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            mutable[draw(st.integers(0, len(mutable) - 1))] = draw(st.integers(0, 255))
        return bytes(mutable)
    return data


def one_line(error: BaseException) -> str:
    text = str(error)
    assert text and "\n" not in text and "\r" not in text, repr(text)
    return text


# --- the gallery: manifest.json and metadata.sqlite ---

@pytest.fixture
def gallery_copy(galleries: Galleries, tmp_path: Path) -> Path:
    """A private copy of the small gallery's live version folder."""
    return Path(shutil.copytree((galleries.built(SMALL_GALLERY) / "gallery").resolve(), tmp_path / "gallery"))


def read_whole(path: Path, info: bool = True) -> None:
    """Open the gallery and read everything a search, the kiosk and (with `info`) info read of it."""
    from index_builder.cli import main as builder_main

    gallery = Gallery(path, use_gpu=False)
    try:
        every = list(range(gallery.count))
        gallery.faces(every)
        gallery.people(every)
        gallery.person_keys()
        gallery.content_keys()
        gallery.search(np.ones((1, gallery.manifest.dim), np.float32) / np.sqrt(gallery.manifest.dim), 5)
        gallery.calibration.likeness(0.5)
        _ = gallery.manifest.measured_lambda
    finally:
        gallery.close()
    if not info:
        return
    with contextlib.redirect_stdout(io.StringIO()):
        assert builder_main(["info", str(path)]) == 0
        assert builder_main(["info", "--json", str(path)]) == 0


def gallery_error_or_whole(path: Path, info: bool = True) -> None:
    try:
        read_whole(path, info)
    except GalleryError as error:
        assert one_line(error).startswith(str(path)), error


def test_a_damaged_manifest_is_one_gallery_error_line_or_a_whole_gallery(gallery_copy: Path) -> None:
    valid = json.loads((gallery_copy / MANIFEST).read_text())

    @given(damaged_json(valid))
    def check(text: bytes) -> None:
        (gallery_copy / MANIFEST).write_bytes(text)
        gallery_error_or_whole(gallery_copy)

    check()


ROW_VALUES = st.sampled_from([None, math.inf, -math.inf, 1e300, -1, 2**63 - 1, -(2**63), "text", b"\x00\xff", 0.5,
                              "", "/etc/passwd", "../../../etc/passwd", "portraits/../../x.jpg", "a\nb"])


@st.composite
def damaged_rows(draw: st.DrawFn) -> list[tuple[str, int, Any]]:
    """A few (column, row id, value) changes to metadata.sqlite's faces."""
    return draw(st.lists(st.tuples(st.sampled_from(METADATA_COLUMNS), st.integers(0, 7), ROW_VALUES),
                         min_size=1, max_size=3))


def test_damaged_metadata_is_one_gallery_error_line_or_a_whole_gallery(gallery_copy: Path) -> None:
    database = gallery_copy / METADATA_FILE
    valid = database.read_bytes()

    @given(damaged_rows(), st.data())
    def check(changes: list[tuple[str, int, Any]], data: st.DataObject) -> None:
        database.write_bytes(valid)
        db = sqlite3.connect(database)
        with db:
            for column, face, value in changes:
                with contextlib.suppress(sqlite3.IntegrityError):  # a second row id 0, say
                    db.execute(f"UPDATE faces SET {column} = ? WHERE id = ?", (value, face))
        db.close()
        database.write_bytes(data.draw(damaged_bytes(database.read_bytes())))
        gallery_error_or_whole(gallery_copy, info=False)  # info reads no row

    check()


def set_manifest(gallery: Path, change: Callable[[dict[str, Any]], object]) -> None:
    manifest = json.loads((gallery / MANIFEST).read_text())
    change(manifest)
    (gallery / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, 1e9, "0.5"])
def test_an_unusable_fairness_lambda_is_one_line_and_the_kiosk_never_swaps_that_gallery_in(gallery_copy: Path,
                                                                                           value: object) -> None:
    from kiosk.worker import GalleryWatcher

    set_manifest(gallery_copy, lambda m: m["fairness"].update({"lambda": value}))
    with pytest.raises(GalleryError, match="fairness.lambda"):
        Gallery(gallery_copy)
    delivered: list[Gallery] = []
    refused: list[str] = []
    watcher = GalleryWatcher(str(gallery_copy), delivered.append, refused.append)
    watcher._load(gallery_copy)
    assert not delivered and len(refused) == 1 and "fairness.lambda" in one_line(GalleryError(refused[0]))


@pytest.mark.parametrize("key, value, says", [
    ("count", -8, "count is -8, not a number from 0"),
    ("dim", 0, "dim is 0, not a number from 1"),
    ("files", {"index": "../../index.faiss", "metadata": "metadata.sqlite"}, "files.index is '../../index.faiss'"),
    ("likeness", {"levels": [1, 2]}, "likeness is not a table"),
    ("options", [], "missing or malformed: options"),
])
def test_manifest_numbers_and_names_out_of_range_are_one_line(gallery_copy: Path, key: str, value: object,
                                                              says: str) -> None:
    set_manifest(gallery_copy, lambda m: m.update({key: value}))
    with pytest.raises(GalleryError) as refused:
        Gallery(gallery_copy)
    assert says in one_line(refused.value)


def test_a_gallery_without_its_portraits_is_refused_naming_them(gallery_copy: Path) -> None:
    shutil.rmtree(gallery_copy / "portraits")
    with pytest.raises(GalleryError, match=r"portraits/ is missing"):
        Gallery(gallery_copy)


def test_a_quality_file_the_manifest_names_must_be_there_and_an_older_gallery_is_served_with_one_warning(
        gallery_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    (gallery_copy / QUALITY_FILE).unlink()
    with pytest.raises(GalleryError, match=f"{QUALITY_FILE} is missing"):
        Gallery(gallery_copy)
    set_manifest(gallery_copy, lambda m: m["files"].pop("quality"))  # as a builder before quality scores wrote it
    with caplog.at_level(logging.INFO):
        assert Gallery(gallery_copy).quality is None
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "built before portrait quality scores" in warned[0], warned


def set_row(gallery: Path, column: str, value: object, face: int = 0) -> None:
    db = sqlite3.connect(gallery / METADATA_FILE)
    with db:
        db.execute(f"UPDATE faces SET {column} = ? WHERE id = ?", (value, face))
    db.close()


@pytest.mark.parametrize("column, value, says", [
    ("portrait", None, "face 0: its portrait is NULL"),
    ("identity", None, "face 0: its identity is NULL"),
    ("score", math.inf, "face 0: its score is inf, not a finite number"),
    ("portrait", "../../../etc/passwd", "face 0: its portrait '../../../etc/passwd' lies outside the gallery"),
    ("thumbnail", "/etc/passwd", "face 0: its thumbnail '/etc/passwd' lies outside the gallery"),
])
def test_a_damaged_metadata_row_is_one_gallery_error_line(gallery_copy: Path, column: str, value: object,
                                                          says: str) -> None:
    set_row(gallery_copy, column, value)
    gallery = Gallery(gallery_copy)
    readers: list[Callable[[], object]] = [lambda: gallery.faces([0])]
    if column == "identity":  # what a policy and the kiosk's ledger read of a face
        readers += [lambda: gallery.people([0]), gallery.person_keys]
    for read in readers:
        with pytest.raises(GalleryError) as refused:
            read()
        assert f"metadata.sqlite is damaged ({says})" in one_line(refused.value)


def huge_jpeg(path: Path, side: int = 12_000) -> Path:
    """A 144-megapixel JPEG of 2 MB."""
    import cv2

    path.write_bytes(cv2.imencode(".jpg", np.zeros((side, side, 3), np.uint8))[1].tobytes())
    return path


def test_a_144_megapixel_portrait_is_refused_undecoded_and_the_kiosk_replaces_that_face(
        gallery_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    from face_engine.query import Lookalike
    from kiosk.worker import _match, _portrait

    gallery = Gallery(gallery_copy)
    face = gallery.faces([0])[0]
    huge_jpeg(Path(face.portrait))
    with pytest.raises(ImageError, match="12000x12000 pixels; a gallery picture may have at most"):
        read_picture(face.portrait)
    with caplog.at_level(logging.WARNING):
        assert _match(Lookalike(0.5, face, 0.5, 50), _portrait(face, 456)) is None
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "face 0 replaced in the results" in warned[0], warned


# --- kiosk.toml ---

TOML_VALUES = st.sampled_from([
    "nan", "inf", "-inf", "+inf", "1e400", "-5", "0", "99999999999999999999999", "-0.0", "true", '"five"', "[]",
    "{}", "[[[[[[[[1]]]]]]]]", "[" * 3000 + "]" * 3000, '"\\u0000"', '"' + "x" * 5000 + '"', "2026-01-01",
    "{a = {b = nan}}", '"gallery"', '"../../etc"', "3.5"])


@st.composite
def damaged_toml(draw: st.DrawFn, saved: str) -> bytes:
    """A saved kiosk.toml with settings replaced by hostile TOML values or dropped, then perhaps
    with bytes flipped or cut short."""
    lines = saved.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines) - 1))
        name = lines[at].split(" = ", 1)[0]
        lines[at] = draw(st.sampled_from(["", f"{name} = {draw(TOML_VALUES)}", f"unknown = {draw(TOML_VALUES)}"]))
    return draw(damaged_bytes(("\n".join(lines) + "\n").encode()))


def config_error_or_usable(path: Path) -> None:
    try:
        config = load_config(path)
    except ConfigError as error:
        assert one_line(error).startswith(str(path)), error
        return
    assert all(requirement(name, value) == "" for name, value in vars(config).items())
    config.match_policy()


def test_a_damaged_kiosk_toml_is_one_config_error_line_or_a_usable_config(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.toml"
    saved = save_config(KioskConfig(gallery=str(tmp_path / "g"), lang="en", fairness=1.5), path).read_text()

    @given(damaged_toml(saved))
    def check(text: bytes) -> None:
        path.write_bytes(text)
        path.chmod(0o600)
        config_error_or_usable(path)

    check()


TEXT = st.text(st.characters(codec="utf-8"), max_size=40)


def test_any_text_in_a_setting_writes_a_kiosk_toml_that_loads_back_the_same(tmp_path: Path) -> None:
    @given(gallery=TEXT, camera=TEXT, pack=TEXT)
    def check(gallery: str, camera: str, pack: str) -> None:
        saved = with_absolute_paths(KioskConfig(gallery=gallery, camera=camera, pack=pack), Path.cwd())
        assert load_config(save_config(saved, tmp_path / "kiosk.toml")) == saved

    check()


def test_a_newline_or_control_character_in_a_setting_still_writes_a_loadable_file(tmp_path: Path) -> None:
    saved = KioskConfig(gallery="/srv/two\nlines \x1b[31m \"quoted\" back\\slash \x7f", camera="7")
    assert load_config(save_config(saved, tmp_path / "kiosk.toml")) == saved


def test_a_kiosk_toml_others_can_read_is_made_the_owners_with_one_warning(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    from kiosk.config import hash_pin

    path = save_config(KioskConfig(pin_hash=hash_pin("2468")), tmp_path / "kiosk.toml")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        load_config(path)
        load_config(path)
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "mode 0644" in warned[0] and "(0600)" in warned[0], warned
    assert path.stat().st_mode & 0o777 == 0o600


# --- the corpus manifest: manifest.jsonl and manifest.csv ---

CORPUS_ROWS = [{"path": "a/one.jpg", "name": "Ann", "caption": "at sea", "source": "mine"},
               {"path": "b/two.jpg", "name": "Bo"}, {"path": "c/three.jpg"}]


@st.composite
def damaged_jsonl(draw: st.DrawFn) -> bytes:
    lines = [draw(damaged_json(row)) if draw(st.booleans()) else json.dumps(row).encode() for row in CORPUS_ROWS]
    return b"\n".join(lines) + b"\n"


@st.composite
def damaged_csv(draw: st.DrawFn) -> bytes:
    rows = [["path", "name", "caption", "source"], *[[str(row.get(key, "")) for key in ("path", "name", "caption",
                                                                                        "source")]
                                                    for row in CORPUS_ROWS]]
    for _ in range(draw(st.integers(0, 3))):
        row = draw(st.sampled_from(rows))
        column = draw(st.integers(0, 3))
        row[column] = draw(st.sampled_from(["", "nan", "inf", "-1", '"', '""', "a,b", "\x00", "\r", "é", "../x.jpg",
                                            "/etc/passwd", "x" * 70_000]))
    text = "\n".join(",".join(row) for row in rows) + "\n"
    return draw(damaged_bytes(text.encode("utf-8")))


def corpus_error_or_items(path: Path) -> None:
    try:
        corpus = read_corpus(path)
    except CorpusError as error:
        assert str(path.resolve()) in one_line(error) or str(path) in one_line(error), error
        return
    assert corpus.items and all(isinstance(item.identity, str) and "\n" not in item.identity for item in corpus.items)


@pytest.mark.parametrize("suffix, damaged", [(".jsonl", damaged_jsonl()), (".csv", damaged_csv())])
def test_a_damaged_corpus_manifest_is_one_corpus_error_line_or_its_rows(tmp_path: Path, suffix: str,
                                                                        damaged: st.SearchStrategy[bytes]) -> None:
    path = tmp_path / f"manifest{suffix}"

    @given(damaged)
    def check(text: bytes) -> None:
        path.write_bytes(text)
        corpus_error_or_items(path)

    check()
