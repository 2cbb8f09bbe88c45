"""`bench ann`: recall of a gallery's index (and other index types) against exact search, swept
over search parameters, for strangers and for people in the gallery; single-query latency and
batch throughput measured apart (ann-benchmarks' runner: build once, sweep without rebuilding).

HNSW and IVF are here for in-gallery queries, where they shine; for strangers (the kiosk's
visitors) they lose the near-ties, so the builder does not try them (index_builder.indexes)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import faiss
import numpy as np

from index_builder.bench.common import gallery_arrays
from index_builder.indexes import (
    Candidate,
    Measurement,
    Truth,
    build,
    held_out_strangers,
    ivf_nlist,
    measure,
    pareto_frontier,
    serialized_bytes,
)

RECALL_KS = (1, 5, 10, 100)
LATENCY_QUERIES = 200


def split_queries(identities: list[str], rng: np.random.Generator, in_gallery: int = 500
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions of base vectors, stranger queries (whole people held out) and in-gallery queries
    (one photo held out of each of some people who keep other photos in the base)."""
    strangers = held_out_strangers(identities, rng)
    held = set(strangers.tolist())
    by_person: dict[str, list[int]] = {}
    for position, name in enumerate(identities):
        if name and position not in held:
            by_person.setdefault(name, []).append(position)
    people = [name for name, positions in sorted(by_person.items()) if len(positions) >= 2]
    rng.shuffle(people)
    known = np.array(sorted(by_person[name][0] for name in people[:in_gallery]), dtype=np.int64)
    base = np.setdiff1d(np.arange(len(identities)), np.concatenate([strangers, known]))
    return base, strangers, known


def default_specs(n: int, dim: int = 128) -> list[Candidate]:
    """Exact search, the builder's candidates for strangers, and HNSW and IVF for in-gallery queries."""
    nlist = ivf_nlist(n)
    m = dim // 2
    return [
        Candidate("Flat", [{}]),
        Candidate("SQfp16", [{}]),
        Candidate("SQ8", [{}]),
        Candidate(f"PQ{m}x4fs,RFlat", [{"k_factor_rf": kf} for kf in (8, 16, 32, 64, 128, 256)]),
        Candidate("HNSW32,Flat", [{"efSearch": ef} for ef in (16, 32, 64, 128, 256, 512, 1024)]),
        Candidate(f"IVF{nlist},Flat", [{"nprobe": p} for p in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
                                       if p <= nlist]),
    ]


def query_set_record(measured: Measurement) -> dict[str, Any]:
    """Recall at 1/5/10/100, the loss of the best score, single-query latency, batch throughput."""
    loss = measured.best_score_loss
    return {
        **{f"recall@{k}": recall for k, recall in measured.recall.items()},
        "best_score_loss": {"mean": float(loss.mean()), "worst_1pct": float(np.percentile(loss, 99)),
                            "max": float(loss.max())},
        "latency_ms": measured.latency_ms,
        "batch_queries_per_second": measured.batch_queries_per_second,
    }


def run_ann(gallery_path: str, specs: Sequence[tuple[str, list[dict[str, Any]]]] | None = None,
            seed: int = 0) -> dict[str, Any]:
    gallery, xb_all, identities = gallery_arrays(gallery_path)
    base, strangers, known = split_queries(identities, np.random.default_rng(seed))
    xb = xb_all[base]
    query_sets = {"strangers": xb_all[strangers], "in_gallery": xb_all[known]}
    k = min(max(RECALL_KS), len(xb))
    truths = {name: Truth.of(xb, xq, k) for name, xq in query_sets.items()}
    manifest_index = gallery.manifest.index
    candidates = [Candidate(*spec) for spec in specs or default_specs(len(xb), xb.shape[1])]
    if manifest_index.factory not in [candidate.factory for candidate in candidates]:
        candidates.append(Candidate(manifest_index.factory,
                                    [manifest_index.settings or manifest_index.search_params]))
    runs = []
    for candidate in candidates:
        index, build_seconds = build(candidate.factory, xb, use_gpu=faiss.get_num_gpus() > 0)
        for settings in candidate.sweep:
            measured = {name: measure(index, candidate.factory, settings, truth, build_seconds, RECALL_KS,
                                      LATENCY_QUERIES, latency_k=10) for name, truth in truths.items()}
            runs.append({"factory": candidate.factory, "params": settings, "build_seconds": build_seconds,
                         "index_bytes": serialized_bytes(index),
                         **{name: query_set_record(measurement) for name, measurement in measured.items()}})
            print(f"  {candidate.factory:<16} {str(settings):<20} recall@10 strangers "
                  f"{measured['strangers'].recall[10]:.3f} in gallery {measured['in_gallery'].recall[10]:.3f}  "
                  f"p50 {measured['strangers'].latency_ms['p50']:.3f} ms", flush=True)
    print_frontier(runs)
    return {
        "gallery": str(gallery.root),
        "gallery_index": manifest_index.factory,
        "base_vectors": len(xb),
        "dim": int(xb.shape[1]),
        "queries": {name: len(xq) for name, xq in query_sets.items()},
        "query_positions": {"strangers": strangers.tolist(), "in_gallery": known.tolist()},
        "runs": runs,
    }


def frontier(runs: list[dict[str, Any]], queries: str = "strangers") -> list[dict[str, Any]]:
    """The runs worth choosing among for a query set: recall@10 against single-query p50 (as plotted)."""
    return pareto_frontier(runs, lambda run: run[queries]["recall@10"], lambda run: run[queries]["latency_ms"]["p50"])


def print_frontier(runs: list[dict[str, Any]]) -> None:
    print("  strangers' recall@10 / p50 frontier:", flush=True)
    for run in frontier(runs):
        print(f"    {run['factory']:<16} {str(run['params']):<20} recall@10 {run['strangers']['recall@10']:.3f} "
              f"p50 {run['strangers']['latency_ms']['p50']:.3f} ms", flush=True)
