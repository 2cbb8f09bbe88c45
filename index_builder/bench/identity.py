"""`bench identity`: identification on a labelled gallery (rank-1 and rank-5, each query left out),
the lists visitors see through the real query path (their count, order and likeness), and LFW's own
10-fold verification accuracy on pairs.txt."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from face_engine.fairness import FairPolicy, MatchPolicy, person_numbers
from face_engine.gallery import Gallery
from face_engine.likeness import one_face_each
from face_engine.query import Lookalike, choose, displayed, policy_on
from index_builder.bench.common import gallery_arrays
from index_builder.evaluate import leave_one_out_identification

LIST_VISITORS = 2000  # visitors of each kind whose lists are checked
LOOKALIKES = 5


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


def shown_lists(gallery: Gallery, xb: np.ndarray, identities: list[str], rng: np.random.Generator,
                policy: MatchPolicy | None = None, k: int = LOOKALIKES, sample: int = LIST_VISITORS) -> dict[str, Any]:
    """The lists visitors see, as the query path makes them (choose, then displayed), `policy` (the
    gallery's fair one unless given) as the gallery runs it: strangers (one face of each of `sample`
    people, their whole person left out of the gallery) and people in it (one face of each of
    `sample` people with 2+ faces, only that face left out). The share of lists short of min(k,
    people there), the share out of score order, rank-1 on the displayed order, and the median
    likeness and raw score of strangers' first and k-th match and of the same person's match where
    shown."""
    chosen = policy or FairPolicy()
    persons = person_numbers(identities)
    by_person = _faces_by_person(persons)
    strangers = one_face_each(persons, rng, sample)
    several = np.flatnonzero(np.array([len(by_person[p]) for p in persons]) >= 2)
    probes = several[one_face_each(persons[several], rng, sample)]

    def seen(face: int, leave_out: list[int]) -> list[Lookalike]:
        return displayed(choose(gallery, xb[face][None], k, True, chosen, leave_out=leave_out))

    met = [seen(i, by_person[persons[i]]) for i in strangers]
    known = [seen(i, [int(i)]) for i in probes]
    own = [next((match for match in shown if match.face.identity == identities[i]), None)
           for i, shown in zip(probes, known, strict=True)]
    people = len(by_person)
    short = ([_people(shown) < min(k, people - 1) for shown in met]  # a stranger's own person is left out
             + [_people(shown) < min(k, people) for shown in known])
    return {
        "k": k, "policy": policy_on(gallery, chosen).label(False), "likeness_table": gallery.calibration.source,
        "visitors": {"strangers": len(met), "in_gallery": len(known)},
        "share_short_lists": float(np.mean(short)),
        "share_out_of_score_order": float(np.mean([_out_of_order(shown) for shown in met + known])),
        "rank1_displayed": float(np.mean([bool(shown) and shown[0] is match for shown, match in zip(known, own,
                                                                                                   strict=True)])),
        "share_same_person_shown": float(np.mean([match is not None for match in own])),
        **_medians({"strangers_first": [shown[0] for shown in met if shown],
                    f"strangers_{k}th": [shown[k - 1] for shown in met if len(shown) >= k],
                    "same_person": [match for match in own if match is not None]}),
    }


def _people(shown: list[Lookalike]) -> int:
    return len({match.face.identity or match.face.id for match in shown})


def _out_of_order(shown: list[Lookalike]) -> bool:
    return any(later.score > earlier.score for earlier, later in zip(shown, shown[1:], strict=False))


def _faces_by_person(persons: np.ndarray) -> dict[int, list[int]]:
    order = np.argsort(persons, kind="stable")
    cuts = np.flatnonzero(np.diff(persons[order])) + 1
    return {int(persons[group[0]]): group.tolist() for group in np.split(order, cuts)}


def _medians(matches: dict[str, list[Lookalike]]) -> dict[str, dict[str, float | None]]:
    """The median likeness and raw score of each group of matches."""
    return {f"median_{field}": {group: float(np.median([getattr(m, field) for m in found])) if found else None
                                for group, found in matches.items()} for field in ("likeness", "score")}


def run_identity(gallery_path: str, pairs: Path | None) -> dict[str, Any]:
    gallery, xb, identities = gallery_arrays(gallery_path)
    result: dict[str, Any] = {"gallery": str(gallery.root), "vectors": len(xb),
                              "identification": leave_one_out_identification(xb, identities),
                              "lists": shown_lists(gallery, xb, identities, np.random.default_rng(0))}
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
