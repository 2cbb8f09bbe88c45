"""The build's index stage at 10^6 and 10^7 faces, run by the build's own code on a build state of
synthetic shards (bench scale's faces, fitted to a real gallery): choose the index on held-out
strangers, fill it streamed shard by shard, then the hubness step (r_g and the λ choice). Each size
runs in a child process of its own, so its peak RSS (ru_maxrss) is its own. Writes one JSON result.

Photos are not decoded here (embedding is bench e2e's and bench build's subject): the state holds
vectors and face rows only, as a build's state does after its embed step.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_index_stage.py --fit galleries/lfw \\
        --sizes 1000000 10000000 --out benchmarks/results/index_stage_cpu.json
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from face_engine.memory import peak_rss_mb
from index_builder.bench.common import gallery_arrays, write_result
from index_builder.bench.scale import CHUNK, chunk, fit
from index_builder.build import _hubness, _index_for
from index_builder.options import BuildOptions
from index_builder.state import Box, BuildState, FaceRow

NO_BOX = Box(0, 0, 0, 0)


def synthetic_state(fit_gallery: str, n: int, work: Path) -> tuple[BuildState, list[FaceRow], list[str]]:
    """A build state whose shards hold n synthetic faces (CHUNK per shard), with their face rows
    and identities in gallery order."""
    _, real, real_identities = gallery_arrays(fit_gallery)
    model = fit(real, real_identities)
    state = BuildState(work)
    rows: list[FaceRow] = []
    identities: list[str] = []
    for number in range(math.ceil(n / CHUNK)):
        vectors, person = chunk(model, n, number, seed=0)
        shard = state.next_shard_name()
        np.save(state.shards / f"{shard}.npy", vectors)
        rows += [FaceRow(f"{shard}/{row}", 0, shard, row, NO_BOX, 1.0) for row in range(len(vectors))]
        identities += [f"p{p}" for p in person]
    return state, rows, identities


def measure(fit_gallery: str, n: int, budget_ms: float) -> dict[str, Any]:
    """One size, in this process: the index stage and the hubness step, timed, with peak RSS."""
    with tempfile.TemporaryDirectory(prefix="index-stage-") as folder:
        started = time.perf_counter()
        state, rows, identities = synthetic_state(fit_gallery, n, Path(folder))
        generated = time.perf_counter() - started
        rss_before = peak_rss_mb()
        xb = state.vector_blocks(rows)
        options = BuildOptions(corpus=Path(folder), out=Path(folder) / "gallery", budget_ms=budget_ms,
                               progress=False)
        started = time.perf_counter()
        choice, index, strangers, stage = _index_for(xb, identities, options)
        index_seconds = time.perf_counter() - started
        index_rss = peak_rss_mb()
        started = time.perf_counter()
        _, fairness = _hubness(index, xb[np.arange(len(xb))], identities, None, index_seconds, False)
        hubness_seconds = time.perf_counter() - started
        measured = choice.measured
        return {
            "vectors": n, "factory": choice.factory, "settings": choice.settings, "reason": choice.reason,
            "recall@5_strangers": measured["recall@5"], "latency_ms": measured["latency_ms"],
            "strangers_held_out": strangers, "generate_seconds": round(generated, 1),
            "index_stage_seconds": round(index_seconds, 1), "index_stage_peak_rss_mb": round(index_rss),
            "peak_rss_mb_before_index_stage": round(rss_before),
            "hubness_step_seconds": round(hubness_seconds, 1), "hubness_seconds": fairness.seconds,
            "hubness_share_of_index_stage": round(fairness.seconds / index_seconds, 3),
            "hubness_method": fairness.method, "lambda": fairness.lambda_,
            "peak_rss_mb": round(peak_rss_mb()), "candidates": choice.measurements,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fit", required=True, help="the real gallery the synthetic faces imitate")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--latency-budget", type=float, default=20.0, metavar="MS")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: measure this size, print JSON
    parser.add_argument("--out", type=Path,
                        default=Path("bench_results") / f"index-stage-{time.strftime('%Y%m%d-%H%M%S')}.json")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.fit, args.one, args.latency_budget), default=float))
        return
    rows = []
    for n in args.sizes:
        child = subprocess.run([sys.executable, __file__, "--fit", args.fit, "--one", str(n),
                                "--latency-budget", str(args.latency_budget)],
                               capture_output=True, text=True, check=True)
        rows.append(json.loads(child.stdout.splitlines()[-1]))
        row = rows[-1]
        print(f"{n:>12,} faces: {row['factory']} {row['settings']}, index stage {row['index_stage_seconds']:.0f} s "
              f"(peak RSS {row['index_stage_peak_rss_mb']:,} MB), hubness {row['hubness_seconds']:.0f} s "
              f"({row['hubness_share_of_index_stage']:.0%} of the index stage), peak RSS {row['peak_rss_mb']:,} MB",
              flush=True)
    parameters = {"fit": args.fit, "sizes": args.sizes, "latency_budget_ms": args.latency_budget}
    write_result(args.out, "index_stage", parameters, {"sizes": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
