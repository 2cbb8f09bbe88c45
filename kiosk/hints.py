"""Judge a live frame as a capture: how many faces, how close, how lit, how frontal (no Qt).

One visitor, or two of a similar face size side by side (a duo: each gets a lookalike), can be
captured; a third face as big asks for fewer people in front of the camera. `visitors` says how
many faces of a frame are visitors, for the live view and the search alike.
"""
from __future__ import annotations

import numpy as np

from face_engine.detectors import Detections
from kiosk.messages import Analysis

NEAR = 0.16        # face height / frame height to count as someone at the kiosk
CLOSE = 0.22       # ... and close enough for a good capture
SECOND_FACE = 0.6  # another face at least this big (relative to the largest) is a second visitor
MOST_VISITORS = 2  # a duo at most
EDGE_MARGIN = 0.02  # of the frame's longer side: a visitor's face keeps this far from the edges
DARK = 55          # mean luminance (0..255) of the face below which it is too dark
STEADY = 0.03      # the face centre moved less than this share of the frame width
FRONTAL = (0.3, 0.7)  # where the nose sits between the eyes, as a share of the eye distance


def analyse(gray: np.ndarray, found: Detections,
            previous_centre: np.ndarray | None) -> tuple[Analysis, np.ndarray | None]:
    """An Analysis of one frame (grayscale), and the largest face's centre for the next frame."""
    if len(found.boxes) == 0:
        return Analysis(faces=0), None
    height, width = gray.shape[:2]
    x1, y1, x2, y2 = found.boxes[0]
    face_height = (y2 - y1) / height
    centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2]) / width
    steady = previous_centre is not None and float(np.linalg.norm(centre - previous_centre)) < STEADY
    count = visitors(found, gray.shape)
    others = sum(_also_a_visitor(found, gray.shape, face) for face in range(1, len(found.boxes)))
    if 1 + others > MOST_VISITORS:
        hint = "hint_one_person"
    else:
        hint = next((h for h in (face_hint(gray, found, face) for face in range(count)) if h), "")
    ready = hint == ""
    return Analysis(faces=len(found.boxes), near=bool(face_height >= NEAR), ready=ready, steady=steady, hint=hint,
                    duo=ready and count == MOST_VISITORS, face_y=float((y1 + y2) / 2 / height)), centre


def visitors(found: Detections, frame_shape: tuple[int, ...]) -> int:
    """How many of the faces found are visitors, the live view's and the search's one answer: the
    largest, and the next one when it is a visitor too (a duo). Smaller faces, and faces cut by the
    frame's edge, are passers-by."""
    if len(found.boxes) < 2:
        return len(found.boxes)
    return MOST_VISITORS if _also_a_visitor(found, frame_shape, 1) else 1


def _also_a_visitor(found: Detections, frame_shape: tuple[int, ...], face: int) -> bool:
    """Face number `face` is at least SECOND_FACE as tall as the largest and wholly in the frame."""
    height, width = frame_shape[:2]
    x1, y1, x2, y2 = found.boxes[face]
    margin = EDGE_MARGIN * max(height, width)  # a box that reaches the edge holds part of a face only
    inside = x1 >= margin and y1 >= margin and x2 <= width - margin and y2 <= height - margin
    largest = found.boxes[0, 3] - found.boxes[0, 1]
    return bool(inside and y2 - y1 >= SECOND_FACE * largest)


def face_hint(gray: np.ndarray, found: Detections, face: int) -> str:
    """What keeps face number `face` from a good capture, as an i18n key; "" when nothing does."""
    x1, y1, x2, y2 = found.boxes[face]
    left_eye, right_eye, nose = found.landmarks[face][:3]
    eye_span = right_eye[0] - left_eye[0]
    nose_at = (nose[0] - left_eye[0]) / eye_span if eye_span > 0 else 0.0
    region = gray[max(0, int(y1)):max(0, int(y2)), max(0, int(x1)):max(0, int(x2))]
    brightness = float(region.mean()) if region.size else 0.0
    if (y2 - y1) / gray.shape[0] < CLOSE:
        return "hint_come_closer"
    if brightness < DARK:
        return "hint_too_dark"
    if not FRONTAL[0] <= nose_at <= FRONTAL[1]:
        return "hint_face_camera"
    return ""
