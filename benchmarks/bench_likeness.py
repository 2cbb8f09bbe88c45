"""The likeness a visitor reads, measured on a labelled gallery (LFW): the median likeness of
strangers' first match and of their k-th, of the same person's match, and of unrelated people (a
random face of another person), through the real query path (`bench identity`'s shown_lists: the
gallery's fair policy, then the order shown; the exact policy's beside it). Strangers are one face
of every person, their whole person left out of the gallery; same-person visitors one face of every
person with 2+ faces, only that face left out. Beside each, the percentage the kiosk showed before
(a straight line from cosine -0.2 at 0% to 0.6 at 99%). It also prints the pack's table for
models/catalogue.py: the gallery's table over all its people. Writes one JSON result.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_likeness.py galleries/lfw \\
        --out benchmarks/results/likeness_lfw.json
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from face_engine.fairness import EXACT, person_numbers
from face_engine.likeness import LEVELS, calibrate
from index_builder.bench.common import gallery_arrays, write_result
from index_builder.bench.identity import shown_lists

UNRELATED_PAIRS = 100_000


def linear_percent(score: float) -> int:
    """What the kiosk showed before this table: cosine -0.2 -> 0%, 0.6 -> 99%, clipped."""
    return int(round(min(max((score + 0.2) / 0.8, 0.0), 0.99) * 100))


def unrelated(xb: np.ndarray, persons: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cosines of random pairs of faces of different people."""
    a, b = rng.integers(0, len(xb), (2, UNRELATED_PAIRS))
    keep = persons[a] != persons[b]
    return np.sum(xb[a[keep]] * xb[b[keep]], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("gallery")
    parser.add_argument("--sample", type=int, default=10**9, help="visitors of each kind (default: all)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/likeness_lfw.json"))
    args = parser.parse_args()
    gallery, xb, identities = gallery_arrays(args.gallery)
    persons = person_numbers(identities)
    lists = shown_lists(gallery, xb, identities, np.random.default_rng(0), sample=args.sample)
    exact = shown_lists(gallery, xb, identities, np.random.default_rng(0), EXACT, sample=args.sample)
    whole = calibrate(gallery.index, xb, persons, np.random.default_rng(0), people=len(set(persons.tolist())))
    pairs = unrelated(xb, persons, np.random.default_rng(1))
    table = gallery.calibration
    results: dict[str, Any] = {
        "gallery": str(gallery.root), "faces": gallery.count, "people": len(set(persons.tolist())),
        "table": {"source": table.source, "people": table.people, "levels": list(LEVELS), "cosines": table.cosines},
        "lists": lists,
        "lists_exact": exact,
        "median_likeness_unrelated": float(np.median([table.likeness(score) for score in pairs])),
        "unrelated_pairs": len(pairs),
        "median_cosine_unrelated": float(np.median(pairs)),
        "pack_table_all_people": whole.to_json() if whole else None,
    }
    results["median_percent_before"] = {**{group: linear_percent(score) if score is not None else None
                                           for group, score in lists["median_score"].items()},
                                        "unrelated": linear_percent(results["median_cosine_unrelated"])}
    print(f"  table: {table.summary()}")
    print("  median likeness: " + ", ".join(f"{key} {value}" for key, value in lists["median_likeness"].items())
          + f", unrelated {results['median_likeness_unrelated']}")
    print(f"  the kiosk's percentage before: {results['median_percent_before']}")
    print(f"  short lists {lists['share_short_lists']:.1%}, out of order {lists['share_out_of_score_order']:.1%}, "
          f"rank-1 as shown {lists['rank1_displayed']:.2%} (exact: {exact['rank1_displayed']:.2%})")
    if whole:
        print(f"  for models/catalogue.py LFW_LIKENESS: {tuple(whole.cosines)}")
    write_result(args.out, "likeness", vars(args), results)


if __name__ == "__main__":
    main()
