"""The worker's side of the booth: duo searches, captures that reuse the live view's analysis,
portraits prepared at display size, and the attract loop's gallery faces. Real models, a real
gallery built from LFW photos."""
from __future__ import annotations

import shutil
from concurrent.futures import wait
from pathlib import Path

import numpy as np
import pytest

from conftest import copy_lfw_people, search
from face_engine.fairness import policy_named
from face_engine.gallery import PORTRAIT_MARGIN, Gallery
from face_engine.imaging import read_image
from index_builder.build import build
from index_builder.options import BuildOptions
from kiosk.attract_faces import AttractSet, attract_set
from kiosk.ledger import Ledger
from kiosk.worker import BYSTANDER_SHARE, InferenceWorker, _taken_in, visitor_square

PEOPLE = {"Tony_Blair": 3, "Colin_Powell": 3, "Zico": 2, "Hugo_Chavez": 2, "Gerhard_Schroeder": 2}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("duo")
    copy_lfw_people(root / "corpus", PEOPLE)
    build(BuildOptions(corpus=root / "corpus", out=root / "gallery", workers=1, progress=False))
    return root / "corpus", root / "gallery"


@pytest.fixture
def worker(built, tmp_path) -> InferenceWorker:
    worker = InferenceWorker(str(built[1]), "", "cpu", ledger=Ledger(tmp_path / "ledger.json"))
    sets: list[AttractSet] = []
    worker.attract.connect(sets.append)
    worker.start_up()
    assert worker.gallery is not None and len(sets) == 1, "the attract set comes with start-up"
    worker.first_attract = sets[0]  # type: ignore[attr-defined]
    return worker


def side_by_side(*photos: Path) -> np.ndarray:
    """Two visitors of the same face size in one frame (LFW photos are all 250 x 250)."""
    return np.ascontiguousarray(np.hstack([read_image(photo) for photo in photos]))


def photo_of(corpus: Path, person: str) -> Path:
    return min((corpus / person).iterdir())


def test_two_visitors_get_two_pairs_that_never_share_a_person(worker, built):
    corpus, _ = built
    frame = side_by_side(photo_of(corpus, "Colin_Powell"), photo_of(corpus, "Zico"))
    outcome = search(worker, frame)
    assert outcome.faces >= 2 and len(outcome.pairs) == 2 and outcome.failure == ""  # LFW has faces behind too
    names = [[match.name for match in pair.matches] for pair in outcome.pairs]
    assert {names[0][0], names[1][0]} == {"Colin Powell", "Zico"}, "each visitor's own photo is their best match"
    assert names[0][0] != names[1][0], "no gallery person is shown to both"
    assert [len(n) for n in names] == [1, 1], "a duo sees each best lookalike only: no more is kept or counted"
    left, right = (pair.visitor for pair in outcome.pairs)
    assert left.shape == right.shape == (worker.display_side, worker.display_side, 3)


def test_a_small_face_beside_the_visitor_is_a_passer_by(worker, built):
    corpus, _ = built
    small = read_image(photo_of(corpus, "Zico"))[::2, ::2]  # half the face height: below SECOND_FACE
    big = read_image(photo_of(corpus, "Colin_Powell"))
    frame = np.zeros((250, 375, 3), np.uint8)
    frame[:, :250], frame[:125, 250:] = big, small
    outcome = search(worker, frame)
    assert outcome.faces == 2 and len(outcome.pairs) == 1 and outcome.pairs[0].matches[0].name == "Colin Powell"


def test_failures_tell_the_truth(worker, built):
    no_face = search(worker, np.full((480, 640, 3), 90, np.uint8))
    assert no_face.pairs == [] and no_face.failure == "fail_no_face"
    for match in worker.gallery.faces(list(range(worker.gallery.count))):
        Path(match.portrait).rename(match.portrait + ".gone")
    try:
        lost = search(worker, read_image(photo_of(built[0], "Zico")))
    finally:
        for match in worker.gallery.faces(list(range(worker.gallery.count))):
            Path(match.portrait + ".gone").rename(match.portrait)
    assert lost.faces == 1 and lost.failure == "fail_no_match"


def test_a_capture_of_the_analysed_frame_is_not_searched_for_faces_again(worker, built, monkeypatch):
    frame = read_image(photo_of(built[0], "Colin_Powell"))
    fresh = search(worker, frame.copy())
    worker.analyse(frame)
    detections = []
    monkeypatch.setattr(worker.engine, "detect", lambda image: detections.append(image))
    reused = search(worker, frame)
    assert detections == [] and reused.timings_ms["detect"] == 0.0
    assert [m.name for m in reused.pairs[0].matches] == [m.name for m in fresh.pairs[0].matches]
    np.testing.assert_array_equal(reused.pairs[0].visitor, fresh.pairs[0].visitor)
    worker.between_visitors()  # the visitor has gone: their frame is not kept, even in memory
    assert worker._analysed is None


def test_portraits_come_at_the_display_size(worker, built):
    worker.display_side = 300
    outcome = search(worker, read_image(photo_of(built[0], "Hugo_Chavez")))
    pictures = [outcome.pairs[0].visitor] + [match.portrait for match in outcome.pairs[0].matches]
    assert all(picture.shape == (300, 300, 3) and picture.dtype == np.uint8 for picture in pictures)


def test_the_attract_set_shows_the_least_shown_faces_first_and_pairs_of_different_people(built):
    gallery = Gallery(built[1], use_gpu=False)
    keys = gallery.content_keys()
    shown = {key: 100 + i for i, key in enumerate(keys[:6])}  # the first six were shown a lot
    counts = [shown.get(key, 0) for key in keys]
    names = {face.id: face.identity for face in gallery.faces(list(range(gallery.count)))}
    portraits = {face.id: read_image(face.portrait) for face in gallery.faces(list(range(gallery.count)))}
    chosen = attract_set(gallery, lambda ks: [shown.get(k, 0) for k in ks], np.random.default_rng(1), faces=3, pairs=3)
    ids = [next(i for i, p in portraits.items() if np.array_equal(p, face)) for face in chosen.faces]
    assert len(ids) == 3 and all(i >= 6 for i in ids), "never shown before: first"
    everyone = attract_set(gallery, lambda ks: [shown.get(k, 0) for k in ks], np.random.default_rng(1), faces=50)
    ranks = [next(i for i, p in portraits.items() if np.array_equal(p, face)) for face in everyone.faces]
    assert sorted(names[i] for i in ranks) == sorted(PEOPLE), "each person once on the screen"
    assert all(counts[i] == min(c for j, c in enumerate(counts) if names[j] == names[i]) for i in ranks)
    assert [counts[i] for i in ranks] == sorted(counts[i] for i in ranks), "the most shown last, in order"
    assert 1 <= len(chosen.pairs) <= 3
    people = []
    for first, second, line in chosen.pairs:
        a, b = (next(i for i, p in portraits.items() if np.array_equal(p, face)) for face in (first, second))
        assert names[a] != names[b] and line == f"{names[a].replace('_', ' ')} · {names[b].replace('_', ' ')}"
        people += [names[a], names[b]]
    assert len(people) == len(set(people)), "no person in two pairs"


def test_a_swapped_gallery_brings_a_new_attract_set(worker, built):
    sets: list[AttractSet] = []
    worker.attract.connect(sets.append)
    worker.offer_gallery(Gallery(built[1], use_gpu=False))
    worker.between_visitors()
    assert len(sets) == 1 and len(sets[0].faces) == len(PEOPLE)  # each person once


def test_a_face_cut_by_the_frame_edge_is_no_second_visitor(worker, built):
    frame = read_image(min((built[0] / "Tony_Blair").iterdir()))  # Tony_Blair_0001: half a face at the left edge
    assert len(worker.engine.detect(frame).boxes) == 2
    outcome = search(worker, frame)
    assert len(outcome.pairs) == 1 and len(outcome.pairs[0].matches) == len(PEOPLE)


def test_the_attract_set_reads_a_sample_never_the_whole_gallery(built, monkeypatch):
    """What keeps it cheap at 10^6 faces: the rows read are bounded by SAMPLE, whatever the gallery's size."""
    import kiosk.attract_faces as attract_faces

    gallery = Gallery(built[1], use_gpu=False)
    monkeypatch.setattr(attract_faces, "SAMPLE", 5)
    asked: list[int] = []
    people, faces = gallery.people, gallery.faces
    monkeypatch.setattr(gallery, "people", lambda ids: asked.append(len(ids)) or people(ids))
    monkeypatch.setattr(gallery, "faces", lambda ids: asked.append(len(ids)) or faces(ids))
    chosen = attract_set(gallery, None, np.random.default_rng(2), faces=3, pairs=1)
    assert len(chosen.faces) == 3 and len(chosen.pairs) <= 1
    assert asked[0] == 5 and max(asked) <= 5 * (1 + attract_faces.NEIGHBOURS + 1), "the sample and its neighbours only"


def test_visitors_take_turns_and_one_visitors_list_keeps_its_repeats():
    from face_engine.gallery import face_record
    from face_engine.query import Lookalike, take_turns

    def found(*people: str) -> list[Lookalike]:
        return [Lookalike(0.9 - i / 100, face_record(hash(name) % 1000 + i, image="", identity=name, display_name=name,
                                                    caption="", source="", x1=0, y1=0, x2=1, y2=1, score=1.0), 0.0,
                          50)
                for i, name in enumerate(people)]

    def names(lists: list[list[Lookalike]]) -> list[list[str]]:
        return [[match.face.identity for match in mine] for mine in lists]

    assert names(take_turns([found("a", "a", "b")], 3)) == [["a", "a", "b"]], "alone, a visitor sees every photo"
    both = take_turns([found("a", "b", "c", "d"), found("a", "b", "e", "f")], 2)
    assert names(both) == [["a", "c"], ["b", "e"]], "in turn: the first takes a, the second its best left"


def test_a_lookalike_whose_portrait_is_unusable_is_replaced_by_the_next_not_dropped(built, tmp_path):
    copy = Path(shutil.copytree(built[1].resolve(), tmp_path / "gallery"))
    frame = read_image(photo_of(built[0], "Colin_Powell"))
    worker = InferenceWorker(str(copy), "", "cpu")
    worker.start_up()
    before = search(worker, frame).pairs[0].matches
    assert len(before) == len(PEOPLE)
    gallery = Gallery(copy, use_gpu=False)
    faces = {face.image: face for face in gallery.faces(list(range(gallery.count)))}
    broken = [faces[match.image] for match in before[:2]]  # the best two: Colin Powell and the next person
    for face in broken:
        Path(face.portrait).write_bytes(b"not a jpeg")
    worker.portraits.clear()  # the pictures decoded before the damage are kept, and would be shown whole
    after = search(worker, frame).pairs[0].matches
    assert len(after) == len(PEOPLE), "as many people as before"
    assert not {face.image for face in broken} & {match.image for match in after}, "never a broken portrait"
    assert {match.name for match in after} == {match.name for match in before}, "each replaced by their next photo"
    assert [match.score for match in after] == sorted((match.score for match in after), reverse=True)


def test_what_a_visitor_sees_is_in_score_order_with_its_likeness(worker, built):
    outcome = search(worker, read_image(photo_of(built[0], "Tony_Blair")))
    matches = outcome.pairs[0].matches
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True), "best first"
    assert [m.likeness for m in matches] == sorted((m.likeness for m in matches), reverse=True)
    assert all(m.likeness == worker.gallery.calibration.likeness(m.score) for m in matches)


def test_the_visitors_crop_is_their_own_face_not_a_bystanders():
    alone = np.array([[300, 200, 400, 320]], np.float32)
    x, y, side = visitor_square((720, 1280, 3), alone, 0)
    assert side == round(120 * PORTRAIT_MARGIN), "alone, the visitor is framed as the gallery's portraits are"
    beside = np.vstack([alone, [[430, 210, 530, 330]]]).astype(np.float32)  # a bystander's face close by
    x, y, side = visitor_square((720, 1280, 3), beside, 0)
    assert side < round(120 * PORTRAIT_MARGIN) and x <= 300 and x + side >= 400 and y <= 200 and y + side >= 320
    assert _taken_in(beside[1:], x, y, side) <= BYSTANDER_SHARE, "at most a sliver of the bystander's face"
    x, y, side = visitor_square((480, 640, 3), np.array([[560, 380, 640, 480]], np.float32), 0)
    assert 0 <= x and x + side <= 640 and 0 <= y and y + side <= 480, "inside the frame, never padded"


def test_each_visitor_of_a_duo_gets_their_own_crop_and_its_camera_pixels(worker, built):
    corpus, _ = built
    frame = side_by_side(photo_of(corpus, "Colin_Powell"), photo_of(corpus, "Zico"))
    found = worker.engine.detect(frame)
    outcome = search(worker, frame)
    for face, pair in enumerate(outcome.pairs):
        x, y, side = visitor_square(frame.shape, found.boxes, face)
        assert pair.source_side == side > 0
        assert _taken_in(np.delete(found.boxes, face, axis=0), x, y, side) <= BYSTANDER_SHARE


def test_portraits_decoded_once_are_kept_for_the_next_capture_and_dropped_at_a_swap(worker, built, monkeypatch):
    import kiosk.worker

    frame = read_image(photo_of(built[0], "Gerhard_Schroeder"))
    first = search(worker, frame)
    decoded: list[str] = []
    read = kiosk.worker.read_picture
    monkeypatch.setattr(kiosk.worker, "read_picture", lambda path: decoded.append(path) or read(path))
    again = search(worker, frame)
    assert decoded == [], "a retry's portraits are ready"
    for before, after in zip(first.pairs[0].matches, again.pairs[0].matches, strict=True):
        np.testing.assert_array_equal(before.portrait, after.portrait)
    worker.offer_gallery(Gallery(built[1], use_gpu=False))
    worker.between_visitors()
    search(worker, frame)
    assert len(decoded) == len(first.pairs[0].matches), "a new gallery's faces are decoded afresh"


def test_a_visitor_standing_still_has_their_lookalikes_portraits_decoded_before_the_capture(worker, built,
                                                                                             monkeypatch):
    import kiosk.worker

    frame = read_image(photo_of(built[0], "Hugo_Chavez"))
    worker.analyse(frame)
    assert not worker.portraits._kept, "not before the visitor stands still"
    worker.analyse(frame)  # near, and still since the last frame: the portraits are decoded ahead
    assert worker.portraits._kept, "decoding began"
    wait(worker.portraits._kept.values())
    decoded: list[str] = []
    read = kiosk.worker.read_picture
    monkeypatch.setattr(kiosk.worker, "read_picture", lambda path: decoded.append(path) or read(path))
    outcome = search(worker, frame)
    assert outcome.pairs and decoded == [], "the capture found every portrait ready"


def test_a_retrys_portraits_are_decoded_while_the_results_are_on_screen(built, tmp_path, monkeypatch):
    import kiosk.worker

    worker = InferenceWorker(str(built[1]), "", "cpu", policy_named("fair", None), Ledger(tmp_path / "ledger.json"))
    worker.start_up()
    frame = read_image(photo_of(built[0], "Tony_Blair"))
    search(worker, frame)
    worker._foresee_retry()  # the worker's timer calls it once the results are drawn
    wait(worker.portraits._kept.values())
    decoded: list[str] = []
    read = kiosk.worker.read_picture
    monkeypatch.setattr(kiosk.worker, "read_picture", lambda path: decoded.append(path) or read(path))
    again = search(worker, frame)  # the ledger counts the first visit's showings: the fair policy may choose others
    assert again.pairs and decoded == [], "the retry found every portrait ready"
    worker.between_visitors()
    assert worker._retry_query is None, "the visitor's embedding is not kept after they leave"


def test_a_capture_of_a_still_visitors_frame_is_not_embedded_again(worker, built, monkeypatch):
    frame = read_image(photo_of(built[0], "Zico"))
    fresh = search(worker, frame.copy())
    worker.analyse(frame)
    worker.analyse(frame)  # near and still: embedded as it was analysed
    embedded: list[np.ndarray] = []
    monkeypatch.setattr(worker.engine.recognizer, "embed", lambda crops: embedded.append(crops))
    reused = search(worker, frame)
    assert embedded == [] and reused.timings_ms["embed"] == 0.0
    assert [m.name for m in reused.pairs[0].matches] == [m.name for m in fresh.pairs[0].matches]
    worker.between_visitors()
    assert worker._analysed is None, "the visitor's embedding goes with them"
