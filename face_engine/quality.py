"""Portrait quality: how well a gallery face will look enlarged on the results screen.

Measured once per face at build time from what the detector gives (box and 5 landmarks) and the
portrait crop the results screen shows; stored in the gallery (face_engine.gallery, QUALITY_FILE).
At query time it only breaks near-ties: a visitor is never shown a worse lookalike for a sharper
one, but of two nearly equal ones, the sharp frontal face wins over the blurry side profile.
"""
from __future__ import annotations

import cv2
import numpy as np

# The parts, in the order of the stored array's columns after the overall score (column 0).
PARTS = ("sharpness", "frontal", "size")
COLUMNS = ("quality", *PARTS)
# Laplacian variance (8-bit gray, at the portrait's size) at which sharpness is 0.5. Measured: sharp
# close-ups 200-500, LFW's 250-px photos (enlarged about 2.5 times in the portrait) 5-25, the same
# after a 3-px Gaussian blur under 3.
SHARPNESS_HALF = 25.0
# A face of this height (pixels in the photo) fills the results screen's 456-px portrait without
# upscaling (the portrait spans 1.6 face boxes).
FULL_SIZE_FACE = 456 / 1.6
# Turn at which the frontal score reaches 0: the nose a third of the way from the eyes' midpoint
# to one eye is a three-quarter view; at the eye, a profile.
PROFILE_YAW = 0.6
LEVEL_ROLL_DEGREES = 45.0  # the eye line tilted this much scores 0 for roll
TIE_EPSILON = 0.01  # ranking scores this close are a near-tie, broken by quality


def sharpness(portrait: np.ndarray) -> float:
    """0..1 from the variance of the Laplacian of the portrait's central face area (the
    background, often blurred on purpose, is left out)."""
    side = portrait.shape[0]
    inner = portrait[side // 5: side - side // 5, side // 5: side - side // 5]
    gray = cv2.cvtColor(inner, cv2.COLOR_BGR2GRAY) if inner.ndim == 3 else inner
    variance = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    return variance / (variance + SHARPNESS_HALF)


def frontal(landmarks: np.ndarray) -> float:
    """0..1 from the 5 landmarks (eyes, nose, mouth corners): 1 when the nose sits midway between
    the eyes along a level eye line, 0 for a profile or an eye line tilted 45 degrees."""
    left_eye, right_eye, nose = (np.asarray(point, np.float64) for point in landmarks[:3])
    eye_line = right_eye - left_eye
    eye_distance = float(np.hypot(*eye_line))
    if eye_distance < 1e-6:  # both eyes on one point: a full profile
        return 0.0
    along = float(np.dot(nose - left_eye, eye_line)) / eye_distance**2  # 0 at the left eye, 1 at the right
    yaw = abs(along - 0.5) * 2  # 0 frontal, 1 with the nose in line with one eye
    roll = abs(np.degrees(np.arctan2(eye_line[1], eye_line[0])))
    roll = min(roll, 180 - roll)  # the eyes may come in either order
    return float(max(0.0, 1 - yaw / PROFILE_YAW) * max(0.0, 1 - roll / LEVEL_ROLL_DEGREES))


def size(box: np.ndarray) -> float:
    """0..1: the face's height against the height that fills the big portrait without upscaling."""
    return float(min(1.0, max(0.0, float(box[3] - box[1])) / FULL_SIZE_FACE))


def face_quality(portrait: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(4,) float32: the overall quality, then each of PARTS. The overall score is their geometric
    mean, so one bad part (a profile, a blur) is enough to make a poor portrait."""
    parts = np.array([sharpness(portrait), frontal(landmarks), size(box)], np.float64)
    overall = float(np.prod(parts) ** (1 / len(parts)))
    return np.array([overall, *parts], np.float32)


def near_tie_order(scores: np.ndarray, quality: np.ndarray, epsilon: float = TIE_EPSILON) -> np.ndarray:
    """Positions of `scores` best first, except that each place goes to the highest-quality
    candidate among those left whose score is within `epsilon` of the best score left (of equal
    quality, the better score)."""
    scores = np.asarray(scores, np.float64)
    left = [int(p) for p in np.argsort(-scores, kind="stable")]
    order: list[int] = []
    while left:
        top = scores[left[0]]
        near = [p for p in left if scores[p] >= top - epsilon]
        chosen = max(near, key=lambda p: quality[p])  # max() keeps the first (best score) of equals
        left.remove(chosen)
        order.append(chosen)
    return np.array(order, dtype=np.int64)
