"""Portrait quality at query time: what breaking near-ties by quality changes in the fair policy.

    .venv/bin/python -m benchmarks.bench_quality --gallery GALLERY --visitors FOLDER [--queries 300]

Each visitor is the first photo of each person folder under FOLDER (people the gallery should not
hold: strangers, as at the kiosk). For each, the five faces shown by the fair policy are chosen
twice, with the gallery's quality scores and without; the result is how often the shown faces
change, the quality of the top match and of all five, and the raw score given up (at most the tie
epsilon by construction). Writes one JSON result.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from face_engine.engine import FaceEngine
from face_engine.fairness import FairPolicy
from face_engine.gallery import Gallery
from face_engine.imaging import ImageError, read_image
from face_engine.quality import TIE_EPSILON
from face_engine.query import choose
from index_builder.bench.common import write_result
from models.packs import resolve_pack

HERE = Path(__file__).resolve().parent
SHOWN = 5


def visitor_vectors(engine: FaceEngine, folder: Path, most: int) -> np.ndarray:
    vectors = []
    for person in sorted(path for path in folder.iterdir() if path.is_dir()):
        try:
            image = read_image(min(person.iterdir()))
        except (ImageError, ValueError):
            continue
        found = engine.detect(image)
        if len(found.boxes):
            vectors.append(engine.embed(image, found.take(slice(0, 1)))[0])
        if len(vectors) == most:
            break
    return np.array(vectors, np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gallery", required=True)
    parser.add_argument("--visitors", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "quality_lfw.json")
    args = parser.parse_args()
    gallery = Gallery(args.gallery, use_gpu=False)
    quality = gallery.quality
    if quality is None:
        raise SystemExit(f"{args.gallery} has no quality scores: build it with this index-builder")
    engine = FaceEngine(resolve_pack(gallery.manifest.pack_source), "cpu")
    xq = visitor_vectors(engine, args.visitors, args.queries)
    policy = FairPolicy()
    plain, broken = [], []
    for query in xq:
        gallery.quality = None
        plain.append(choose(gallery, query[None], SHOWN, True, policy))
        gallery.quality = quality
        broken.append(choose(gallery, query[None], SHOWN, True, policy))
    top = {name: np.array([quality[shown[0].face.id, 0] for shown in lists])
           for name, lists in (("plain", plain), ("quality", broken))}
    every = {name: np.array([[quality[m.face.id, 0] for m in shown] for shown in lists]).mean()
             for name, lists in (("plain", plain), ("quality", broken))}
    changed_top = np.array([a[0].face.id != b[0].face.id for a, b in zip(plain, broken, strict=True)])
    given_up = np.array([a[0].fair_score - b[0].fair_score for a, b in zip(plain, broken, strict=True)])
    result = {
        "gallery": args.gallery, "gallery_faces": gallery.count, "queries": len(xq), "tie_epsilon": TIE_EPSILON,
        "top_match_changed_share": float(changed_top.mean()),
        "shown_lists_changed_share": float(np.mean([[m.face.id for m in a] != [m.face.id for m in b]
                                                    for a, b in zip(plain, broken, strict=True)])),
        "top_match_quality_mean": {name: float(values.mean()) for name, values in top.items()},
        "top_match_quality_when_changed": {name: float(values[changed_top].mean()) if changed_top.any() else None
                                           for name, values in top.items()},
        "shown_quality_mean": {name: float(value) for name, value in every.items()},
        "top_fair_score_given_up_max": float(given_up.max()) if len(given_up) else 0.0,
        "gallery_quality_median": float(np.median(quality[:, 0])),
    }
    write_result(args.out, "quality", {k: str(v) for k, v in vars(args).items()}, result)
    print(f"top match changed for {result['top_match_changed_share']:.1%} of {len(xq)} visitors; top match quality "
          f"{top['plain'].mean():.3f} -> {top['quality'].mean():.3f}; wrote {args.out}")


if __name__ == "__main__":
    main()
