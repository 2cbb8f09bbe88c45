"""Local engine vs `--engine ray` on the same corpus and machine: throughput and Ray's overhead.
Writes one JSON result.

    .venv/bin/python benchmarks/bench_engines.py [--photos 400] [--workers 2]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench_build import LFW, sample_corpus
from index_builder.bench.common import write_result
from index_builder.build import BuildOptions, build

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "engines_cpu.json")
    args = parser.parse_args()
    runs = {}
    with tempfile.TemporaryDirectory() as scratch:
        corpus = Path(scratch) / "corpus"
        sample_corpus(LFW, args.photos, corpus)
        for engine in ("local", "ray"):
            started = time.perf_counter()
            report = build(BuildOptions(corpus=corpus, out=Path(scratch) / engine, workers=args.workers,
                                        engine=engine, progress=False))
            wall = time.perf_counter() - started
            runs[engine] = {"wall_seconds": wall, "embed_stage_seconds": report["embed_seconds"],
                            "faces": report["faces_embedded_this_run"],
                            "faces_per_second_embed_stage": report["faces_per_second"],
                            "faces_per_second_wall": report["faces_embedded_this_run"] / wall}
            print(f"{engine:>5}: {runs[engine]['faces']} faces, embed stage {report['embed_seconds']:.1f} s "
                  f"({report['faces_per_second']:.1f} faces/s), wall {wall:.1f} s", flush=True)
    result = {"corpus": f"first {args.photos} photos of LFW", "workers": args.workers, "runs": runs,
              "ray_over_local_wall": runs["ray"]["wall_seconds"] / runs["local"]["wall_seconds"]}
    write_result(args.out, "engines", vars(args), result)
    print(f"ray takes {result['ray_over_local_wall']:.2f}x the local engine's wall time; wrote {args.out}")


if __name__ == "__main__":
    main()
