"""The attract loop's lookalike pairs (issue 20, item 2): mined by the build from the whole gallery
(index_builder.pairs), stored in it, shown by the kiosk the least shown first, and never holding a
forgotten or hidden person. Seeded face-like vectors for the rule, real LFW galleries for the rest."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import SMALL_GALLERY
from face_engine.fairness import person_numbers
from face_engine.gallery import Gallery
from face_engine.likeness import pack_calibration
from face_engine.withheld import HideList, write_hide_list
from index_builder.cli import main
from index_builder.pairs import TOP_SHARE, mine_pairs, same_person_cosine
from index_builder.publish import gallery_home
from models.catalogue import LFW_LIKENESS
from test_indexes import face_like

SAME = 0.5  # the same-person score of these tests' vectors (their people's own faces are ~0.9 alike)


def rated(count: int, rng: np.random.Generator) -> np.ndarray:
    """Quality rows (face_engine.quality.COLUMNS) of random portraits."""
    quality = rng.uniform(0.2, 1.0, (count, 4)).astype(np.float32)
    quality[:, 0] = rng.uniform(0.2, 1.0, count)
    return quality


def test_pairs_are_alike_strangers_of_good_portraits_below_the_same_person_score_each_once():
    rng = np.random.default_rng(3)
    xb, identities = face_like(3000, people=400, seed=3)
    persons, quality = person_numbers(identities), rated(len(xb), rng)
    pairs = mine_pairs(xb, persons, quality, SAME, np.random.default_rng(0))
    scores = np.einsum("ij,ij->i", xb[pairs[:, 0]], xb[pairs[:, 1]])
    assert len(pairs) >= 20
    assert (persons[pairs[:, 0]] != persons[pairs[:, 1]]).all() and (scores < SAME).all()
    assert len(set(persons[pairs.ravel()].tolist())) == pairs.size  # each person in one pair at most
    assert (quality[pairs, 0] >= np.median(quality[:, 0])).all() and (quality[pairs, 2] >= 0.5).all()
    assert (np.diff(scores) <= 1e-6).all()  # the most alike first
    everyone = xb @ xb.T
    cross = everyone[persons[:, None] != persons[None, :]]
    assert scores.min() >= np.quantile(cross, 1 - TOP_SHARE) - 0.01  # within the top 1% of cross-person pairs
    assert scores.max() > np.quantile(cross[cross < SAME], 1 - TOP_SHARE / 10)  # likeness first: the best are far above


def beside(direction: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at `cosine` from the unit vector `direction`, otherwise random."""
    away = rng.standard_normal(len(direction))
    away -= (away @ direction) * direction
    return (cosine * direction + np.sqrt(1 - cosine**2) * away / np.linalg.norm(away)).astype(np.float32)


def mined_with(xb: np.ndarray, persons: np.ndarray, extra: list[np.ndarray], people: list[int], best: int,
               rng: np.random.Generator, same: float = SAME) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of the gallery `xb` plus the faces `extra` of `people` (the face `best` of them,
    an index into `extra`, rated its person's best portrait), and the gallery's vectors."""
    xb = np.vstack([xb, *extra])
    quality = rated(len(xb), rng)
    quality[len(xb) - len(extra) + best] = 1.0
    return mine_pairs(xb, np.r_[persons, people], quality, same, np.random.default_rng(0)), xb


def test_a_photo_nearer_another_persons_centre_than_its_own_makes_no_pair():
    rng = np.random.default_rng(4)
    xb, identities = face_like(1500, dim=128, people=200, seed=4)
    persons = person_numbers(identities)
    crowd = np.flatnonzero(persons == np.bincount(persons).argmax())  # LFW's Berlusconi: many photos
    centre = xb[crowd].sum(axis=0) / np.linalg.norm(xb[crowd].sum(axis=0))
    other = beside(centre, 0.45, rng)  # "Pat Cox": a photo of the other's, and his own
    own = rng.standard_normal(xb.shape[1])
    pairs, everyone = mined_with(xb, persons, [other, own / np.linalg.norm(own)], [-1, -1], 0, rng)
    scores = np.einsum("ij,ij->i", everyone[pairs[:, 0]], everyone[pairs[:, 1]])
    assert (xb[crowd] @ other).max() < SAME  # no single face gives it away: the centre does
    assert (xb[crowd] @ other).max() > np.median(scores)  # it would have been paired among the first
    assert len(xb) not in pairs


def test_a_single_photo_as_near_another_person_as_their_own_photos_makes_no_pair():
    rng = np.random.default_rng(55)  # not face_like's seed: her face is no one else's
    xb, identities = face_like(1500, dim=128, people=200, seed=5)
    persons = person_numbers(identities)
    direction = rng.standard_normal(xb.shape[1])
    direction /= np.linalg.norm(direction)
    loose = [beside(direction, 0.6, rng) for _ in range(3)]  # Roseanne Barr's three photos, unlike each other
    lane_bryant = beside(direction, 0.7, rng)  # one more of her, under another name
    same = 0.7  # above her nearness to the centre of the three: only their own spread gives her away
    pairs, everyone = mined_with(xb, persons, [*loose, lane_bryant], [-1, -1, -1, -2], 3, rng, same)
    scores = np.einsum("ij,ij->i", everyone[pairs[:, 0]], everyone[pairs[:, 1]])
    nearest = max(float(face @ lane_bryant) for face in loose)
    assert nearest > np.median(scores)  # alike enough to be paired among the first, but for the rule
    assert len(xb) + 3 not in pairs  # left out: it shows her, whatever name it has


def test_a_small_gallery_takes_its_best_pairs_and_the_same_person_score_is_the_likeness_98():
    xb, identities = face_like(120, people=12, seed=5)
    pairs = mine_pairs(xb, person_numbers(identities), np.ones((len(xb), 4), np.float32), 1.0,
                       np.random.default_rng(0))
    assert len(pairs) == 6  # twelve people, each in one pair
    table = pack_calibration("sface")
    assert same_person_cosine(table) == LFW_LIKENESS["sface"][-2] and table.likeness(same_person_cosine(table)) == 98


@pytest.fixture
def paired(galleries, tmp_path):
    """A copy of the shared small LFW gallery, and the names in the first pair its build mined."""
    _, out = galleries.copy(SMALL_GALLERY, tmp_path / "booth")
    gallery = Gallery(out, use_gpu=False)
    try:
        assert gallery.pairs is not None and len(gallery.pairs) >= 1, "the small gallery has no pair to test with"
        names = [face.identity for face in gallery.faces(gallery.pairs[0].tolist())]
    finally:
        gallery.close()
    return out, names


def test_hidden_and_forgotten_people_leave_the_pairs(paired):
    from kiosk.attract_faces import attract_set

    out, (first, second) = paired
    gallery = Gallery(out, use_gpu=False)
    shown = attract_set(gallery, None, np.random.default_rng(0), faces=20, pairs=3)
    assert any(first.replace("_", " ") in line for _, _, line in shown.pairs)
    write_hide_list(gallery_home(out), HideList(people=(first,)))
    hidden = attract_set(gallery, None, np.random.default_rng(0), faces=20, pairs=3)
    assert not any(first.replace("_", " ") in line for _, _, line in hidden.pairs)
    write_hide_list(gallery_home(out), HideList())
    gallery.close()

    assert main(["forget", str(out), second]) == 0
    after = Gallery(out, use_gpu=False)
    try:
        assert after.pairs is not None
        held = {face.identity for face in after.faces(sorted(set(after.pairs.ravel().tolist())))}
        assert second not in held and second not in {face.identity for face in after.faces(list(range(after.count)))}
    finally:
        after.close()


def test_the_kiosk_mosaic_shows_each_person_once_beside_the_stored_pairs(paired):
    from kiosk.attract_faces import attract_set

    out, _ = paired
    gallery = Gallery(out, use_gpu=False)
    try:
        assert gallery.pairs is not None
        shown = attract_set(gallery, None, np.random.default_rng(0), faces=48, pairs=6)
        assert len(shown.faces) == len(SMALL_GALLERY)  # the mosaic: each person once
        assert len(shown.pairs) == len(gallery.pairs)
    finally:
        gallery.close()
