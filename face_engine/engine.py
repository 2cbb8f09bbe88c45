"""The face engine shared by the builder and the kiosk: a photo in; its faces out, each with box,
5 landmarks, detection score and an L2-normalised embedding."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import onnx

from face_engine import graphs
from face_engine.detectors import Detections, Detector, ScrfdDetector, YuNetDetector
from face_engine.imaging import read_image
from face_engine.providers import create_session
from face_engine.recognizers import CROP_SIZE, Recognizer, align, probe_crops
from models.packs import ModelPack, PackError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Face:
    box: np.ndarray  # (4,) x1, y1, x2, y2 in image pixels
    score: float
    landmarks: np.ndarray  # (5, 2): eyes, nose, mouth corners
    embedding: np.ndarray  # (dim,) float32, L2-normalised

    def to_json(self) -> dict[str, Any]:
        return {
            "box": [round(float(v), 1) for v in self.box],
            "score": round(self.score, 4),
            "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks],
            "embedding": [round(float(v), 6) for v in self.embedding],
        }


class FaceDetector:
    """The pack's detector on one device, with the engine's one detection policy."""

    def __init__(self, pack: ModelPack, device: str = "auto", threads: int = 0, spin: bool = True) -> None:
        yunet = pack.detector_kind == "yunet"
        session = create_session(_load_graph(pack.detector_path, batch_dynamic=False, size_free=yunet), device,
                                 threads, spin)
        self.providers = list(session.get_providers())
        self.detector: Detector = YuNetDetector(session) if yunet else ScrfdDetector(session)

    def detect(self, image: np.ndarray) -> Detections:
        found = self.detector.detect(image)
        if len(found.boxes) == 0:
            found = self._detect_with_border(image)
        return found

    def _detect_with_border(self, image: np.ndarray) -> Detections:
        """Look again with a border of half the image around it: a face that fills the whole frame
        (an aligned crop, a close-up) gives detectors no context and is otherwise missed."""
        pad = max(image.shape[:2]) // 2
        found = self.detector.detect(cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT))
        return Detections(found.boxes - pad, found.scores, found.landmarks - pad)


def open_recognizer(pack: ModelPack, device: str = "auto", threads: int = 0, batch_size: int = 32,
                    spin: bool = True) -> Recognizer:
    """The pack's recognizer, batching only where the graph was checked to allow it."""
    session = create_session(_load_graph(pack.recognizer_path, batch_dynamic=True), device, threads, spin)
    norm = pack.normalisation
    recognizer = Recognizer(session, norm.mean, norm.std, norm.rgb, batch_size)
    recognizer.check_batching(probe_crops())
    return recognizer


def crops_of(image: np.ndarray, detections: Detections) -> np.ndarray:
    """(n,112,112,3) aligned crops of the detected faces, in the same order."""
    if len(detections.boxes) == 0:
        return np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8)
    return np.stack([align(image, landmarks) for landmarks in detections.landmarks])


def face_square(image: np.ndarray, box: np.ndarray, size: int, margin: float, lift: float = 0.0) -> np.ndarray:
    """A size x size crop centred on a face box (BGR), `margin` times its longer side, moved up by
    `lift` of its height: room for hair and chin, for thumbnails and the results screen."""
    x1, y1, x2, y2 = box
    scale = size / (max(x2 - x1, y2 - y1) * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - (y2 - y1) * lift
    matrix = np.array([[scale, 0, size / 2 - cx * scale], [0, scale, size / 2 - cy * scale]], np.float32)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)


class FaceEngine:
    """Owns the detector and recognizer sessions of one model pack on one device.

    Not thread-safe by contract: one thread (the kiosk's inference worker, a builder process) owns
    an engine. `providers` holds what onnxruntime really applied, per model.
    """

    def __init__(self, pack: ModelPack, device: str = "auto", threads: int = 0, batch_size: int = 32,
                 spin: bool = True, detector_threads: int | None = None) -> None:
        """`threads` for each model's session (0: onnxruntime decides), the detector's
        `detector_threads` where given: the kiosk detects on every live frame while its GUI draws
        them, and embeds only once a capture has paused the live view."""
        pack.check()
        self.pack = pack
        self.detector = FaceDetector(pack, device, threads if detector_threads is None else detector_threads, spin)
        self.recognizer = open_recognizer(pack, device, threads, batch_size, spin)
        self.providers = {"detector": self.detector.providers,
                          "recognizer": list(self.recognizer.session.get_providers())}
        self.dim = self.recognizer.dim
        log.info("engine ready: pack %s, providers %s, embedding batch %d", pack.id, self.providers,
                 self.recognizer.batch_size)

    @property
    def applied_providers(self) -> list[str]:
        """The providers used by both models, in the order the recognizer reports them."""
        return list(dict.fromkeys(self.providers["recognizer"] + self.providers["detector"]))

    def detect(self, image: np.ndarray) -> Detections:
        return self.detector.detect(image)

    def embed(self, image: np.ndarray, detections: Detections) -> np.ndarray:
        """(n, dim) embeddings of the detected faces of `image`, in the same order."""
        return self.recognizer.embed(crops_of(image, detections))

    def analyze(self, source: str | os.PathLike[str] | bytes | np.ndarray) -> list[Face]:
        """All faces of a photo (path, encoded bytes or BGR array), largest first.

        Raises face_engine.imaging.ImageError for a file that is not a usable photo.
        """
        image = read_image(source)
        detections = self.detect(image)
        embeddings = self.embed(image, detections)
        return [
            Face(box, float(score), landmarks, embedding)
            for box, score, landmarks, embedding in zip(
                detections.boxes, detections.scores, detections.landmarks, embeddings, strict=True
            )
        ]


def _load_graph(path: os.PathLike[str], batch_dynamic: bool, size_free: bool = False) -> bytes:
    """The model's bytes after the load-time repairs of face_engine.graphs (files stay untouched)."""
    model = onnx.load(str(path))
    graphs.drop_unused_inputs(model)
    graphs.fold_constant_dequantize(model)
    if batch_dynamic:
        graphs.make_batch_dynamic(model)
    if size_free:
        graphs.make_size_free(model)
    return model.SerializeToString()


def check_runs(pack: ModelPack) -> None:
    """Open both models as the engine will, so a pack onnxruntime refuses is never installed."""
    try:
        FaceEngine(pack, device="cpu", threads=1)
    except Exception as error:  # onnxruntime's errors derive from Exception only
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise PackError(f"pack {pack.id}: onnxruntime cannot run its models: {reason}") from None
