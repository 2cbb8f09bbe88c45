"""`bench exposure`: how fairly attention spreads over a gallery. Every gallery face in turn is a
visitor (their own photos left out, as a visitor is not in the gallery); count how often each
gallery face is shown in the top k (each person once, as the kiosk shows); report the Gini
coefficient of those counts, the share never shown, and the hubs."""
from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from index_builder.bench.common import gallery_arrays

SEARCH_DEPTH = 64  # candidates per query, enough to fill k distinct other people


def gini(counts: np.ndarray) -> float:
    """0 when every face is shown equally often, towards 1 when a few faces take all the attention."""
    x = np.sort(np.asarray(counts, dtype=float))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    return float((2 * np.sum(np.arange(1, n + 1) * x)) / (n * x.sum()) - (n + 1) / n)


def exposure_counts(xb: np.ndarray, identities: list[str], k: int) -> np.ndarray:
    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    _, I = index.search(xb, min(SEARCH_DEPTH, len(xb)))
    names = [name or f"#{i}" for i, name in enumerate(identities)]
    counts = np.zeros(len(xb), dtype=np.int64)
    for query, row in enumerate(I):
        shown: set[str] = set()
        for candidate in row:
            person = names[candidate]
            if candidate < 0 or person == names[query] or person in shown:
                continue
            shown.add(person)
            counts[candidate] += 1
            if len(shown) == k:
                break
    return counts


def run_exposure(gallery_path: str, k: int) -> dict[str, Any]:
    gallery, xb, identities = gallery_arrays(gallery_path)
    counts = exposure_counts(xb, identities, k)
    hubs = np.argsort(-counts)[:10]
    names = {row[0]: row[1] for row in gallery.db.execute("SELECT id, display_name FROM faces")}
    return {
        "gallery": str(gallery.root), "vectors": len(xb), "queries": len(xb), "k": k,
        "gini": gini(counts),
        "share_never_shown": float(np.mean(counts == 0)),
        "max_count": int(counts.max()), "mean_count": float(counts.mean()),
        "hubs": [{"id": int(i), "name": names[int(i)], "shown": int(counts[i])} for i in hubs],
        "count_histogram": np.bincount(counts).tolist(),
    }
