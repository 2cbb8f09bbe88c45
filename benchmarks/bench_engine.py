"""Engine speed on this machine: ms per image for detection, ms per face for embedding at batch 1
and batched, for each model pack. Writes one JSON result.

    .venv/bin/python benchmarks/bench_engine.py [--photos DIR] [--packs sface PATH ...] [--out FILE]

Timings are medians over repeats, after a warm-up; the machine may be shared and noisy, so compare
numbers from one run only.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from face_engine.engine import FaceEngine
from face_engine.imaging import read_image
from face_engine.recognizers import align
from index_builder.bench.common import write_result
from models.packs import resolve_pack

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"


def timed(fn, repeats: int) -> list[float]:
    """Seconds per call of `fn`, `repeats` times, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def bench_pack(pack_name: str, images: list[np.ndarray], repeats: int, batch: int) -> dict:
    engine = FaceEngine(resolve_pack(pack_name), device="auto", batch_size=batch)
    detect_ms = [statistics.median(timed(lambda im=im: engine.detect(im), repeats)) * 1e3 for im in images]
    crops = np.stack([align(im, lm) for im in images for lm in engine.detect(im).landmarks])
    recognizer = engine.recognizer
    batch_one = statistics.median(timed(lambda: [recognizer.embed(crops[i:i + 1]) for i in range(len(crops))], repeats))
    batched = statistics.median(timed(lambda: recognizer.embed(crops), repeats))
    return {
        "pack": engine.pack.id,
        "recognizer": engine.pack.recognizer_id,
        "providers": engine.providers,
        "images": len(images),
        "faces": len(crops),
        "detect_ms_per_image": {"median": statistics.median(detect_ms), "mean": statistics.fmean(detect_ms),
                                "min": min(detect_ms), "max": max(detect_ms)},
        "embed_ms_per_face_batch1": batch_one / len(crops) * 1e3,
        "embed_ms_per_face_batched": batched / len(crops) * 1e3,
        "embed_batch_size": recognizer.batch_size,
        "batched_speedup": batch_one / batched,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=SHARED / "data" / "photos")
    parser.add_argument("--packs", nargs="+", default=["sface", str(SHARED / "models" / "insightface-mini")])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "engine_cpu.json")
    args = parser.parse_args()

    paths = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in {".jpg", ".png"})
    images = [read_image(p) for p in paths]
    result = {
        "photos": str(args.photos),
        "repeats": args.repeats,
        "packs": [bench_pack(pack, images, args.repeats, args.batch) for pack in args.packs],
    }
    write_result(args.out, "engine", vars(args), result)
    for pack in result["packs"]:
        print(f"{pack['pack']:>18}: detect {pack['detect_ms_per_image']['median']:.1f} ms/image (median of "
              f"{pack['images']}), embed {pack['embed_ms_per_face_batch1']:.1f} ms/face at batch 1, "
              f"{pack['embed_ms_per_face_batched']:.1f} ms/face at batch {pack['embed_batch_size']} "
              f"({pack['faces']} faces)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
