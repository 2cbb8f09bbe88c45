"""`index-builder bench`: every reported number checked against an independent computation."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import LFW, need
from face_engine.fairness import hubness, person_numbers
from face_engine.gallery import BuildReport, IndexSpec, Manifest, face_record, write_gallery
from index_builder.bench.ann import run_ann, split_queries
from index_builder.bench.identity import best_threshold, read_pairs, verification
from index_builder.bench.scale import fit, generate, run_scale
from index_builder.cli import main
from index_builder.indexes import percentiles, train_and_add
from test_indexes import brute_force, face_like


def synthetic_gallery(folder: Path, xb: np.ndarray, names: list[str]) -> Path:
    """A real gallery folder (index, metadata, thumbnails, portraits) around seeded synthetic vectors."""
    report = BuildReport(corpus="synthetic", photos_in_corpus=len(xb), photos_with_faces=len(xb), skipped={},
                         faces_embedded_this_run=len(xb), embed_seconds=0.0, faces_per_second=None, workers=1,
                         providers=[])
    manifest = Manifest(pack="sface", pack_source="sface", recognizer="synthetic", detector="synthetic",
                        dim=xb.shape[1], metric="inner_product", count=len(xb), identities=len(set(names)),
                        index=IndexSpec("Flat", {}, "synthetic"), recall={}, build=report, options={}, built_at="now")
    faces = [face_record(i, image=f"{name}/{i}.jpg", identity=name, display_name=name, caption="", source="",
                         x1=0, y1=0, x2=1, y2=1, score=1.0) for i, name in enumerate(names)]
    index = train_and_add("Flat", xb, use_gpu=False)
    write_gallery(folder, manifest, index, faces, [(b"jpeg", b"jpeg")] * len(xb),
                  hubness(index, xb, person_numbers(names)))
    return folder


def test_ann_recall_equals_an_independent_brute_force(tmp_path):
    xb, names = face_like(4000, dim=32, people=800)
    gallery = synthetic_gallery(tmp_path / "g", xb, names)
    specs = [("Flat", [{}]), ("IVF32,Flat", [{"nprobe": 1}, {"nprobe": 4}])]
    result = run_ann(str(gallery), specs)
    base, strangers, known = split_queries(names, np.random.default_rng(0))
    assert result["query_positions"] == {"strangers": strangers.tolist(), "in_gallery": known.tolist()}
    assert not set(names[i] for i in strangers) & set(names[i] for i in base), "strangers are not in the base"
    truth = brute_force(xb[strangers], xb[base], 10)
    index = train_and_add("IVF32,Flat", xb[base], use_gpu=False)
    for run in result["runs"]:
        if run["factory"] == "Flat":
            assert run["strangers"]["recall@10"] == 1.0 and run["strangers"]["best_score_loss"]["max"] <= 1e-6
            continue
        index.nprobe = run["params"]["nprobe"]
        _, I = index.search(xb[strangers], 10)
        expected = np.mean([len(set(I[q]) & set(truth[q])) / 10 for q in range(len(strangers))])
        assert run["strangers"]["recall@10"] == pytest.approx(expected)
        assert set(run["strangers"]["latency_ms"]) == {"p50", "p95", "p99", "mean"}
        assert run["strangers"]["batch_queries_per_second"] > 0


def test_verification_picks_each_folds_threshold_on_the_other_folds():
    scores = np.array([0.9, 0.8, 0.2, 0.1] * 10)
    same = np.array([True, True, False, False] * 10)
    assert 0.2 < best_threshold(scores, same) < 0.8
    assert verification(scores, same, folds=10)["accuracy_mean"] == 1.0
    noisy = same.copy()
    noisy[0] = False  # fold 0 holds the one mislabelled pair
    folds = verification(scores, noisy, folds=10)["fold_accuracies"]
    assert folds[0] == 0.75 and all(accuracy == 1.0 for accuracy in folds[1:])


def test_lfw_pairs_are_read_as_the_protocol_defines():
    pairs, folds = read_pairs(need(LFW) / "pairs.txt")
    assert (len(pairs), folds) == (6000, 10)
    assert sum(same for _, _, same in pairs) == 3000
    assert pairs[0][0].endswith(".jpg") and "/" in pairs[0][0]


def test_synthetic_faces_follow_the_fitted_model():
    xb, names = face_like(6000, dim=16, people=600, spread=0.3)
    model = fit(xb, names)
    synthetic, people = generate(model, 5000, np.random.default_rng(1))
    assert synthetic.shape == (5000, 16) and np.allclose(np.linalg.norm(synthetic, axis=1), 1, atol=1e-5)
    same = [i for i in range(1, 5000) if people[i] == people[i - 1]]
    different = [i for i in range(1, 5000) if people[i] != people[i - 1]]
    within = np.mean([synthetic[i] @ synthetic[i - 1] for i in same])
    between = np.mean([synthetic[i] @ synthetic[i - 1] for i in different])
    real_within = np.mean([xb[i] @ xb[j] for i in range(200) for j in range(200) if i < j and names[i] == names[j]])
    assert within > between + 0.3
    assert within == pytest.approx(real_within, abs=0.1)


def test_scale_reports_each_size_at_the_chosen_operating_point(tmp_path):
    xb, names = face_like(3000, dim=32, people=500)
    gallery = synthetic_gallery(tmp_path / "g", xb, names)
    result = run_scale(str(gallery), [2000, 8000], budget_ms=1000)
    assert [row["vectors"] for row in result["sizes"]] == [2000, 8000]
    for row in result["sizes"]:
        assert row["factory"] == "Flat" and row["recall@5_strangers"] == row["recall@5_in_gallery"] == 1.0
        assert row["build_seconds"] >= 0 and row["index_bytes"] >= row["gallery_vectors"] * 32 * 4
        assert row["open"]["mmap"] and row["peak_rss_mb"] > 0 and row["strangers_best_score_loss_mean"] == 0
    assert set(result["fit_check"]) == {"real_stranger_best_score", "synthetic_stranger_best_score"}


def test_bench_commands_write_results_and_plots(tmp_path, photos, capsys):
    xb, names = face_like(2000, dim=32, people=400)
    gallery = synthetic_gallery(tmp_path / "g", xb, names)
    out = tmp_path / "exposure.json"
    assert main(["bench", "exposure", str(gallery), "--k", "3", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["benchmark"] == "exposure" and "machine" in result
    assert all(0 <= policy["gini"] < 1 for policy in result["policies"].values())
    assert out.with_suffix(".png").stat().st_size > 1000
    out.with_suffix(".png").unlink()
    assert main(["bench", "plot", str(out)]) == 0
    assert out.with_suffix(".png").is_file()


@pytest.mark.slow
def test_bench_e2e_times_every_stage_on_real_photos(tmp_path, photos):
    corpus = tmp_path / "corpus" / "Tony_Blair"
    corpus.mkdir(parents=True)
    for photo in sorted((need(LFW) / "images_deepfunneled" / "Tony_Blair").iterdir())[:3]:
        shutil.copy(photo, corpus / photo.name)
    assert main(["build", str(corpus.parent), "--out", str(tmp_path / "g"), "--workers", "1"]) == 0
    visitors = tmp_path / "visitors"
    visitors.mkdir()
    for name in ("fr_obama.jpg", "coffee.png"):
        shutil.copy(photos / name, visitors / name)
    out = tmp_path / "e2e.json"
    assert main(["bench", "e2e", str(tmp_path / "g"), "--photos", str(visitors), "--repeats", "2",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["queries"] == 4
    assert set(result["ms"]) == {"decode", "detect", "embed", "search", "total"}
    assert result["ms"]["total"]["p50"] >= result["ms"]["detect"]["p50"]


def test_percentiles_are_numpy_s_under_the_names_the_result_files_use():
    values = np.random.default_rng(0).exponential(size=1000)
    assert percentiles(values, (10, 50, 95, 99)) == {f"p{q}": float(np.percentile(values, q)) for q in (10, 50, 95, 99)}


def test_scale_galleries_are_regenerated_identically_chunk_by_chunk(monkeypatch, tmp_path):
    from index_builder.bench import scale

    xb, names = face_like(3000, dim=16, people=300)
    model = fit(xb, names)
    monkeypatch.setattr(scale, "CHUNK", 700)
    gallery = scale.synthetic_gallery(model, 2500, seed=3, folder=tmp_path)
    first = np.concatenate(list(gallery.blocks()))
    again = np.concatenate([scale.chunk(model, 2500, number, seed=3)[0] for number in range(4)])
    assert first.shape == (2500, 16) and np.array_equal(first, again)
    positions, xq = scale.in_gallery_queries(model, 2500, seed=3, count=20)
    np.testing.assert_array_equal(xq, first[positions])
    _, person = scale.chunk(model, 2500, 0, seed=3)
    assert all((person == person[p]).sum() >= 2 for p in positions), "each query's person keeps a photo"


@pytest.mark.slow
def test_scale_over_budget_reports_the_approximate_choice_and_its_loss(tmp_path):
    xb, names = face_like(3000, dim=32, people=500)
    gallery = synthetic_gallery(tmp_path / "g", xb, names)
    row = run_scale(str(gallery), [6000], budget_ms=0.0)["sizes"][0]
    assert row["factory"] != "Flat" and row["recall@5_strangers"] >= 0.98
    assert row["latency_ms"]["p99"] < row["exact_latency_ms"]["p99"]
    assert 0 <= row["strangers_best_score_loss_mean"] < 0.01 and 0.9 <= row["recall@5_in_gallery"] <= 1
    compact = 4 * 32 + 32 + 16  # at most: floats to re-rank, an SQ8 middle stage, 4-bit codes
    assert row["bytes_per_face"] < compact and not row["open"]["mmap"] or row["factory"] == "SQfp16"


def test_bench_identity_checks_the_lists_visitors_see_and_rank1_on_the_displayed_order(tmp_path):
    from face_engine.fairness import EXACT
    from face_engine.gallery import Gallery
    from face_engine.likeness import one_face_each
    from index_builder.bench.identity import shown_lists

    xb, names = face_like(2000, dim=32, people=150)
    gallery = Gallery(synthetic_gallery(tmp_path / "g", xb, names), use_gpu=False)
    lists = shown_lists(gallery, xb, names, np.random.default_rng(0), EXACT, k=5, sample=100)
    assert lists["visitors"] == {"strangers": 100, "in_gallery": 100}
    assert lists["share_short_lists"] == 0 and lists["share_out_of_score_order"] == 0
    persons, rng = person_numbers(names), np.random.default_rng(0)
    one_face_each(persons, rng, 100)  # the strangers' draw, then the probes'
    several = np.flatnonzero(np.bincount(persons)[persons] >= 2)
    probes = several[one_face_each(persons[several], rng, 100)]
    similarity = xb[probes] @ xb.T
    similarity[np.arange(len(probes)), probes] = -np.inf  # each probe's own face left out
    assert lists["rank1_displayed"] == pytest.approx(np.mean(persons[similarity.argmax(axis=1)] == persons[probes]))
    medians = lists["median_likeness"]
    assert medians["same_person"] >= medians["strangers_first"] >= medians["strangers_5th"]
