"""`bench ann`: recall of a gallery's index (and other index types) against exact search, swept
over search parameters, for strangers and for people in the gallery; single-query latency and
batch throughput measured apart (ann-benchmarks' runner: build once, sweep without rebuilding).

HNSW and IVF are here for in-gallery queries, where they shine; for strangers (the kiosk's
visitors) they lose the near-ties, so the builder does not try them (index_builder.indexes)."""
from __future__ import annotations

import time
from typing import Any

import faiss
import numpy as np

from index_builder.bench.common import gallery_arrays
from index_builder.indexes import (
    held_out_strangers,
    ivf_nlist,
    recall_at,
    set_search,
    single_query_latency_ms,
    train_and_add,
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


def default_specs(n: int, dim: int = 128) -> list[tuple[str, list[dict[str, Any]]]]:
    """Exact search, the builder's candidates for strangers, and HNSW and IVF for in-gallery queries."""
    nlist = ivf_nlist(n)
    m = dim // 2
    return [
        ("Flat", [{}]),
        ("SQfp16", [{}]),
        ("SQ8", [{}]),
        (f"PQ{m}x4fs,RFlat", [{"k_factor_rf": kf} for kf in (8, 16, 32, 64, 128, 256)]),
        ("HNSW32,Flat", [{"efSearch": ef} for ef in (16, 32, 64, 128, 256, 512, 1024)]),
        (f"IVF{nlist},Flat", [{"nprobe": p} for p in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024) if p <= nlist]),
    ]


def evaluate(index: faiss.Index, xq: np.ndarray, D_exact: np.ndarray, I_exact: np.ndarray) -> dict[str, Any]:
    """Recall at 1/5/10/100, the loss of the best score, single-query latency, batch throughput."""
    k = I_exact.shape[1]
    start = time.perf_counter()
    D, I = index.search(xq, k)
    batch_seconds = time.perf_counter() - start
    loss = D_exact[:, 0] - D[:, 0]
    return {
        **{f"recall@{r}": recall_at(I, I_exact, r) for r in RECALL_KS if r <= k},
        "best_score_loss": {"mean": float(loss.mean()), "worst_1pct": float(np.percentile(loss, 99)),
                            "max": float(loss.max())},
        "latency_ms": single_query_latency_ms(index, xq[:LATENCY_QUERIES], 10),
        "batch_queries_per_second": len(xq) / batch_seconds,
    }


def run_ann(gallery_path: str, specs: list[tuple[str, list[dict[str, Any]]]] | None = None,
            seed: int = 0) -> dict[str, Any]:
    gallery, xb_all, identities = gallery_arrays(gallery_path)
    base, strangers, known = split_queries(identities, np.random.default_rng(seed))
    xb = xb_all[base]
    query_sets = {"strangers": xb_all[strangers], "in_gallery": xb_all[known]}
    k = min(max(RECALL_KS), len(xb))
    exact = faiss.IndexFlatIP(xb.shape[1])
    exact.add(xb)
    truth = {name: exact.search(xq, k) for name, xq in query_sets.items()}
    manifest_index = gallery.manifest.index
    specs = specs or default_specs(len(xb), xb.shape[1])
    if manifest_index.factory not in [factory for factory, _ in specs]:
        specs.append((manifest_index.factory, [manifest_index.settings or manifest_index.search_params]))
    runs = []
    for factory, sweep in specs:
        started = time.perf_counter()
        index = train_and_add(factory, xb, use_gpu=faiss.get_num_gpus() > 0)
        build_seconds = time.perf_counter() - started
        for params in sweep:
            set_search(index, params)
            measured = {name: evaluate(index, xq, *truth[name]) for name, xq in query_sets.items()}
            runs.append({"factory": factory, "params": params, "build_seconds": build_seconds,
                         "index_bytes": int(faiss.serialize_index(index).size), **measured})
            strangers_run, in_gallery_run = measured["strangers"], measured["in_gallery"]
            print(f"  {factory:<16} {str(params):<20} recall@10 strangers {strangers_run['recall@10']:.3f} "
                  f"in gallery {in_gallery_run['recall@10']:.3f}  p50 {strangers_run['latency_ms']['p50']:.3f} ms",
                  flush=True)
    return {
        "gallery": str(gallery.root),
        "gallery_index": manifest_index.factory,
        "base_vectors": len(xb),
        "dim": int(xb.shape[1]),
        "queries": {name: len(xq) for name, xq in query_sets.items()},
        "query_positions": {"strangers": strangers.tolist(), "in_gallery": known.tolist()},
        "runs": runs,
    }
