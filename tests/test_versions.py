"""The gallery version a reader (the kiosk) holds open is never deleted by a publish, however many
come before the reader lets go; the next publish after it lets go removes it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import SMALL_GALLERY, Galleries
from face_engine.gallery import Gallery
from index_builder.publish import kept_versions, publish

ROOT = Path(__file__).resolve().parents[1]
HOLD = ("import sys; from face_engine.gallery import Gallery; gallery = Gallery(sys.argv[1], use_gpu=False); "
        "print('holding', flush=True); sys.stdin.read(); gallery.close()")


def hold(version: Path) -> subprocess.Popen:
    """A reader in another process, as the kiosk is, holding `version` open until its input ends."""
    reader = subprocess.Popen([sys.executable, "-c", HOLD, str(version)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert reader.stdout is not None and reader.stdout.readline() == "holding\n"
    return reader


def republish(out: Path) -> Path:
    """The live version published again, as a build with nothing new would."""
    live = out.resolve()
    gallery = Gallery(live, use_gpu=False)
    vectors = gallery.index.reconstruct_n(0, gallery.count)
    gallery.close()
    return publish(out, vectors, lambda folder: shutil.copytree(live, folder))


def test_a_version_held_open_outlives_any_number_of_publishes_and_goes_once_let_go(tmp_path, galleries: Galleries):
    _, out = galleries.copy(SMALL_GALLERY, tmp_path)
    first = out.resolve()
    reader = hold(first)
    try:
        published = [republish(out) for _ in range(3)]
        assert first.is_dir() and Gallery(first, use_gpu=False).count > 0, "the held version stays whole"
        assert set(kept_versions(out)) == {first, *published[-2:]}, "the unheld ones beyond the newest two go"
    finally:
        assert reader.stdin is not None
        reader.stdin.close()
        assert reader.wait(timeout=30) == 0
    latest = republish(out)
    assert set(kept_versions(out)) == {published[-1], latest}  # names within one second are not in time order
