"""Accuracy measures on labelled galleries (faiss contrib/evaluation.py style: arrays in, numbers out)."""
from __future__ import annotations

from collections import Counter

import faiss
import numpy as np


def leave_one_out_identification(xb: np.ndarray, identities: list[str], ranks: tuple[int, ...] = (1, 5),
                                 index: faiss.Index | None = None) -> dict[str, float]:
    """Rank-r identification rate: each vector of a person with 2+ vectors is a query against all
    the others (itself left out); a hit when another vector of the same person is within the first
    r results. Exact search unless `index` (holding xb, in order) is given."""
    counts = Counter(identities)
    queries = np.array([i for i, name in enumerate(identities) if name and counts[name] >= 2])
    if index is None:
        index = faiss.IndexFlatIP(xb.shape[1])
        index.add(np.ascontiguousarray(xb, dtype=np.float32))
    _, I = index.search(xb[queries], max(ranks) + 1)
    names = np.array(identities, dtype=object)
    hits = {r: 0 for r in ranks}
    for query, row in zip(queries, I, strict=True):
        others = row[row != query][: max(ranks)]
        same = names[others] == names[query]
        for r in ranks:
            hits[r] += bool(same[:r].any())
    return {"queries": len(queries), **{f"rank{r}": hits[r] / len(queries) for r in ranks}}
