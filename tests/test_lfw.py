"""Identity search on all of LFW with the default pack: a real build of 13,233 photos (about 10
minutes on a 2-core CPU), marked slow; it still runs in CI."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import LFW, need
from face_engine.gallery import Gallery
from index_builder.build import BuildOptions, build
from index_builder.evaluate import leave_one_out_identification
from index_builder.worker import FaceFilter


@pytest.mark.slow
def test_lfw_people_find_themselves_at_rank_one(tmp_path_factory):
    corpus = need(LFW) / "images_deepfunneled"
    out = tmp_path_factory.mktemp("lfw") / "gallery"
    report = build(BuildOptions(corpus=corpus, out=out, face_filter=FaceFilter("central"), progress=False))
    assert report["photos_in_corpus"] == 13233
    assert report["gallery_faces"] >= 13200, report["skipped"]
    gallery = Gallery(out, use_gpu=False)
    xb = gallery.index.reconstruct_n(0, gallery.count)
    identities = [row[0] for row in gallery.db.execute("SELECT identity FROM faces ORDER BY id")]
    rates = leave_one_out_identification(np.asarray(xb), identities)
    print(f"LFW leave-one-out identification: {rates}")
    assert rates["queries"] >= 9000
    assert rates["rank1"] >= 0.95
