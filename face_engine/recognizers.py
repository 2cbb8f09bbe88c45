"""Face recognizers: aligned 112x112 BGR crops in, L2-normalised float32 embeddings out."""
from __future__ import annotations

import logging
import warnings

import numpy as np
from insightface.utils.face_align import norm_crop

from face_engine.providers import Session

log = logging.getLogger(__name__)

# insightface's norm_crop calls an API scikit-image has deprecated; the result is unchanged.
warnings.filterwarnings("ignore", message="`estimate` is deprecated", category=FutureWarning)

CROP_SIZE = 112


def align(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 112x112 crop of the standard 5-point ArcFace template for one face's landmarks."""
    crop: np.ndarray = norm_crop(image, landmarks.astype(np.float32), image_size=CROP_SIZE)
    return crop


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit: np.ndarray = (x / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


class Recognizer:
    """Runs one recognizer session over crops, in batches when the graph allows it.

    `mean`, `std` and `rgb` describe the graph's expected input: (pixel - mean) / std, in RGB
    order when `rgb` else BGR. `batch_size` is checked at start-up (see `check_batching`).
    """

    def __init__(self, session: Session, mean: float, std: float, rgb: bool, batch_size: int = 32) -> None:
        self.session = session
        self.mean, self.std, self.rgb = mean, std, rgb
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name
        dim = session.get_outputs()[0].shape[-1]
        if not isinstance(dim, int):
            raise ValueError(f"the recognizer's embedding size is not fixed ({dim!r})")
        self.dim = dim
        self.batch_size = batch_size

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(n,112,112,3) uint8 BGR crops -> (n, dim) L2-normalised embeddings."""
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        chunks = [self._run(crops[i : i + self.batch_size]) for i in range(0, len(crops), self.batch_size)]
        return l2_normalize(np.vstack(chunks))

    def _run(self, crops: np.ndarray) -> np.ndarray:
        pixels = crops[..., ::-1] if self.rgb else crops
        blob = (pixels.transpose(0, 3, 1, 2).astype(np.float32) - self.mean) / self.std
        return self.session.run([self.output_name], {self.input_name: blob})[0].reshape(len(crops), -1)

    def check_batching(self, probe: np.ndarray, tolerance: float = 1e-4) -> bool:
        """Keep batching only if a batch gives the batch-1 outputs; otherwise embed one at a time.

        The batch axis of fixed-batch graphs is made free when loading, and a graph that hard-codes
        batch 1 somewhere inside either fails or mixes samples: both are caught here.
        """
        if self.batch_size == 1:
            return False
        one_by_one = np.vstack([self._run(probe[i : i + 1]) for i in range(len(probe))])
        try:
            batched = self._run(probe)
        except Exception as error:  # onnxruntime raises its own types for shape errors
            log.info("recognizer cannot run batched (%s); embedding one face at a time", error)
            self.batch_size = 1
            return False
        if not np.allclose(l2_normalize(batched), l2_normalize(one_by_one), atol=tolerance):
            log.info("recognizer outputs differ when batched; embedding one face at a time")
            self.batch_size = 1
            return False
        return True


def probe_crops(count: int = 4, seed: int = 0) -> np.ndarray:
    """Deterministic crop-shaped inputs for start-up checks (their content does not matter)."""
    return np.random.default_rng(seed).integers(0, 256, (count, CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)

