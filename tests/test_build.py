"""`index-builder build / search / info` on small real corpora made from LFW and the test photos."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import LFW, SMALL_GALLERY, Galleries, copy_lfw_people, need
from face_engine.gallery import PORTRAIT_SIZE, Gallery, portrait_crop
from face_engine.imaging import read_image
from index_builder.build import BuildError, BuildOptions, build
from index_builder.cli import main
from index_builder.publish import PublishError
from index_builder.worker import FaceFilter

PEOPLE = {"Tony_Blair": 6, "Colin_Powell": 6, "Zico": 3, "Hugo_Chavez": 5}


def options(corpus: Path, out: Path, **overrides) -> BuildOptions:
    """Two workers unless told otherwise (each worker process loads the models: one more costs a second or two)."""
    return BuildOptions(corpus=corpus, out=out, **{"workers": 2, "progress": False, **overrides})


def gallery_contents(out: Path) -> tuple[np.ndarray, list[tuple]]:
    gallery = Gallery(out, use_gpu=False)
    vectors = gallery.index.reconstruct_n(0, gallery.count)
    rows = gallery.db.execute("SELECT id, image, identity, x1, y1, x2, y2, score FROM faces ORDER BY id").fetchall()
    gallery.close()
    return vectors, rows


@pytest.fixture
def messy_corpus(tmp_path: Path, photos: Path) -> tuple[Path, list[Path]]:
    return make_messy_corpus(tmp_path / "corpus", photos)


@pytest.fixture(scope="module")
def messy_gallery(tmp_path_factory: pytest.TempPathFactory, photos: Path) -> Path:
    """The messy corpus's gallery, built once for the tests that only read it."""
    folder = tmp_path_factory.mktemp("messy")
    corpus, _ = make_messy_corpus(folder / "corpus", photos)
    build(options(corpus, folder / "gallery", workers=1))
    return folder / "gallery"


def make_messy_corpus(corpus: Path, photos: Path) -> tuple[Path, list[Path]]:
    """Real photos mixed with every kind of bad file a corpus holds."""
    good = copy_lfw_people(corpus, PEOPLE)
    chinese = corpus / "张伟"
    chinese.mkdir()
    good.append(Path(shutil.copy(photos / "fr_obama.jpg", chinese / "照片一.jpg")))
    data = good[0].read_bytes()
    bad = corpus / "Tony_Blair"
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (bad / "corrupt.jpg").write_bytes(data[:700] + bytes(reversed(data[700:])))
    (bad / "notes.txt").write_text("photographer: unknown\n")
    (bad / "copy_of_first.jpg").write_bytes(data)
    shutil.copy(photos / "chelsea.png", bad / "cat.png")
    return corpus, good


def test_a_messy_corpus_builds_counting_each_bad_file_and_losing_no_good_photo(tmp_path, messy_corpus, capsys):
    corpus, good = messy_corpus
    out = tmp_path / "gallery"
    assert main(["build", str(corpus), "--out", str(out), "--workers", "2"]) == 1  # bad files: published, exit 1
    assert f"published {out}" in capsys.readouterr().out
    report = json.loads((tmp_path / "gallery.d" / "work" / "report.json").read_text())
    assert report["skipped"] == {"empty": 1, "corrupt": 2, "not_an_image": 1, "duplicate": 1, "no_face": 1}
    assert report["gallery_faces"] == len(good)
    _, rows = gallery_contents(out)
    assert sorted(row[1] for row in rows) == sorted(str(path) for path in good)
    assert "张伟" in {row[2] for row in rows}


def test_search_finds_the_person_and_reports_timings(messy_gallery, photos, capsys):
    out = messy_gallery
    query = need(LFW) / "images_deepfunneled" / "Tony_Blair" / "Tony_Blair_0100.jpg"  # not in the gallery
    assert main(["search", str(out), str(query), "--json", "--k", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["faces"] >= 1
    assert [m["rank"] for m in result["matches"]] == [1, 2, 3]
    assert (result["matches"][0]["name"], result["matches"][0]["identity"]) == ("Tony Blair", "Tony_Blair")
    assert Path(result["matches"][0]["thumbnail"]).is_file()
    assert set(result["timings_ms"]) == {"decode", "detect", "align", "embed", "search"}
    assert main(["search", str(out), str(photos / "coffee.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["matches"] == []
    assert main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "index        Flat" in info and "skipped      corrupt 2" in info


def test_a_gallery_is_refused_by_an_engine_with_another_recognizer(messy_gallery, mini_pack, photos, capsys):
    out = messy_gallery
    assert main(["search", str(out), str(photos / "fr_obama.jpg"), "--pack", str(mini_pack)]) == 2
    assert "cannot be compared" in capsys.readouterr().err


@pytest.mark.slow
def test_an_update_embeds_only_new_photos_and_drops_removed_ones(tmp_path):
    corpus, out = tmp_path / "corpus", tmp_path / "gallery"
    copy_lfw_people(corpus, {"Tony_Blair": 4, "Zico": 3})
    first = build(options(corpus, out))
    assert first["faces_embedded_this_run"] == 7
    shutil.rmtree(corpus / "Zico")
    copy_lfw_people(corpus, {"Hugo_Chavez": 2})
    second = build(options(corpus, out))
    assert (second["faces_embedded_this_run"], second["photos_removed_since_last_build"]) == (2, 3)
    _, rows = gallery_contents(out)
    assert sorted({row[2] for row in rows}) == ["Hugo_Chavez", "Tony_Blair"]
    assert build(options(corpus, out))["up_to_date"] is True


@pytest.mark.slow
def test_a_failed_build_leaves_the_live_gallery_in_use(tmp_path, photos, monkeypatch, galleries: Galleries):
    corpus, out = galleries.copy({"Zico": 2}, tmp_path)
    live = out.resolve()
    shutil.copy(photos / "fr_obama.jpg", corpus / "Zico" / "extra.jpg")

    def broken_validation(folder, xb):
        raise PublishError("simulated: the new index does not open")

    monkeypatch.setattr("index_builder.publish.validate", broken_validation)
    with pytest.raises(PublishError):
        build(options(corpus, out))
    assert out.resolve() == live and Gallery(out).count == 2
    assert not list((tmp_path / "gallery.d" / "versions").glob(".*")), "no half-written version left"

    for photo in (corpus / "Zico").iterdir():
        shutil.copy(photos / "coffee.png", photo)  # every photo now shows no face
    with pytest.raises(BuildError, match="no face"):
        build(options(corpus, out))
    assert out.resolve() == live


def test_changed_settings_need_fresh(tmp_path, galleries: Galleries):
    corpus, out = galleries.copy({"Zico": 2}, tmp_path)
    with pytest.raises(BuildError, match="--fresh"):
        build(options(corpus, out, face_filter=FaceFilter("all")))
    assert build(options(corpus, out, face_filter=FaceFilter("all"), fresh=True, workers=1))[
        "faces_embedded_this_run"] == 2


@pytest.mark.slow
def test_a_killed_build_resumes_to_the_same_gallery_with_less_work(tmp_path):
    corpus = tmp_path / "corpus"
    copy_lfw_people(corpus, {"Tony_Blair": 20, "Colin_Powell": 20, "Hugo_Chavez": 10})
    command = [sys.executable, "-m", "index_builder.cli", "build", str(corpus), "--workers", "2", "--shard-size", "4"]
    killed_out = tmp_path / "killed"
    process = subprocess.Popen(command + ["--out", str(killed_out)], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "killed.d" / "work" / "state.sqlite"
    deadline = time.time() + 120
    committed = 0
    while time.time() < deadline and committed < 12:
        time.sleep(0.2)
        if state.exists():
            try:
                committed = sqlite3.connect(state).execute("SELECT COUNT(*) FROM faces").fetchone()[0]
            except sqlite3.OperationalError:
                pass  # the schema is still being created
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    committed = sqlite3.connect(state).execute("SELECT COUNT(*) FROM faces").fetchone()[0]
    assert 12 <= committed < 50, f"the build was not killed midway ({committed} faces committed)"
    assert not killed_out.exists(), "nothing is published before the build completes"

    resumed = build(options(corpus, killed_out))
    assert resumed["faces_embedded_this_run"] == 50 - committed
    build(options(corpus, tmp_path / "straight"))
    killed_vectors, killed_rows = gallery_contents(killed_out)
    straight_vectors, straight_rows = gallery_contents(tmp_path / "straight")
    assert killed_rows == straight_rows
    np.testing.assert_allclose(killed_vectors, straight_vectors, atol=1e-5)


def test_a_csv_manifest_brings_names_captions_and_sources(tmp_path, capsys):
    photos = copy_lfw_people(tmp_path / "files", {"Zico": 2, "Hugo_Chavez": 1})
    manifest = tmp_path / "corpus.csv"
    manifest.write_text("path,name,caption,source\n" + "".join(
        f"{p.relative_to(tmp_path)},Person {i},第{i}张照片 caption,archive {i}\n" for i, p in enumerate(photos))
        + "files/missing.jpg,Nobody,,\n", encoding="utf-8")
    report = build(options(manifest, tmp_path / "gallery", workers=1))
    assert report["gallery_faces"] == 3 and report["skipped"] == {"missing": 1}
    assert main(["search", str(tmp_path / "gallery"), str(photos[0]), "--json", "--k", "1"]) == 0
    match = json.loads(capsys.readouterr().out)["matches"][0]
    assert (match["name"], match["identity"], match["caption"], match["score"]) == (
        "Person 0", "Person 0", "第0张照片 caption", pytest.approx(1.0, abs=1e-4))


def test_each_face_gets_its_portrait_in_the_gallery(galleries: Galleries):
    out = galleries.built(SMALL_GALLERY) / "gallery"
    gallery = Gallery(out, use_gpu=False)
    assert gallery.manifest.files.portraits == "portraits"
    for face in gallery.faces(list(range(gallery.count))):
        assert face.portrait == str(gallery.root / "portraits" / "00000" / f"{face.id}.jpg")
        portrait = read_image(face.portrait)
        assert portrait.shape == (PORTRAIT_SIZE, PORTRAIT_SIZE, 3)
        crop = portrait_crop(read_image(face.image), np.array([face.x1, face.y1, face.x2, face.y2]))
        assert np.abs(portrait.astype(int) - crop).mean() < 3, "the crop the kiosk shows, through JPEG"
    gallery.close()


def test_a_work_folder_from_before_portraits_quality_scores_or_source_sides_needs_fresh(tmp_path, galleries: Galleries):
    corpus, out = galleries.copy({"Zico": 2}, tmp_path)
    state = sqlite3.connect(tmp_path / "gallery.d" / "work" / "state.sqlite")
    state.execute("ALTER TABLE faces DROP COLUMN portrait")  # as an older index-builder left it
    state.commit()
    state.close()
    with pytest.raises(BuildError, match="no portraits.*--fresh"):
        build(options(corpus, out))
    assert build(options(corpus, out, fresh=True, workers=1))["faces_embedded_this_run"] == 2
    state = sqlite3.connect(tmp_path / "gallery.d" / "work" / "state.sqlite")
    state.execute("ALTER TABLE faces DROP COLUMN source_side")  # as the index-builder before format 5 left it
    state.commit()
    with pytest.raises(BuildError, match="before corpus borders were trimmed.*--fresh"):
        build(options(corpus, out))
    for column in ("quality", "sharpness", "frontal", "size"):
        state.execute(f"ALTER TABLE faces DROP COLUMN {column}")  # as the index-builder before quality scores left it
    state.commit()
    state.close()
    with pytest.raises(BuildError, match="no quality scores.*--fresh"):
        build(options(corpus, out))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_worker_killed_by_the_system_ends_the_build_with_one_line_and_it_resumes(tmp_path):
    """A worker process killed mid-build (as the OOM-killer does) must not leave the build waiting
    for it forever: the build stops with a BuildError, and a rerun finishes from the kept shards."""
    import multiprocessing
    import threading

    corpus = tmp_path / "corpus"
    copy_lfw_people(corpus, {"George_W_Bush": 40})
    out = tmp_path / "gallery"
    outcome: list[Exception] = []

    def run() -> None:
        try:
            build(options(corpus, out, shard_size=4))
        except Exception as error:  # handed to the test thread
            outcome.append(error)

    builder = threading.Thread(target=run)
    builder.start()
    shards = tmp_path / "gallery.d" / "work" / "shards"
    deadline = time.monotonic() + 120
    while not list(shards.glob("*.npy")) and time.monotonic() < deadline:
        time.sleep(0.1)
    for worker in multiprocessing.active_children():
        os.kill(worker.pid, signal.SIGKILL)
    builder.join(timeout=120)
    assert not builder.is_alive(), "the build waited forever for a dead worker"
    assert len(outcome) == 1 and isinstance(outcome[0], BuildError)
    assert "a worker process died" in str(outcome[0]) and "rerun to resume" in str(outcome[0])
    report = build(options(corpus, out))
    assert report["gallery_faces"] == 40 and report["faces_embedded_this_run"] < 40


@pytest.mark.slow
def test_a_forced_index_is_built_recorded_and_reopened_with_its_shortlist(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    copy_lfw_people(corpus, {"George_W_Bush": 20})  # 4-bit PQ trains 16 centroids: 16 faces at least
    out = tmp_path / "gallery"
    code = main(["build", str(corpus), "--out", str(out), "--workers", "2", "--index", "PQ64x4fs,RFlat",
                 "--index-param", "k_factor_rf=64"])
    assert code == 0, capsys.readouterr().err
    gallery = Gallery(out, use_gpu=False)
    index = gallery.manifest.index
    assert (index.factory, index.search_params) == ("PQ64x4fs,RFlat", {"k_factor_rf": 64})
    assert index.bytes_per_face == 64 / 2 + 4 * 128 and "forced with --index" in index.reason
    assert gallery.index.k_factor == 64
    report = json.loads((out.parent / "gallery.d" / "work" / "report.json").read_text())
    assert report["index_stage_peak_rss_mb"] >= report["peak_rss_mb_before_index_stage"] > 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "544 bytes per face; expected RSS" in capsys.readouterr().out

    code = main(["build", str(corpus), "--out", str(out), "--workers", "2", "--fresh", "--memory-budget", "0.001"])
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert code == 2 and last.startswith("index-builder: no index reached recall@5")
    assert "exact search needs" in last and "raise --memory-budget" in last
