"""Build throughput: faces per second through the whole pipeline (read, decode, detect, align,
embed, write shards), beside the raw model rate on the same photos in the same run (photos decoded
beforehand, then detect + align + embed in one process). Writes one JSON result.

    .venv/bin/python benchmarks/bench_build.py [--corpus DIR] [--photos N] [--workers W] [--before JSON]

The pipeline should reach at least 80% of the raw model rate: decoding and I/O hidden behind inference.
--before keeps another run's result (the code before a change, run just before this one: a
`git worktree` of the old commit on PYTHONPATH) beside this one, and the ratio of the two pipelines.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from face_engine.engine import FaceEngine, crops_of
from face_engine.imaging import read_image
from index_builder.bench.common import write_result
from index_builder.build import BuildOptions, build
from index_builder.corpus import read_corpus
from models.packs import resolve_pack

HERE = Path(__file__).resolve().parent
LFW = HERE.parents[1] / "shared" / "data" / "lfw" / "images_deepfunneled"


def sample_corpus(source: Path, count: int, target: Path) -> list[Path]:
    """The first `count` photos of `source` (sorted, so every run uses the same ones), as a folder tree."""
    photos = [Path(item.path) for item in read_corpus(source).items[:count]]
    for photo in photos:
        (target / photo.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, target / photo.parent.name / photo.name)
    return photos


def raw_model_rate(pack: str, photos: list[Path], batch: int) -> dict:
    engine = FaceEngine(resolve_pack(pack), device="auto", batch_size=batch)
    images = [read_image(photo) for photo in photos]
    engine.recognizer.embed(crops_of(images[0], engine.detect(images[0])))  # warm-up
    start = time.perf_counter()
    crops = []
    for image in images:
        found = engine.detect(image)
        crops.append(crops_of(image, found.take(slice(0, 1))))
    detected = time.perf_counter()
    vectors = engine.recognizer.embed(np.concatenate(crops))
    done = time.perf_counter()
    return {"faces": len(vectors), "seconds": done - start, "faces_per_second": len(vectors) / (done - start),
            "detect_seconds": detected - start, "embed_seconds": done - detected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=LFW)
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=BuildOptions.workers)
    parser.add_argument("--pack", default="sface")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "build_cpu.json")
    parser.add_argument("--before", type=Path, help="this benchmark's result for the code before a change")
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        corpus = Path(scratch) / "corpus"
        photos = sample_corpus(args.corpus, args.photos, corpus)
        raw = raw_model_rate(args.pack, photos, args.batch)
        started = time.perf_counter()
        report = build(BuildOptions(corpus=corpus, out=Path(scratch) / "gallery", pack=args.pack,
                                    workers=args.workers, batch=args.batch, progress=False))
        wall = time.perf_counter() - started
    pipeline = {"faces": report["faces_embedded_this_run"], "embed_stage_seconds": report["embed_seconds"],
                "faces_per_second": report["faces_per_second"], "wall_seconds_with_index_and_publish": wall,
                "faces_per_second_wall": report["faces_embedded_this_run"] / wall, "workers": args.workers}
    result = {
        "corpus": f"first {args.photos} photos of {args.corpus}",
        "pack": args.pack,
        "raw_model": raw,
        "pipeline": pipeline,
        "pipeline_over_raw": pipeline["faces_per_second"] / raw["faces_per_second"],
        "load_average": {"before": [round(v, 2) for v in load_before], "after": [round(v, 2) for v in os.getloadavg()]},
        "report": report,
    }
    if args.before:
        before = json.loads(args.before.read_text())
        result["before"] = {key: before[key] for key in ("date", "raw_model", "pipeline", "pipeline_over_raw",
                                                         "load_average") if key in before}
        result["pipeline_over_before"] = pipeline["faces_per_second"] / before["pipeline"]["faces_per_second"]
    write_result(args.out, "build", vars(args), result)
    print(f"raw model: {raw['faces_per_second']:.1f} faces/s; pipeline: {pipeline['faces_per_second']:.1f} faces/s "
          f"({result['pipeline_over_raw']:.0%} of raw), {pipeline['faces_per_second_wall']:.1f} faces/s "
          f"including index and publish; wrote {args.out}")


if __name__ == "__main__":
    main()
