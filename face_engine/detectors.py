"""Face detectors: an image in, boxes, scores and the 5 landmarks ArcFace-style alignment needs.

Both take an 8-bit BGR image scaled so its longer side is 640 pixels: YuNet on the photo's own shape
(its graph's input size is freed at load, face_engine.graphs.make_size_free), SCRFD letterboxed into
640x640 by insightface; both run on a session made by face_engine.providers, never on one they
create themselves.
"""
from __future__ import annotations

from typing import NamedTuple, Protocol

import cv2
import numpy as np

from face_engine.providers import Session

INPUT_SIZE = 640
NMS_THRESHOLD = 0.4
LARGEST_STRIDE = 32  # a detector input's sides are multiples of its coarsest feature map's stride


class Detections(NamedTuple):
    """n faces, largest box first: boxes (n,4) x1,y1,x2,y2; scores (n,); landmarks (n,5,2)."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def take(self, idx: slice | np.ndarray) -> Detections:
        """The faces at `idx` (a slice or an index array), in that order."""
        return Detections(self.boxes[idx], self.scores[idx], self.landmarks[idx])

    @staticmethod
    def largest_first(boxes: np.ndarray, scores: np.ndarray, landmarks: np.ndarray) -> Detections:
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        order = np.argsort(-areas, kind="stable")
        return Detections(
            boxes[order].astype(np.float32),
            scores[order].astype(np.float32),
            landmarks[order].reshape(-1, 5, 2).astype(np.float32),
        )


class Detector(Protocol):
    def detect(self, image: np.ndarray) -> Detections: ...


def letterbox(image: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, float]:
    """The image scaled so its longer side is `size`, at the top-left of a canvas whose sides are
    the next multiples of LARGEST_STRIDE (640x384 for a 720p frame, not 640x640: detection costs
    what the canvas holds), and the scale used."""
    height, width = image.shape[:2]
    scale = size / max(height, width)
    # Area averaging matters only where more than two source pixels fall on one: down to half size,
    # linear sampling reads them all anyway, at 0.5 ms against 6 ms for a 1137x910 camera frame.
    resized = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                         interpolation=cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR)
    rows, columns = (-(-side // LARGEST_STRIDE) * LARGEST_STRIDE for side in resized.shape[:2])
    canvas = np.zeros((rows, columns, 3), np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return canvas, scale


class YuNetDetector:
    """OpenCV Zoo YuNet (2023mar): BGR 0..255 input, anchor-free heads at strides 8, 16 and 32."""

    STRIDES = (8, 16, 32)

    def __init__(self, session: Session, score_threshold: float = 0.6) -> None:
        self.session = session
        self.score_threshold = score_threshold
        self.input_name = session.get_inputs()[0].name
        self.output_names = [output.name for output in session.get_outputs()]

    def detect(self, image: np.ndarray) -> Detections:
        canvas, scale = letterbox(image)
        blob = canvas.transpose(2, 0, 1)[None].astype(np.float32)
        found = self.session.run(self.output_names, {self.input_name: blob})
        outputs = dict(zip(self.output_names, found, strict=True))
        boxes, scores, landmarks = [], [], []
        for stride in self.STRIDES:
            across = canvas.shape[1] // stride
            rows, cols = np.divmod(np.arange(canvas.shape[0] // stride * across), across)
            anchor = np.stack([cols, rows], axis=1).astype(np.float32)
            cls = np.clip(outputs[f"cls_{stride}"].reshape(-1), 0, 1)
            obj = np.clip(outputs[f"obj_{stride}"].reshape(-1), 0, 1)
            score = np.sqrt(cls * obj)
            keep = score >= self.score_threshold
            if not keep.any():
                continue
            bbox = outputs[f"bbox_{stride}"].reshape(-1, 4)[keep]
            kps = outputs[f"kps_{stride}"].reshape(-1, 5, 2)[keep]
            centre = (anchor[keep] + bbox[:, :2]) * stride
            size = np.exp(bbox[:, 2:]) * stride
            boxes.append(np.hstack([centre - size / 2, centre + size / 2]))
            landmarks.append((kps + anchor[keep][:, None, :]) * stride)
            scores.append(score[keep])
        if not boxes:
            return _no_faces()
        return _nms(np.vstack(boxes) / scale, np.concatenate(scores), np.vstack(landmarks) / scale)


class ScrfdDetector:
    """insightface SCRFD (any size, with 5 keypoints), through insightface's own decoding."""

    def __init__(self, session: Session, score_threshold: float = 0.5) -> None:
        from insightface.model_zoo.scrfd import SCRFD

        # model_file=None keeps insightface from opening sessions of its own for other input sizes.
        self.model = SCRFD(model_file=None, session=session)
        self.model.det_thresh = score_threshold
        self.model.nms_thresh = NMS_THRESHOLD
        if not self.model.use_kps:
            raise ValueError("this SCRFD model has no landmark outputs; alignment needs the 5 keypoints")

    def detect(self, image: np.ndarray) -> Detections:
        dets, kpss = self.model.detect(image, input_size=(INPUT_SIZE, INPUT_SIZE))
        if len(dets) == 0:
            return _no_faces()
        return Detections.largest_first(dets[:, :4], dets[:, 4], kpss)


def _nms(boxes: np.ndarray, scores: np.ndarray, landmarks: np.ndarray) -> Detections:
    xywh = np.hstack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])
    keep = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), 0.0, NMS_THRESHOLD), dtype=int).reshape(-1)
    return Detections.largest_first(boxes[keep], scores[keep], landmarks[keep])


def _no_faces() -> Detections:
    return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
