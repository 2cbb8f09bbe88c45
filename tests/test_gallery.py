"""Damaged galleries: each damage is one GalleryError line naming the gallery and what is wrong, and
`index-builder search` and `info` exit 2 with that line. Each case damages a copy of a small real
gallery built from LFW. Older formats: a format-3 gallery reads, with its pack's likeness table; an
older one asks for a fresh build. What a gallery answers: k different people however many photos one
of them has, shown by score."""
from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import face_engine.likeness
from conftest import PHOTOS, copy_lfw_people, need
from face_engine.fairness import EXACT, SHORTLIST_GROWTH, FairPolicy
from face_engine.gallery import (
    FORMAT_VERSION,
    PAIRS_FILE,
    SOURCE_SIDE_FILE,
    Gallery,
    GalleryError,
    Manifest,
    face_record,
)
from face_engine.query import Lookalike, choose, displayed
from index_builder.build import BuildOptions, build
from index_builder.cli import main
from test_bench import synthetic_gallery


@pytest.fixture(scope="module")
def live_version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The version folder of a gallery of 10 LFW photos (never damaged itself)."""
    folder = tmp_path_factory.mktemp("gallery")
    copy_lfw_people(folder / "corpus", {"Tony_Blair": 4, "Colin_Powell": 3, "Zico": 2, "Hugo_Chavez": 1})
    with pytest.MonkeyPatch.context() as patch:  # its own likeness table, though a real one needs 100 people
        patch.setattr(face_engine.likeness, "MIN_CALIBRATION_PEOPLE", 2)
        build(BuildOptions(corpus=folder / "corpus", out=folder / "gallery", workers=1, progress=False))
    return (folder / "gallery").resolve()


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def zero(path: Path) -> None:
    path.write_bytes(bytes(path.stat().st_size))


def edit_manifest(folder: Path, change: Callable[[dict], None]) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def edit_metadata(folder: Path, statement: str) -> None:
    db = sqlite3.connect(folder / "metadata.sqlite")
    with db:
        db.execute(statement)
    db.close()


DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated index": (lambda g: truncate(g / "index.faiss"),
                        "index.faiss is damaged (truncated or not a FAISS index)"),
    "empty index": (lambda g: (g / "index.faiss").write_bytes(b""), "index.faiss is damaged"),
    "zeroed index": (lambda g: zero(g / "index.faiss"), "index.faiss is damaged"),
    "deleted index": (lambda g: (g / "index.faiss").unlink(), "index.faiss is missing"),
    "deleted metadata": (lambda g: (g / "metadata.sqlite").unlink(), "metadata.sqlite is missing"),
    "corrupt metadata": (lambda g: zero(g / "metadata.sqlite"), "metadata.sqlite is damaged"),
    "corrupt manifest": (lambda g: truncate(g / "manifest.json"), "manifest.json is damaged (not valid JSON)"),
    "empty manifest": (lambda g: (g / "manifest.json").write_text(""), "manifest.json is damaged (not valid JSON)"),
    "manifest not an object": (lambda g: (g / "manifest.json").write_text("[1, 2]"), "not a JSON object"),
    "manifest missing a key": (lambda g: edit_manifest(g, lambda m: m.pop("pack_source")),
                               "manifest.json is damaged (missing or malformed: pack_source)"),
    "manifest files without the index": (lambda g: edit_manifest(g, lambda m: m["files"].pop("index")),
                                         "missing or malformed: files.index"),
    "manifest count wrong": (lambda g: edit_manifest(g, lambda m: m.update(count=11)),
                             "index.faiss holds 10 vectors of 128 dimensions; manifest.json says 11 of 128"),
    "manifest dim wrong": (lambda g: edit_manifest(g, lambda m: m.update(dim=512)), "manifest.json says 10 of 512"),
    "fewer metadata rows than vectors": (lambda g: edit_metadata(g, "DELETE FROM faces WHERE id = 3"),
                                         "metadata.sqlite has 9 rows for 10 vectors"),
    "more metadata rows than vectors": (lambda g: edit_metadata(g, "INSERT INTO faces (id) VALUES (10)"),
                                        "metadata.sqlite has 11 rows for 10 vectors"),
}


@pytest.fixture(params=list(DAMAGES))
def damaged(request, live_version: Path, tmp_path: Path) -> tuple[Path, str]:
    """A damaged copy of the gallery, and a piece of the line that must say what is wrong."""
    damage, says = DAMAGES[request.param]
    copy = Path(shutil.copytree(live_version, tmp_path / "damaged"))
    damage(copy)
    return copy, says


def test_a_damaged_gallery_is_one_gallery_error_line(damaged):
    folder, says = damaged
    with pytest.raises(GalleryError) as raised:
        Gallery(folder, use_gpu=False)
    message = str(raised.value)
    assert message.startswith(f"{folder}: ") and says in message and "\n" not in message


@pytest.mark.parametrize("command", ["search", "info"])
def test_search_and_info_exit_2_with_one_line_on_a_damaged_gallery(damaged, command, capsys):
    folder, says = damaged
    argv = [command, str(folder)] + ([str(need(PHOTOS) / "fr_obama.jpg")] if command == "search" else [])
    assert main(argv) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.startswith(f"index-builder: {folder}: ")
    assert says in printed.err and len(printed.err.strip().splitlines()) == 1


def test_a_gallery_of_the_format_before_portraits_asks_for_a_fresh_build(live_version, tmp_path):
    copy = Path(shutil.copytree(live_version, tmp_path / "old"))
    edit_manifest(copy, lambda m: m.update(format_version=1))
    with pytest.raises(GalleryError, match="rebuild with `index-builder build --fresh`"):
        Gallery(copy, use_gpu=False)


def test_the_manifest_reads_and_writes_the_same_json(live_version):
    data = json.loads((live_version / "manifest.json").read_text())
    manifest = Manifest.from_json(data)
    assert manifest.to_json() == data and list(manifest.to_json()["build"]) == list(data["build"])
    assert manifest.fairness is not None and manifest.measured_lambda == data["fairness"]["lambda"]
    assert manifest.build.corpus == data["build"]["corpus"] and manifest.fairness.k == data["fairness"]["k"]


def test_a_manifest_without_what_later_builds_record_still_reads(live_version, tmp_path):
    copy = Path(shutil.copytree(live_version, tmp_path / "older"))
    edit_manifest(copy, lambda m: (m["build"].pop("content_id"), m["build"].pop("min_quality"),
                                   m["fairness"].pop("references")))
    manifest = Gallery(copy, use_gpu=False).manifest
    assert (manifest.build.content_id, manifest.build.min_quality, manifest.fairness.references) == ("", 0.0, 0)
    edit_manifest(copy, lambda m: m.update(fairness={}))
    manifest = Gallery(copy, use_gpu=False).manifest
    assert manifest.fairness is None and manifest.measured_lambda is None and manifest.to_json()["fairness"] == {}


def test_an_intact_gallery_opens_with_its_counts(live_version):
    gallery = Gallery(live_version, use_gpu=False)
    assert gallery.count == gallery.manifest.count == 10
    faces = gallery.faces([0, 9])
    assert [face.id for face in faces] == [0, 9] and all(Path(face.portrait).is_file() for face in faces)
    gallery.close()


def test_a_build_stores_its_likeness_table_and_a_format_3_gallery_reads_with_its_packs(live_version, tmp_path):
    gallery = Gallery(live_version, use_gpu=False)
    table = gallery.manifest.likeness
    assert table is not None and table.people == 4 and gallery.calibration is table
    assert json.loads((live_version / "manifest.json").read_text())["likeness"] == table.to_json()
    copy = Path(shutil.copytree(live_version, tmp_path / "format3"))
    edit_manifest(copy, lambda m: (m.update(format_version=3), m.pop("likeness")))
    older = Gallery(copy, use_gpu=False)
    assert older.manifest.likeness is None and older.calibration.source == "pack sface on LFW"
    edit_manifest(copy, lambda m: m.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(GalleryError, match=f"unsupported gallery format version {FORMAT_VERSION + 1}"):
        Gallery(copy, use_gpu=False)


def test_a_format_4_gallery_reads_without_source_scales_or_pairs(live_version, tmp_path):
    built = Gallery(live_version, use_gpu=False)
    assert built.manifest.files.source_side == SOURCE_SIDE_FILE and (built.source_side > 0).all()
    assert built.pairs is not None and built.faces([0])[0].source_side == built.source_side[0]
    copy = Path(shutil.copytree(live_version, tmp_path / "format4"))
    (copy / SOURCE_SIDE_FILE).unlink()
    (copy / PAIRS_FILE).unlink()
    edit_manifest(copy, lambda m: (m.update(format_version=4), m["files"].pop("source_side"), m["files"].pop("pairs")))
    older = Gallery(copy, use_gpu=False)
    assert older.pairs is None and [face.source_side for face in older.faces([0, 1])] == [0, 0]
    edit_manifest(copy, lambda m: m.update(format_version=5, files={**m["files"], "pairs": PAIRS_FILE}))
    with pytest.raises(GalleryError, match=f"{PAIRS_FILE} is missing"):
        Gallery(copy, use_gpu=False)


def crowded_gallery(folder: Path, crowd: int = 120) -> tuple[Path, np.ndarray]:
    """A gallery where one person's `crowd` photos are all nearer the query than anyone else: then
    one face each of seven other people, less and less alike. Returns it and the query."""
    rng = np.random.default_rng(5)
    query = np.eye(32, dtype=np.float32)[0]
    noise = rng.standard_normal((crowd + 7, 32)).astype(np.float32)
    noise[:, 0] = 0
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    near = np.r_[np.full(crowd, 0.9), np.linspace(0.6, 0.3, 7)]
    xb = (near[:, None] * query + np.sqrt(1 - near[:, None] ** 2) * noise).astype(np.float32)
    names = ["crowd"] * crowd + [f"other{i}" for i in range(7)]
    return synthetic_gallery(folder, xb, names), query[None]


@pytest.mark.parametrize("policy", [EXACT, FairPolicy(0.0), FairPolicy(1.0)], ids=["exact", "fair_0", "fair_1"])
def test_every_list_holds_k_different_people_however_many_photos_one_of_them_has(tmp_path, policy):
    path, query = crowded_gallery(tmp_path / "g")
    gallery = Gallery(path, use_gpu=False)
    for k in (1, 3, 5, 8):
        people = {match.face.identity for match in choose(gallery, query, k, True, policy)}
        assert len(people) == k, (k, people)
    assert len({m.face.identity for m in choose(gallery, query, 20, True, policy)}) == 8, "all 8 the gallery has"
    crowd = [face.id for face in gallery.faces(list(range(gallery.count))) if face.identity == "crowd"]
    left_out = choose(gallery, query, 5, True, policy, leave_out=crowd)
    shown = [m.face.identity for m in displayed(left_out)]
    assert len(set(shown)) == 5 and "crowd" not in shown
    if policy is EXACT:
        assert shown == [f"other{i}" for i in range(5)]


def test_a_shortlist_grows_only_when_it_is_short_of_people(tmp_path, monkeypatch):
    path, query = crowded_gallery(tmp_path / "g")
    gallery = Gallery(path, use_gpu=False)
    asked: list[int] = []
    search = gallery.search
    monkeypatch.setattr(gallery, "search", lambda xq, k: asked.append(k) or search(xq, k))
    choose(gallery, query, 5, True, EXACT)
    assert asked == [25, 25 * SHORTLIST_GROWTH, gallery.count], "searched again, longer, until it held 5 people"
    asked.clear()
    choose(gallery, np.eye(32, dtype=np.float32)[1][None], 1, True, EXACT)
    assert asked == [5], "a list with enough people is searched once"


def test_what_is_shown_is_by_score_best_first_whatever_order_the_policy_chose():
    def match(score: float, name: str) -> Lookalike:
        return Lookalike(score, face_record(0, image="", identity=name, display_name=name, caption="", source="",
                                            x1=0, y1=0, x2=1, y2=1, score=1.0), 0.0, 0)

    chosen = [match(0.4, "a"), match(0.6, "b"), match(0.4, "c"), match(0.5, "d")]
    assert [m.face.identity for m in displayed(chosen)] == ["b", "d", "a", "c"], "equal scores keep the policy's order"
