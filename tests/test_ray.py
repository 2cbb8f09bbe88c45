"""`build --engine ray` on a local Ray instance: the same gallery as the local engine, and the same
resumability. Ray is an optional extra; these tests need it (./setup_kiosk.sh --ray)."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import LFW, copy_lfw_people, need
from face_engine.engine import FaceEngine
from face_engine.gallery import Gallery
from face_engine.query import search_photo
from index_builder.build import BuildOptions, build
from models.packs import resolve_pack

pytest.importorskip("ray", reason="Ray is the optional extra .[ray]: ./setup_kiosk.sh --ray")
pytestmark = pytest.mark.slow  # a local Ray instance takes tens of seconds to start here


def corpus_of(folder: Path, people: dict[str, int]) -> Path:
    copy_lfw_people(folder, people)
    return folder


def by_image(out: Path) -> dict[str, tuple]:
    """Each photo's metadata and vector, keyed by photo: the comparison ignores vector order."""
    gallery = Gallery(out, use_gpu=False)
    vectors = gallery.index.reconstruct_n(0, gallery.count)
    rows = gallery.db.execute("SELECT id, image, identity, caption, x1, y1, x2, y2 FROM faces").fetchall()
    gallery.close()
    return {row[1]: (row[2:], vectors[row[0]]) for row in rows}


def quality_by_image(out: Path) -> dict[str, np.ndarray]:
    gallery = Gallery(out, use_gpu=False)
    assert gallery.quality is not None
    return {face.image: gallery.quality[face.id] for face in gallery.faces(list(range(gallery.count)))}


def assert_same_gallery(one: Path, other: Path) -> None:
    left, right = by_image(one), by_image(other)
    assert sorted(left) == sorted(right)
    for image, (meta, vector) in left.items():
        assert right[image][0][:2] == meta[:2]
        np.testing.assert_allclose(right[image][0][2:], meta[2:], atol=0.01)
        np.testing.assert_allclose(right[image][1], vector, atol=1e-5)


def stop_ray() -> None:
    subprocess.run([str(Path(sys.executable).parent / "ray"), "stop", "--force"], capture_output=True)


def test_ray_and_local_engines_build_the_same_gallery(tmp_path, photos):
    corpus = corpus_of(tmp_path / "corpus", {"Tony_Blair": 5, "Zico": 3, "Hugo_Chavez": 3})
    (corpus / "Zico" / "notes.jpg").write_text("not a photo")
    local = build(BuildOptions(corpus=corpus, out=tmp_path / "local", workers=2, progress=False))
    ray = build(BuildOptions(corpus=corpus, out=tmp_path / "ray", workers=2, progress=False, engine="ray"))
    assert ray["engine"] == "ray" and ray["skipped"] == local["skipped"] == {"not_an_image": 1}
    assert ray["gallery_faces"] == local["gallery_faces"] == 11
    assert_same_gallery(tmp_path / "local", tmp_path / "ray")
    qualities = [quality_by_image(tmp_path / name) for name in ("local", "ray")]
    assert sorted(qualities[0]) == sorted(qualities[1])
    for image, quality in qualities[0].items():
        np.testing.assert_allclose(qualities[1][image], quality, atol=0.02)  # the detectors' boxes differ slightly
    engine = FaceEngine(resolve_pack("sface"), "cpu")
    query = need(LFW) / "images_deepfunneled" / "Tony_Blair" / "Tony_Blair_0100.jpg"
    answers = [search_photo(engine, Gallery(tmp_path / name), query, 5)["matches"] for name in ("local", "ray")]
    found_locally, found_on_ray = ([(m["image"], round(m["score"], 3)) for m in matches] for matches in answers)
    assert found_locally == found_on_ray


def test_a_killed_ray_build_resumes(tmp_path):
    corpus = corpus_of(tmp_path / "corpus", {"Tony_Blair": 40, "Colin_Powell": 40})
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "index_builder.cli", "build", str(corpus), "--out", str(out),
               "--engine", "ray", "--workers", "2", "--shard-size", "2", "--batch", "2"]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "killed.d" / "work" / "state.sqlite"
    committed, deadline = 0, time.time() + 300
    try:
        while time.time() < deadline and committed < 4:
            time.sleep(0.1)
            try:
                committed = sqlite3.connect(state).execute("SELECT COUNT(*) FROM faces").fetchone()[0]
            except sqlite3.OperationalError:
                pass  # not created yet
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        stop_ray()
    committed = sqlite3.connect(state).execute("SELECT COUNT(*) FROM faces").fetchone()[0]
    assert 4 <= committed < 80, f"not killed midway ({committed} faces committed)"
    resumed = build(BuildOptions(corpus=corpus, out=out, workers=2, progress=False, engine="ray"))
    assert resumed["faces_embedded_this_run"] == 80 - committed
    build(BuildOptions(corpus=corpus, out=tmp_path / "local", workers=2, progress=False))
    assert_same_gallery(out, tmp_path / "local")
