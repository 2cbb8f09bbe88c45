"""The live view's judgement of a frame, on synthetic detections (no models): one visitor, a duo
of similar faces, or too many people."""
from __future__ import annotations

import numpy as np

from face_engine.detectors import Detections
from kiosk.hints import analyse, visitors

HEIGHT, WIDTH = 480, 640


def faces(*boxes: tuple[float, float, float, float]) -> Detections:
    """Frontal faces at these boxes (largest first), eyes and nose where a frontal face has them."""
    array = np.array(boxes, np.float32)
    landmarks = []
    for x1, y1, x2, y2 in array:
        w, h = x2 - x1, y2 - y1
        landmarks.append([[x1 + 0.3 * w, y1 + 0.4 * h], [x1 + 0.7 * w, y1 + 0.4 * h], [x1 + 0.5 * w, y1 + 0.6 * h],
                          [x1 + 0.35 * w, y1 + 0.8 * h], [x1 + 0.65 * w, y1 + 0.8 * h]])
    return Detections(array, np.ones(len(array), np.float32), np.array(landmarks, np.float32))


LIT = np.full((HEIGHT, WIDTH), 128, np.uint8)


def test_one_close_lit_frontal_face_is_ready_and_alone():
    analysis, _ = analyse(LIT, faces((250, 100, 370, 240)), None)
    assert analysis.ready and not analysis.duo and analysis.hint == "" and analysis.near


def test_two_close_faces_of_a_similar_size_are_a_duo():
    analysis, _ = analyse(LIT, faces((60, 100, 190, 240), (400, 110, 520, 240)), None)
    assert analysis.ready and analysis.duo and analysis.faces == 2 and analysis.hint == ""


def test_a_duo_with_one_far_face_is_asked_closer():
    analysis, _ = analyse(LIT, faces((60, 100, 190, 240), (400, 110, 480, 200)), None)
    assert not analysis.ready and not analysis.duo and analysis.hint == "hint_come_closer"


def test_a_small_face_far_behind_is_a_bystander():
    analysis, _ = analyse(LIT, faces((250, 100, 370, 240), (20, 20, 60, 60)), None)
    assert analysis.ready and not analysis.duo and analysis.faces == 2


def test_three_similar_faces_are_too_many():
    analysis, _ = analyse(LIT, faces((10, 100, 140, 240), (240, 100, 370, 240), (470, 100, 600, 240)), None)
    assert not analysis.ready and not analysis.duo and analysis.hint == "hint_one_person"


def test_a_dark_second_face_holds_the_duo_back():
    gray = LIT.copy()
    gray[110:240, 400:520] = 20
    analysis, _ = analyse(gray, faces((60, 100, 190, 240), (400, 110, 520, 240)), None)
    assert analysis.hint == "hint_too_dark" and not analysis.duo


def test_the_same_place_twice_is_steady():
    found = faces((250, 100, 370, 240))
    _, centre = analyse(LIT, found, None)
    analysis, _ = analyse(LIT, found, centre)
    assert analysis.steady


def test_a_big_face_cut_by_the_edge_is_a_passer_by_for_the_live_view_and_the_search():
    found = faces((250, 100, 370, 240), (560, 100, 640, 240))  # as tall as the visitor, but half out of the frame
    analysis, _ = analyse(LIT, found, None)
    assert analysis.ready and not analysis.duo and analysis.faces == 2
    assert visitors(found, LIT.shape) == 1


def test_a_second_visitor_wholly_in_the_frame_is_matched_too():
    assert visitors(faces((60, 100, 190, 240), (400, 110, 520, 240)), LIT.shape) == 2
