"""Portrait quality: scored at build time from real photos, stored in the gallery, a --min-quality
build option, and near-ties broken toward the better portrait in the fair policy."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import SMALL_GALLERY, Galleries, copy_lfw_people
from face_engine.fairness import FairPolicy
from face_engine.gallery import QUALITY_FILE, Gallery, GalleryError, portrait_crop
from face_engine.imaging import read_image
from face_engine.quality import COLUMNS, face_quality, frontal, near_tie_order
from index_builder.build import BuildError, build
from index_builder.cli import main as builder_main
from index_builder.options import BuildOptions


def quality_of(engine, image: np.ndarray) -> np.ndarray:
    found = engine.detect(image)
    assert len(found.boxes), "the photo's face must be found"
    return face_quality(portrait_crop(image, found.boxes[0]), found.boxes[0], found.landmarks[0])


def test_a_blurred_copy_of_a_real_photo_scores_lower_in_sharpness_only(sface_engine, photos):
    sharp = read_image(photos / "fr_obama.jpg")
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    a, b = quality_of(sface_engine, sharp), quality_of(sface_engine, blurred)
    at = {name: i for i, name in enumerate(COLUMNS)}
    assert b[at["sharpness"]] < a[at["sharpness"]] / 2 and b[at["quality"]] < a[at["quality"]]
    assert a[at["quality"]] > 0.8, "a sharp, frontal, large studio portrait is a good one"


def test_a_side_on_face_scores_lower_than_a_frontal_one(sface_engine, photos):
    side_on = quality_of(sface_engine, read_image(photos / "camera.png"))  # the cameraman, seen from the side
    front = quality_of(sface_engine, read_image(photos / "astronaut.png"))
    at = COLUMNS.index("frontal")
    assert side_on[at] < 0.2 < 0.6 < front[at]
    assert side_on[0] < front[0]


def test_frontal_reads_turn_and_tilt_from_the_landmarks():
    face = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], float)
    assert frontal(face) == pytest.approx(1.0)
    turned = face.copy()
    turned[2, 0] = 56  # the nose 15% of the eye distance toward one eye: half of PROFILE_YAW
    assert frontal(turned) == pytest.approx(0.5)
    assert frontal(face[[1, 0, 2, 4, 3]]) == pytest.approx(1.0), "eyes in either order"
    angle = np.radians(22.5)
    tilt = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    assert frontal(face @ tilt.T) == pytest.approx(0.5)


def near_tie_oracle(scores: np.ndarray, quality: np.ndarray, epsilon: float) -> list[int]:
    """Vectorised restatement: at each step, among the remaining candidates within epsilon of the best
    remaining score, the highest quality (then the higher score, then the earlier position)."""
    remaining = np.ones(len(scores), bool)
    order = []
    for _ in range(len(scores)):
        near = remaining & (scores >= scores[remaining].max() - epsilon)
        key = np.lexsort((np.arange(len(scores)), -scores, -np.where(near, quality, -np.inf)))
        order.append(int(key[0]))
        remaining[key[0]] = False
    return order


def test_near_tie_order_matches_a_numpy_oracle():
    rng = np.random.default_rng(5)
    for _ in range(300):
        n = int(rng.integers(1, 40))
        scores = np.round(rng.uniform(0.2, 0.5, n), 3)  # rounded: exact ties happen too
        quality = np.round(rng.uniform(0, 1, n), 1)
        assert near_tie_order(scores, quality, 0.01).tolist() == near_tie_oracle(scores, quality, 0.01)


def test_the_fair_policy_prefers_the_better_portrait_only_in_a_near_tie():
    # after the closest person (z), shown whatever their portrait, a near-tie of a and b
    scores, hub, persons = np.array([0.70, 0.600, 0.595, 0.55]), np.zeros(4), ["z", "a", "b", "c"]
    blurry_first = np.array([0.0, 0.1, 0.9, 0.9])
    plain = FairPolicy(0.0)
    assert [p.position for p in plain.pick(scores, persons, hub, 4)] == [0, 1, 2, 3]
    assert [p.position for p in plain.pick(scores, persons, hub, 4, quality=blurry_first)] == [0, 2, 1, 3]
    assert [p.position for p in plain.pick(np.array([0.70, 0.62, 0.595, 0.55]), persons, hub, 4,
                                           quality=blurry_first)] == [0, 1, 2, 3], "0.025 apart is no tie"
    assert [p.position for p in plain.pick(scores[1:], persons[1:], hub[1:], 3, quality=blurry_first[1:])] == \
        [0, 1, 2], "the closest person is shown first whatever their portrait"
    # each person once: the person's sharper photo of a near-tie stands for them (the closest's is its closest)
    picks = plain.pick(np.array([0.70, 0.60, 0.599, 0.5]), ["z", "a", "a", "b"], np.zeros(4), 3,
                       quality=np.array([0.1, 0.2, 0.8, 0.5]))
    assert [p.position for p in picks] == [0, 2, 3]


PEOPLE = SMALL_GALLERY


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("quality") / "corpus"
    copy_lfw_people(folder, PEOPLE)
    return folder


def publish(corpus: Path, out: Path, **options) -> dict:
    return build(BuildOptions(corpus=corpus, out=out, workers=1, progress=False, **options))


def test_the_build_stores_each_faces_quality_and_min_quality_leaves_faces_out(corpus, tmp_path, sface_engine):
    out = tmp_path / "gallery"
    report = publish(corpus, out)
    gallery = Gallery(out, use_gpu=False)
    assert gallery.manifest.files.quality == QUALITY_FILE and report["faces_below_min_quality"] == 0
    quality = gallery.quality
    assert quality is not None and quality.shape == (8, 4) and ((quality >= 0) & (quality <= 1)).all()
    face = gallery.faces([0])[0]
    image = read_image(face.image)
    found = sface_engine.detect(image)
    np.testing.assert_allclose(quality[0], face_quality(portrait_crop(image, found.boxes[0]), found.boxes[0],
                                                        found.landmarks[0]), atol=1e-5)
    threshold = float(np.median(quality[:, 0]))
    again = publish(corpus, out, min_quality=threshold)  # no --fresh: the state kept every face's quality
    kept = Gallery(out, use_gpu=False)
    below = int((quality[:, 0] < threshold).sum())
    assert again["faces_embedded_this_run"] == 0 and again["faces_below_min_quality"] == below
    assert kept.count == 8 - again["faces_below_min_quality"] and (kept.quality[:, 0] >= threshold).all()
    kept_images = {face.image for face in kept.faces(list(range(kept.count)))}
    assert kept_images == {face.image for face, q in zip(gallery.faces(list(range(8))), quality[:, 0], strict=True)
                           if q >= threshold}
    with pytest.raises(BuildError, match="below --min-quality"):
        publish(corpus, out, min_quality=1.0)


def test_an_incremental_build_keeps_the_quality_of_faces_embedded_before(galleries: Galleries, tmp_path):
    grown, out = galleries.copy(PEOPLE, tmp_path)
    first = Gallery(out, use_gpu=False)
    before = {face.image: q for face, q in zip(first.faces(list(range(8))), first.quality, strict=True)}
    copy_lfw_people(grown, {"Hugo_Chavez": 2})
    report = publish(grown, out)
    gallery = Gallery(out, use_gpu=False)
    assert report["faces_embedded_this_run"] == 2 and gallery.count == 10
    after = {face.image: q for face, q in zip(gallery.faces(list(range(10))), gallery.quality, strict=True)}
    for name, q in before.items():
        np.testing.assert_array_equal(after[name], q)


@pytest.mark.parametrize("value", ["1.5", "-0.1", "sharp"])
def test_min_quality_outside_0_to_1_is_one_clear_error(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        builder_main(["build", str(tmp_path), "--out", str(tmp_path / "g"), "--min-quality", value])
    assert exit_.value.code == 2 and "argument --min-quality: must be" in capsys.readouterr().err


def test_a_damaged_quality_file_is_one_line_and_a_missing_one_only_skips_tie_breaks(galleries: Galleries, tmp_path):
    _, out = galleries.copy(PEOPLE, tmp_path)
    root = out.resolve()
    np.save(root / QUALITY_FILE, np.zeros((3, 4), np.float32))
    with pytest.raises(GalleryError, match=f"{QUALITY_FILE} is damaged"):
        Gallery(out)
    (root / QUALITY_FILE).unlink()
    manifest = json.loads((root / "manifest.json").read_text())
    del manifest["files"]["quality"]  # as an older builder wrote it
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert Gallery(out).quality is None
