"""Why 10^7 faces are not searched within 20 ms (p99, one thread) on this CPU at recall@5 >= 0.98 for
strangers: the bytes each query must read, and what the smaller codes cost in recall or shortlist.

The chosen index at 10^7, `PQ64x4fs,RFlat`, scans 32 bytes a face: 320 MB a query. The first part
measures how fast one thread reads memory here, which puts a floor under that scan. The second
tries, on bench scale's synthetic faces (fitted to a real gallery) at `--size` faces, the ways of
reading fewer bytes: 16-byte fast-scan codes (with an exact re-rank, or an SQ8 middle stage), PCA
to 64 dimensions first, and IVF lists scanned in part. Each is reported with its bytes read per
face, recall@5 for strangers against exact search, and single-query p50/p99 on one thread. Writes
one JSON result.

    .venv/bin/python -m benchmarks.bench_small_codes --fit galleries/lfw [--size 1000000]
    .venv/bin/python -m benchmarks.bench_small_codes --fit galleries/lfw --size 10000000 --only PQ \
        --out benchmarks/results/small_codes_10m_cpu.json   # 10^7: ~12 GB of memory at most
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from index_builder.bench.common import gallery_arrays, write_result
from index_builder.bench.scale import STRANGER_QUERIES, fit, generate
from index_builder.indexes import (
    RECALL_AT,
    Candidate,
    Measurement,
    Truth,
    bytes_frontier,
    latency_frontier,
    measure_sweep,
)

HERE = Path(__file__).resolve().parent
SCAN_BYTES = 320 * 2**20  # what PQ64x4fs reads for one query at 10^7 faces
LATENCY_QUERIES = 100
# (factory, bytes scanned per face by its first stage, settings tried): PQ64x4fs is the chosen one
CONFIGS: list[tuple[str, float, list[dict[str, Any]]]] = [
    ("PQ64x4fs,RFlat", 32, [{"k_factor_rf": 64}]),
    ("PQ32x4fs,RFlat", 16, [{"k_factor_rf": kf} for kf in (512, 1024, 2048)]),
    ("PQ32x4fs,Refine(SQ8),RFlat", 16, [{"k_factor_rf": 4, "inner_k_factor": kf} for kf in (256, 512, 1024)]),
    ("PCA64,PQ32x4fs,RFlat", 16, [{"k_factor_rf": kf} for kf in (256, 512)]),
    ("IVF1024,PQ64x4fs,RFlat", 32, [{"nprobe": probes, "k_factor_rf": 128} for probes in (256, 512)]),
]


def configs(only: str, factors: list[int]) -> list[tuple[str, float, list[dict[str, Any]]]]:
    """CONFIGS whose factory starts with `only`, with `factors` as their shortlists when given."""
    chosen = [config for config in CONFIGS if config[0].startswith(only)]
    if not factors:
        return chosen
    def with_factor(settings: dict[str, Any], factor: int) -> dict[str, Any]:
        key = "inner_k_factor" if "inner_k_factor" in settings else "k_factor_rf"
        return {**settings, key: factor}
    return [(factory, scanned, [with_factor(sweep[0], factor) for factor in factors])
            for factory, scanned, sweep in chosen]


def read_bandwidth_gb_s(repeats: int = 5) -> float:
    """One thread summing SCAN_BYTES of memory, the best of `repeats` (GB/s)."""
    words = np.ones(SCAN_BYTES // 8, np.uint64)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        words.sum()
        best = min(best, time.perf_counter() - start)
    return SCAN_BYTES / best / 1e9


def try_configs(xb: np.ndarray, xq: np.ndarray, configs: list[tuple[str, float, list[dict[str, Any]]]]
                ) -> list[dict[str, Any]]:
    truth = Truth.of(xb, xq, RECALL_AT)
    rows, measured = [], []
    for factory, scanned, sweep in configs:
        index, swept = measure_sweep(Candidate(factory, sweep), xb, truth, use_gpu=False,
                                     latency_queries=LATENCY_QUERIES, on_measured=print_measured)
        del index  # one candidate in memory at a time
        measured += swept
        rows += [{"factory": factory, "settings": m.settings, "scanned_bytes_per_face": scanned,
                  "recall@5_strangers": m.recall[RECALL_AT], "latency_ms": m.latency_ms,
                  "build_seconds": round(m.build_seconds, 1)} for m in swept]
    print_frontiers(measured)
    return rows


def print_measured(m: Measurement) -> None:
    print(f"{m.factory:28s} {m.settings} recall@5 {m.recall[RECALL_AT]:.3f} "
          f"p50 {m.latency_ms['p50']:.2f} p99 {m.latency_ms['p99']:.2f} ms", flush=True)


def print_frontiers(measured: list[Measurement]) -> None:
    for title, frontier in (("p99", latency_frontier(measured)), ("bytes per face", bytes_frontier(measured))):
        print(f"recall@5 / {title} frontier:")
        for m in frontier:
            print(f"  {m.factory:28s} {m.settings} recall@5 {m.recall[RECALL_AT]:.3f} p99 {m.latency_ms['p99']:.2f} ms "
                  f"{m.bytes_per_face:g} bytes per face", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", required=True, help="a real gallery whose faces the synthetic ones imitate")
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--only", default="", help="try only the factories that start with this")
    parser.add_argument("--k-factor", type=int, action="append", default=[],
                        help="shortlist factors to try (k_factor_rf, or the SQ8 stage's), replacing the built-in ones")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "small_codes_cpu.json")
    args = parser.parse_args()
    bandwidth = read_bandwidth_gb_s()
    floor_ms = SCAN_BYTES / (bandwidth * 1e9) * 1e3
    print(f"one thread reads {bandwidth:.1f} GB/s: scanning 32 bytes x 10^7 faces takes at least {floor_ms:.1f} ms")
    _, real, identities = gallery_arrays(args.fit)
    model = fit(real, identities)
    xb, _ = generate(model, args.size, np.random.default_rng(0))
    xq, _ = generate(model, STRANGER_QUERIES, np.random.default_rng(1), first_person=10**9)  # new people
    rows = try_configs(xb, xq, configs(args.only, args.k_factor))
    write_result(args.out, "small_codes", vars(args), {
        "read_bandwidth_gb_s": bandwidth, "scan_floor_ms_at_10m_pq64x4fs": floor_ms,
        "strangers": len(xq), "latency_queries": LATENCY_QUERIES, "configs": rows})


if __name__ == "__main__":
    main()
