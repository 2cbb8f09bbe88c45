"""Soak the kiosk's inference worker: many captures through its real query path (detect, embed,
search, portraits) with resident memory sampled, to show it does not grow. Writes one JSON result.

    .venv/bin/python benchmarks/soak_kiosk.py --gallery galleries/lfw [--queries 10000]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from face_engine.imaging import read_image
from index_builder.bench.common import rss_mb, write_result
from kiosk.worker import InferenceWorker

HERE = Path(__file__).resolve().parent
PHOTOS = HERE.parents[1] / "shared" / "data" / "photos"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gallery", required=True)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--sample-every", type=int, default=250)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "kiosk_soak_cpu.json")
    args = parser.parse_args()

    frames = [read_image(p) for p in sorted(PHOTOS.iterdir()) if p.suffix in (".jpg", ".png")]
    worker = InferenceWorker(args.gallery, "", "auto")
    outcomes = []
    worker.searched.connect(outcomes.append)  # direct connection: the worker runs in this thread here
    worker.start_up()
    samples = []
    started = time.perf_counter()
    for number in range(1, args.queries + 1):
        worker.search(frames[number % len(frames)], 5, time.perf_counter())
        outcomes.clear()  # a kiosk keeps only the outcome on screen
        if number % args.sample_every == 0 or number == 1:
            samples.append({"queries": number, "rss_mb": round(rss_mb(), 1),
                            "seconds": round(time.perf_counter() - started, 1)})
            print(samples[-1], flush=True)
    warm = next(s for s in samples if s["queries"] >= min(1000, args.queries))
    result = {
        "gallery": args.gallery,
        "queries": args.queries,
        "photos_cycled": len(frames),
        "rss_mb_after_first_query": samples[0]["rss_mb"],
        "rss_mb_after_warm_up": warm["rss_mb"],
        "rss_mb_at_end": samples[-1]["rss_mb"],
        "growth_after_warm_up_mb": round(samples[-1]["rss_mb"] - warm["rss_mb"], 1),
        "ms_per_query": round((time.perf_counter() - started) / args.queries * 1e3, 1),
        "samples": samples,
    }
    write_result(args.out, "kiosk_soak", vars(args), result)
    print(f"{args.queries} queries: RSS {result['rss_mb_after_warm_up']} MB after warm-up -> "
          f"{result['rss_mb_at_end']} MB at the end; wrote {args.out}")


if __name__ == "__main__":
    main()
