"""What growing the shortlist costs: every list holds k different people (face_engine.query.shortlist
searches again, longer, when one person's near photos crowd the others out), measured at 10^6 faces
against the fixed shortlist it replaced (one search of the policy's length, then "each person once").

The gallery is bench scale's synthetic faces (fitted to a real gallery, photos per person drawn from
its counts), indexed as the builder chose at 10^6 on this CPU (benchmarks/results/scale_cpu.json:
PQ64x4fs,Refine(SQ8),RFlat), written as a real gallery folder (index, metadata, no pictures) and
searched through the real path, `choose`, one thread, the fair policy at λ 0.5 (hubness zeros: the
pick's cost does not depend on their values). Visitors: strangers (new people), held-out photos of
people in the gallery, and held-out photos of its most-photographed people (where lists came up
short: a stress case, not a visitor mix). Each visitor is timed both ways, interleaved, best of
`--repeats`; reported: p50/p99 of each way per kind, over the visitors (strangers and people in the
gallery, as bench scale queries) and over all, the share of lists short of k people each way, and
how often the shortlist grew. Writes one JSON result.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_shortlist.py --fit galleries/lfw \\
        --out benchmarks/results/shortlist_1m_cpu.json
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from face_engine.fairness import FairPolicy
from face_engine.gallery import BuildReport, Gallery, IndexSpec, Manifest, face_record, write_gallery
from face_engine.query import choose, policy_on, shortlist
from index_builder.bench.common import gallery_arrays, write_result
from index_builder.bench.scale import CHUNK, chunk, fit, generate, synthetic_gallery
from index_builder.indexes import percentiles, set_search, train_and_add

FACTORY, SETTINGS = "PQ64x4fs,Refine(SQ8),RFlat", {"k_factor_rf": 4, "inner_k_factor": 8}
K = 5
POLICY = FairPolicy(0.5)


def held_out(person: np.ndarray, rng: np.random.Generator, ordinary: int, crowded: int) -> dict[str, np.ndarray]:
    """Positions (in the first chunk) of one photo each of `ordinary` random people with 2+ photos and
    of the `crowded` people with the most photos."""
    starts = np.flatnonzero(np.r_[True, person[1:] != person[:-1]])
    sizes = np.r_[starts[1:], len(person)] - starts
    several = starts[sizes >= 2]
    most = starts[np.argsort(-sizes, kind="stable")[:crowded]]
    ordinary_starts = rng.choice(np.setdiff1d(several, most), ordinary, replace=False)
    return {"in_gallery": np.sort(ordinary_starts), "crowded": np.sort(most)}


def write_synthetic_gallery(folder: Path, n: int, model: Any, seed: int, leave: np.ndarray) -> Gallery:
    """A gallery folder of n synthetic faces less the rows at `leave`, indexed as the builder chose."""
    (folder / "chunks").mkdir()
    vectors = synthetic_gallery(model, n, seed, folder / "chunks").without(leave)
    persons = np.delete(np.concatenate([chunk(model, n, number, seed)[1] for number in range(math.ceil(n / CHUNK))]),
                        leave)
    started = time.perf_counter()
    index = train_and_add(FACTORY, vectors, use_gpu=False)
    set_search(index, SETTINGS)
    print(f"  {FACTORY} trained and filled in {time.perf_counter() - started:.0f} s", flush=True)
    names = [f"p{p}" for p in persons]
    faces = [face_record(i, image="", identity=name, display_name=name, caption="", source="", x1=0, y1=0, x2=1,
                         y2=1, score=1.0) for i, name in enumerate(names)]
    report = BuildReport(corpus="synthetic", photos_in_corpus=len(faces), photos_with_faces=len(faces), skipped={},
                         faces_embedded_this_run=0, embed_seconds=0.0, faces_per_second=None, workers=1, providers=[])
    params = {key: value for key, value in SETTINGS.items() if key != "inner_k_factor"}
    manifest = Manifest(pack="sface", pack_source="sface", recognizer="synthetic", detector="synthetic",
                        dim=vectors.dim, metric="inner_product", count=len(faces), identities=len(set(names)),
                        index=IndexSpec(FACTORY, params, "the builder's choice at 10^6 on this CPU"), recall={},
                        build=report, options={}, built_at="now")
    write_gallery(folder / "gallery", manifest, index, faces, None, np.zeros(len(faces), np.float32))
    return Gallery(folder / "gallery", use_gpu=False)


def fixed_shortlist(gallery: Gallery, xq: np.ndarray) -> int:
    """The path before: one search of the policy's shortlist length, then the pick; the people shown."""
    policy = policy_on(gallery, POLICY)
    near = shortlist(gallery, xq, policy.shortlist_length(K, True), 0)  # 0 people wanted: never grown
    hub = np.zeros(len(near.ids), np.float32)
    picks = policy.pick(near.scores, near.persons, hub, K, True)
    gallery.faces([int(near.ids[pick.position]) for pick in picks])
    return len(picks)


def time_both(gallery: Gallery, xq: np.ndarray, repeats: int) -> dict[str, Any]:
    """Each query timed the old way and the new, interleaved, best of `repeats` (ms), with the people
    each way shows and whether the shortlist grew."""
    fixed_ms, grown_ms, fixed_people, grown_people, grew = [], [], [], [], []
    length = policy_on(gallery, POLICY).shortlist_length(K, True)
    for query in xq:
        one = query[None]
        best_fixed = best_grown = np.inf
        for _ in range(repeats):
            started = time.perf_counter()
            shown_before = fixed_shortlist(gallery, one)
            best_fixed = min(best_fixed, time.perf_counter() - started)
            started = time.perf_counter()
            shown = choose(gallery, one, K, True, POLICY)
            best_grown = min(best_grown, time.perf_counter() - started)
        fixed_ms.append(best_fixed * 1e3)
        grown_ms.append(best_grown * 1e3)
        fixed_people.append(shown_before)
        grown_people.append(len({match.face.identity for match in shown}))
        grew.append(len(set(shortlist(gallery, one, length, 0).persons)) < K)
    return {"fixed_ms": fixed_ms, "grown_ms": grown_ms, "fixed_people": fixed_people, "grown_people": grown_people,
            "grew": grew}


def summary(runs: dict[str, Any]) -> dict[str, Any]:
    fixed, grown = np.array(runs["fixed_ms"]), np.array(runs["grown_ms"])
    return {"queries": len(fixed), "fixed_ms": percentiles(fixed, (50, 99)), "grown_ms": percentiles(grown, (50, 99)),
            "p99_added_ms": float(np.percentile(grown, 99) - np.percentile(fixed, 99)),
            "share_short_fixed": float(np.mean(np.array(runs["fixed_people"]) < K)),
            "share_short_grown": float(np.mean(np.array(runs["grown_people"]) < K)),
            "share_grown": float(np.mean(runs["grew"]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", required=True, help="the real gallery the synthetic faces imitate")
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000, help="strangers and people in the gallery, each")
    parser.add_argument("--crowded", type=int, default=100, help="the most-photographed people queried")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/shortlist_1m_cpu.json"))
    args = parser.parse_args()
    _, real, identities = gallery_arrays(args.fit)
    model = fit(real, identities)
    rng = np.random.default_rng(args.seed)
    kinds = held_out(chunk(model, args.size, 0, args.seed)[1], rng, args.queries, args.crowded)
    leave = np.sort(np.concatenate(list(kinds.values())))
    first = chunk(model, args.size, 0, args.seed)[0]
    queries = {"strangers": generate(model, args.queries, np.random.default_rng([args.seed, 1]), 10**9)[0],
               **{kind: first[positions] for kind, positions in kinds.items()}}
    with tempfile.TemporaryDirectory(prefix="shortlist-") as folder:
        gallery = write_synthetic_gallery(Path(folder), args.size, model, args.seed, leave)
        runs = {kind: time_both(gallery, xq, args.repeats) for kind, xq in queries.items()}
        visitors = {key: runs["strangers"][key] + runs["in_gallery"][key] for key in runs["strangers"]}
        everyone = {key: sum((run[key] for run in runs.values()), []) for key in runs["strangers"]}
        results = {"gallery_faces": gallery.count, "factory": FACTORY, "settings": SETTINGS, "k": K,
                   "policy": POLICY.label(False), "by_kind": {kind: summary(run) for kind, run in runs.items()},
                   "visitors": summary(visitors), "all": summary(everyone), "raw": runs}
    for kind, numbers in {**results["by_kind"], "visitors": results["visitors"], "all": results["all"]}.items():
        print(f"  {kind:<10} p99 {numbers['fixed_ms']['p99']:.2f} -> {numbers['grown_ms']['p99']:.2f} ms "
              f"(+{numbers['p99_added_ms']:.2f}); short lists {numbers['share_short_fixed']:.1%} -> "
              f"{numbers['share_short_grown']:.1%}; grown {numbers['share_grown']:.1%}")
    write_result(args.out, "shortlist", vars(args), results)


if __name__ == "__main__":
    main()
