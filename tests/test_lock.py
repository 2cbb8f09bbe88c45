"""One build per gallery at a time (an OS lock that kill -9 frees), a gallery never inside its own
corpus, and a full disk that costs nothing but the new version."""
from __future__ import annotations

import errno
import os
import pathlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import Galleries, copy_lfw_people, engine_for
from face_engine.gallery import Gallery
from face_engine.query import search_photo
from index_builder.cli import main
from index_builder.lock import build_lock, lock_path

ROOT = Path(__file__).resolve().parents[1]
PEOPLE = {"Tony_Blair": 6, "Colin_Powell": 6}


def start_build(corpus: Path, out: Path, *extra: str) -> subprocess.Popen:
    """A build in its own process, slowed to one worker and a shard per two faces."""
    command = [sys.executable, "-m", "index_builder.cli", "build", str(corpus), "--out", str(out),
               "--workers", "1", "--shard-size", "2", *extra]
    return subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_until_holding(out: Path, process: subprocess.Popen) -> None:
    """Until the lock file names `process`: it writes its pid only once it holds the lock."""
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if lock_path(out).exists() and lock_path(out).read_text().split()[:1] == [str(process.pid)]:
            return
        time.sleep(0.05)
    raise AssertionError(f"the build (pid {process.pid}) never held the lock; exit status {process.poll()}")


def assert_every_photo_finds_itself(out: Path, corpus: Path) -> None:
    engine = engine_for("sface")
    gallery = Gallery(out, use_gpu=False)
    try:
        photos = sorted(corpus.rglob("*.jpg"))
        assert gallery.count == len(photos)
        for photo in photos:
            best = search_photo(engine, gallery, photo, 1)["matches"][0]
            assert (best["image"], best["score"] >= 0.99) == (str(photo.resolve()), True), (photo, best)
    finally:
        gallery.close()


def tree(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(path.relative_to(folder)), path.stat().st_size) for path in folder.rglob("*"))


def test_a_second_build_exits_3_naming_the_holder_and_touches_nothing(tmp_path, capsys):
    corpus, out = tmp_path / "corpus", tmp_path / "gallery"
    copy_lfw_people(corpus, {"Zico": 2})
    with build_lock(out):
        started = time.time()
        assert main(["build", str(corpus), "--out", str(out), "--fresh"]) == 3
    assert time.time() - started < 5
    err = capsys.readouterr().err
    assert err.startswith(f"index-builder: {out} is being built by pid {os.getpid()} since ")
    assert "rerun with --wait" in err and len(err.splitlines()) == 1
    assert sorted(path.name for path in lock_path(out).parent.iterdir()) == ["build.lock", "builds.json"], \
        "no work folder made (builds.json records the refusal)"


@pytest.mark.slow
def test_an_update_during_a_build_is_refused_and_wait_queues_behind_it(tmp_path, capsys):
    """The issue's corruption: an update started while a build ran mixed up vectors. It is now
    refused; with --wait it runs after, and every photo still finds itself."""
    corpus, out = tmp_path / "corpus", tmp_path / "gallery"
    copy_lfw_people(corpus, PEOPLE)
    first = start_build(corpus, out)
    wait_until_holding(out, first)
    copy_lfw_people(corpus, {"Zico": 3})
    assert main(["build", str(corpus), "--out", str(out), "--workers", "1"]) == 3
    assert f"is being built by pid {first.pid} since " in capsys.readouterr().err
    assert main(["build", str(corpus), "--out", str(out), "--workers", "1", "--wait"]) == 0
    assert f"is being built by pid {first.pid} since " in capsys.readouterr().err.split("waiting for it to finish")[0]
    assert first.wait(timeout=60) == 0
    assert_every_photo_finds_itself(out, corpus)

    with build_lock(out):  # readers never take the lock, so a running build never blocks them
        assert main(["info", str(out)]) == 0
        assert main(["search", str(out), str(next(corpus.rglob("*.jpg"))), "--k", "1"]) == 0


@pytest.mark.slow
def test_a_build_killed_with_sigkill_frees_the_lock(tmp_path):
    corpus, out = tmp_path / "corpus", tmp_path / "gallery"
    copy_lfw_people(corpus, PEOPLE)
    killed = start_build(corpus, out)
    wait_until_holding(out, killed)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert lock_path(out).read_text().split()[0] == str(killed.pid), "its pid stays in the file, and means nothing"
    assert main(["build", str(corpus), "--out", str(out), "--workers", "1"]) == 0
    assert Gallery(out, use_gpu=False).count == sum(PEOPLE.values())


def process_state(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process from /proc, or None when it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    state = process_state(pid)
    return state is not None and state[0] != "Z"


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is `pid`."""
    return [int(path.name) for path in Path("/proc").glob("[0-9]*")
            if (state := process_state(int(path.name))) and state[1] == pid and state[0] != "Z"]


@pytest.mark.slow
def test_the_workers_of_a_build_killed_with_sigkill_exit_too(tmp_path):
    """kill -9 of the build alone (not its process group, as a user's `kill -9 PID` does): its worker
    processes and multiprocessing's helpers must not read on for nobody."""
    corpus, out = tmp_path / "corpus", tmp_path / "gallery"
    copy_lfw_people(corpus, PEOPLE)
    killed = start_build(corpus, out)
    wait_until_holding(out, killed)
    deadline = time.time() + 60
    while len(children := children_of(killed.pid)) < 2 and time.time() < deadline:  # a worker and the resource tracker
        time.sleep(0.05)
    assert children, "the build started no worker"
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    deadline = time.time() + 20
    while (left := [pid for pid in children if alive(pid)]) and time.time() < deadline:
        time.sleep(0.1)
    assert not left, f"processes {left} outlived the killed build"


@pytest.mark.parametrize("out_in", ["corpus", "link to the corpus", "home in the corpus"])
def test_a_gallery_inside_its_corpus_is_refused_before_anything_is_written(tmp_path, capsys, out_in):
    corpus = tmp_path / "corpus"
    copy_lfw_people(corpus, {"Zico": 2})
    (tmp_path / "link").symlink_to(corpus)
    out = {"corpus": corpus / "gallery", "link to the corpus": tmp_path / "link" / "Zico" / "gallery",
           "home in the corpus": tmp_path / "gallery"}[out_in]
    if out_in == "home in the corpus":
        (tmp_path / "gallery.d").symlink_to(corpus / "Zico")
    before = tree(corpus)
    assert main(["build", str(corpus), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "puts the gallery inside the corpus" in err and len(err.splitlines()) == 1
    assert tree(corpus) == before


def test_a_corpus_inside_the_gallery_folder_is_refused(tmp_path, capsys):
    corpus = tmp_path / "gallery.d" / "photos"
    copy_lfw_people(corpus, {"Zico": 2})
    assert main(["build", str(corpus), "--out", str(tmp_path / "gallery")]) == 2
    assert "lies inside the gallery's folder" in capsys.readouterr().err
    assert sorted(path.name for path in (tmp_path / "gallery.d").iterdir()) == ["photos"]


@pytest.mark.parametrize("out", ["/proc/gallery", "photo.jpg/gallery"])
def test_an_unwritable_out_is_one_line(tmp_path, capsys, monkeypatch, out):
    corpus = tmp_path / "corpus"
    copy_lfw_people(corpus, {"Zico": 1})
    monkeypatch.chdir(tmp_path)
    Path("photo.jpg").write_bytes(next(corpus.rglob("*.jpg")).read_bytes())
    assert main(["build", str(corpus), "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"index-builder: cannot write {out}.d") and len(err.splitlines()) == 1


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as write(2) fails: no file name


@pytest.mark.slow
@pytest.mark.parametrize("target, says", [
    ((np, "save"), "gallery.d/work: No space left on device"),
    ((pathlib.Path, "write_bytes"), ".partial: No space left on device"),
    ((os, "symlink"), "gallery: No space left on device"),
], ids=["state", "version", "link"])
def test_a_full_disk_keeps_the_live_gallery_and_leaves_no_partial_version(tmp_path, capsys, monkeypatch, target, says,
                                                                          galleries: Galleries):
    corpus, out = galleries.copy({"Zico": 2}, tmp_path)
    live, versions = out.resolve(), sorted((tmp_path / "gallery.d" / "versions").iterdir())
    gallery = Gallery(out, use_gpu=False)
    vectors, rows = gallery.index.reconstruct_n(0, gallery.count), gallery.faces(list(range(gallery.count)))
    gallery.close()
    copy_lfw_people(corpus, {"Hugo_Chavez": 1})

    monkeypatch.setattr(*target, no_space)
    assert main(["build", str(corpus), "--out", str(out), "--workers", "1"]) == 2
    monkeypatch.undo()
    [err] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("index-builder:")]
    assert err.startswith("index-builder: cannot write ") and err.endswith(f"{says}; the live gallery is unchanged")
    assert out.resolve() == live
    assert sorted((tmp_path / "gallery.d" / "versions").iterdir()) == versions, "no partial version left"
    gallery = Gallery(out, use_gpu=False)
    np.testing.assert_array_equal(gallery.index.reconstruct_n(0, gallery.count), vectors)
    assert gallery.faces(list(range(gallery.count))) == rows
    gallery.close()


@pytest.mark.slow
def test_deleting_build_lock_during_a_build_lets_no_second_build_in(tmp_path, capsys):
    """The lock is the gallery's folder itself: the file holding the holder's pid can go, the lock stays."""
    corpus, out = tmp_path / "corpus", tmp_path / "gallery"
    copy_lfw_people(corpus, PEOPLE)
    first = start_build(corpus, out)
    try:
        wait_until_holding(out, first)
        lock_path(out).unlink()
        assert main(["build", str(corpus), "--out", str(out), "--workers", "1"]) == 3
        err = capsys.readouterr().err
        assert err.startswith(f"index-builder: {out} is being built by another build") and len(err.splitlines()) == 1
        assert first.poll() is None, "the first build runs on"
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
