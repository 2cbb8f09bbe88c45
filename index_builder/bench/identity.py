"""`bench identity`: identification on a labelled gallery (rank-1 and rank-5, each query left out)
and LFW's own 10-fold verification accuracy on pairs.txt."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from index_builder.bench.common import gallery_arrays
from index_builder.evaluate import leave_one_out_identification


def read_pairs(pairs: Path) -> tuple[list[tuple[str, str, bool]], int]:
    """LFW pairs.txt: (image a, image b, same person) as 'Name/Name_0001.jpg' keys, and the fold count."""
    lines = pairs.read_text().split("\n")
    folds, _ = map(int, lines[0].split())
    out = []
    for line in lines[1:]:
        parts = line.split()
        if len(parts) == 3:
            name, a, b = parts
            out.append((_key(name, a), _key(name, b), True))
        elif len(parts) == 4:
            out.append((_key(parts[0], parts[1]), _key(parts[2], parts[3]), False))
    return out, folds


def _key(name: str, number: str) -> str:
    return f"{name}/{name}_{int(number):04d}.jpg"


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold (midway between sorted scores) with the best accuracy on these pairs."""
    order = np.unique(scores)
    candidates = np.concatenate([[order[0] - 1e-3], (order[1:] + order[:-1]) / 2, [order[-1] + 1e-3]])
    accuracy = [np.mean((scores > t) == same) for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def verification(scores: np.ndarray, same: np.ndarray, folds: int) -> dict[str, Any]:
    """The standard protocol: each fold scored at the threshold chosen on the other folds."""
    fold_of = np.arange(len(scores)) * folds // len(scores)
    accuracies, thresholds = [], []
    for fold in range(folds):
        train = fold_of != fold
        threshold = best_threshold(scores[train], same[train])
        thresholds.append(threshold)
        accuracies.append(float(np.mean((scores[~train] > threshold) == same[~train])))
    return {"accuracy_mean": float(np.mean(accuracies)), "accuracy_std": float(np.std(accuracies)),
            "fold_accuracies": accuracies, "thresholds": thresholds}


def run_identity(gallery_path: str, pairs: Path | None) -> dict[str, Any]:
    gallery, xb, identities = gallery_arrays(gallery_path)
    result: dict[str, Any] = {"gallery": str(gallery.root), "vectors": len(xb),
                              "identification": leave_one_out_identification(xb, identities)}
    spec = gallery.manifest.index
    if spec.factory != "Flat":  # the gallery's own approximate index, against the exact search above
        result["identification_with_gallery_index"] = {
            "factory": spec.factory, "search_params": spec.settings or spec.search_params,
            **leave_one_out_identification(xb, identities, index=gallery.index)}
    if pairs is not None:
        images = [row[0] for row in gallery.db.execute("SELECT image FROM faces ORDER BY id")]
        position = {"/".join(Path(image).parts[-2:]): i for i, image in enumerate(images)}
        pair_list, folds = read_pairs(pairs)
        found = [(position[a], position[b], same) for a, b, same in pair_list if a in position and b in position]
        a, b, same = (np.array(column) for column in zip(*found, strict=True))
        scores = np.sum(xb[a] * xb[b], axis=1)
        result["verification"] = {"pairs_file": str(pairs), "pairs": len(pair_list), "pairs_scored": len(found),
                                  **verification(scores, same.astype(bool), folds)}
    return result
