"""The build's hubness step against its index stage, on synthetic faces fitted to a real gallery
(bench scale's model): the issue's rule is that hubness takes at most 20% of the index stage at
10^6 faces. For each size: the index stage as the build runs it (choose on held-out strangers, then
fill), then `gallery_fairness` (r_g, exact or over a sample of references, and the λ choice).
Writes one JSON result.

    .venv/bin/python benchmarks/bench_hubness.py --fit galleries/lfw --sizes 100000 1000000
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from index_builder.bench.common import gallery_arrays, write_result
from index_builder.bench.exposure import gallery_fairness
from index_builder.bench.scale import fit, generate
from index_builder.build import LOOKALIKES, _index_for
from index_builder.indexes import Vectors
from index_builder.options import BuildOptions


def measure(model, n: int, budget_ms: float, rng: np.random.Generator) -> dict:
    xb, person = generate(model, n, rng)
    identities = [f"p{p}" for p in person]
    started = time.perf_counter()
    options = BuildOptions(corpus=Path("synthetic"), out=Path("synthetic"), budget_ms=budget_ms, progress=False)
    choice, index, _, _ = _index_for(Vectors.of(xb), identities, options)
    index_seconds = time.perf_counter() - started
    started = time.perf_counter()
    _, fairness = gallery_fairness(index, xb, identities, LOOKALIKES, index_seconds)
    row = {"vectors": n, "factory": choice.factory, "index_seconds": round(index_seconds, 2),
           "hubness_seconds": fairness["seconds"], "choice_seconds": fairness["choice_seconds"],
           "step_seconds": round(time.perf_counter() - started, 2),
           "hubness_share_of_index_stage": round(fairness["seconds"] / index_seconds, 3),
           "method": fairness["method"], "lambda": fairness["lambda"]}
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fit", required=True, help="the real gallery the synthetic faces imitate")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--latency-budget", type=float, default=20.0, metavar="MS")
    parser.add_argument("--out", type=Path,
                        default=Path("bench_results") / f"hubness-{time.strftime('%Y%m%d-%H%M%S')}.json")
    args = parser.parse_args()
    _, real, identities = gallery_arrays(args.fit)
    model = fit(real, identities)
    rng = np.random.default_rng(0)
    rows = [measure(model, n, args.latency_budget, rng) for n in args.sizes]
    write_result(args.out, "hubness", vars(args), {"sizes": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
