"""Fair attention (issue 12): hubness scores, the fair policy, the kiosk's exposure ledger, `bench exposure`."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import faiss
import numpy as np
import pytest

from conftest import LFW, copy_lfw_people, need
from face_engine.fairness import (
    EXACT,
    MIN_REFERENCES,
    ExactPolicy,
    FairPolicy,
    gini,
    hubness,
    person_numbers,
    policy_named,
    reference_count,
)
from face_engine.gallery import HUBNESS_FILE, Gallery
from face_engine.query import choose
from index_builder.attention import Replayed, shown
from index_builder.build import BuildOptions, build
from index_builder.cli import main as builder_main
from kiosk.config import ConfigError, load_config
from kiosk.ledger import Ledger

PEOPLE = {"Tony_Blair": 6, "Colin_Powell": 5, "Gerhard_Schroeder": 4, "Jean_Chretien": 3, "Ariel_Sharon": 3}
REPO = Path(__file__).resolve().parents[1]


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def hubness_oracle(xb: np.ndarray, persons: np.ndarray, k: int, references: np.ndarray | None = None) -> np.ndarray:
    """r_P for every face: the mean of person P's k nearest other people, a person's nearness to
    another being their closest pair of faces (among the references' faces when given)."""
    references = np.arange(len(xb)) if references is None else references
    similarity = xb @ xb[references].T
    similarity[persons[:, None] == persons[references][None, :]] = -np.inf
    others = np.unique(persons[references])
    face_to_person = np.stack([similarity[:, persons[references] == q].max(axis=1) for q in others], axis=1)
    r = np.zeros(len(xb))
    for person in np.unique(persons):
        nearness = face_to_person[persons == person].max(axis=0)
        nearest = np.sort(nearness[np.isfinite(nearness)])[::-1][:k]
        r[persons == person] = nearest.mean() if len(nearest) else 0.0
    return r


def test_hubness_is_of_people_and_equals_a_numpy_oracle_leaving_out_the_same_person():
    rng = np.random.default_rng(1)
    xb = unit(rng, 2000, 32)
    names = [f"p{i % 300}" if i % 9 else "" for i in range(len(xb))]
    names[:400] = ["many photos"] * 400  # more than the first search's depth: the wider search fills them
    persons = person_numbers(names)
    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    np.testing.assert_allclose(hubness(index, xb, persons, k=10), hubness_oracle(xb, persons, 10), atol=1e-5)


def test_hubness_over_a_sample_of_references_equals_its_oracle():
    rng = np.random.default_rng(5)
    xb = unit(rng, 1500, 32)
    persons = person_numbers([f"p{i % 200}" for i in range(len(xb))])
    references = np.sort(rng.choice(len(xb), 500, replace=False))
    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    np.testing.assert_allclose(hubness(index, xb, persons, 10, references=references),
                               hubness_oracle(xb, persons, 10, references), atol=1e-5)


def test_a_person_with_many_photos_is_one_person_of_hubness():
    rng = np.random.default_rng(7)
    xb = unit(rng, 600, 16)
    persons = person_numbers(["many"] * 100 + [f"p{i}" for i in range(500)])
    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    r = hubness(index, xb, persons, 10)
    assert np.ptp(r[:100]) == 0, "every face of a person has the person's r_P"
    assert r[0] > np.percentile(r[100:], 99), "100 photos cover more of the space: nearer to more people"


def test_hubness_measures_against_a_sample_when_the_whole_gallery_is_over_budget():
    rng = np.random.default_rng(6)
    xb = unit(rng, 12_000, 32)
    persons = person_numbers([f"p{i % 3000}" for i in range(len(xb))])
    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    assert reference_count(index, xb, persons, budget_seconds=60) is None
    assert reference_count(index, xb, persons, budget_seconds=1e-6) == MIN_REFERENCES


def test_an_unnamed_face_is_a_person_of_its_own():
    assert list(person_numbers(["a", "", "a", "", "b"])) == [0, -2, 0, -4, 1]


def rerank_oracle(scores, persons, hub, k, fairness):
    """The closest person's closest face, then each other person's best face by fair score."""
    closest = int(np.argmax(scores))
    fair = scores - fairness * hub
    best = {}
    for position in np.argsort(-fair, kind="stable"):
        if persons[position] != persons[closest]:
            best.setdefault(persons[position], position)
    return [closest] + sorted(best.values(), key=lambda p: -fair[p])[: k - 1]


def test_rerank_equals_a_numpy_oracle():
    rng = np.random.default_rng(2)
    for _ in range(200):
        scores = np.sort(rng.uniform(-0.2, 0.8, 50))[::-1]
        persons = rng.integers(0, 20, 50).tolist()
        hub = rng.uniform(0.1, 0.5, 50)
        fairness = float(rng.choice([0.0, 0.5, 1.0]))
        picks = FairPolicy(fairness).pick(scores, persons, hub, 5)
        assert [p.position for p in picks] == rerank_oracle(scores, persons, hub, 5, fairness)
        assert all(p.score == scores[p.position] for p in picks), "the raw score is what the visitor sees"
        assert all(p.fair_score == pytest.approx(scores[p.position] - fairness * hub[p.position]) for p in picks)


def test_the_ledger_prefers_the_less_shown_only_within_delta():
    scores = np.array([0.60, 0.59, 0.50])
    hub = np.zeros(3)
    counts = [9, 0, 0]
    wide, narrow = FairPolicy(0.5, delta=0.02, delta_more=0.02), FairPolicy(0.5, delta=0.005, delta_more=0.005)
    assert [p.position for p in wide.pick(scores, [0, 1, 2], hub, 1, counts=counts)] == [1]
    assert [p.position for p in narrow.pick(scores, [0, 1, 2], hub, 1, counts=counts)] == [0]
    assert [p.position for p in wide.pick(scores, [0, 1, 2], hub, 3, counts=counts)] == [1, 0, 2]


def test_the_ledger_moves_the_best_lookalike_less_than_the_smaller_matches():
    scores = np.array([0.60, 0.55, 0.50, 0.45])
    counts = [9, 9, 0, 0]
    picks = FairPolicy(0.5, delta=0.02, delta_more=0.12).pick(scores, [0, 1, 2, 3], np.zeros(4), 3, counts=counts)
    assert [p.position for p in picks] == [0, 2, 3], "the best stays (0.05 > 0.02); the next slots take the less-shown"
    narrow = FairPolicy(0.5, delta=0.02, delta_more=0.02)
    assert [p.position for p in narrow.pick(scores, [0, 1, 2, 3], np.zeros(4), 3, counts=counts)] == [0, 1, 2]


def test_the_replay_breaks_near_ties_by_portrait_quality_as_the_kiosk_does():
    # after the closest, a visitor's next two candidates (different people) are 0.005 apart: a near-tie
    D, I = np.array([[0.70, 0.60, 0.595, 0.40]]), np.array([[0, 1, 2, 3]])
    persons, hub = np.array([0, 1, 2, 3]), np.zeros(4)
    quality = np.array([0.1, 0.2, 0.9, 0.5])
    fair = Replayed(FairPolicy(0.5))
    plain = shown(D, I, persons, hub, 2, fair).counts
    with_quality = shown(D, I, persons, hub, 2, fair, quality=quality).counts
    kiosk = FairPolicy(0.5).pick(D[0], persons.tolist(), hub, 2, quality=quality)
    assert plain.tolist() == [1, 1, 0, 0] and with_quality.tolist() == [1, 0, 1, 0]
    assert [p.position for p in kiosk] == [0, 2], "the closest whatever its portrait, then the better portrait"


def test_the_replayed_ledger_counts_people_not_faces():
    # two visitors; person 0 has two near faces, person 1 one a little further
    D, I = np.array([[0.60, 0.59, 0.58], [0.60, 0.59, 0.58]]), np.array([[0, 1, 2], [1, 0, 2]])
    persons, hub = np.array([0, 0, 1]), np.zeros(3)
    replayed = shown(D, I, persons, hub, 1, Replayed(FairPolicy(0.0, delta=0.05), ledger=True), order=np.arange(2))
    assert replayed.counts.tolist() == [1, 0, 1], "person 0 was shown once: its other face is not less shown"
    without = shown(D, I, persons, hub, 1, Replayed(FairPolicy(0.0, delta=0.05)))
    assert without.counts.tolist() == [1, 1, 0]


def test_the_closest_person_is_always_shown_whatever_lambda_and_the_ledger():
    scores = np.array([0.60, 0.59, 0.58, 0.40, 0.39])
    persons, hub, counts = ["hub", "hub", "b", "c", "d"], np.array([0.9, 0.9, 0.1, 0.1, 0.1]), [50, 50, 0, 0, 0]
    for policy in (FairPolicy(1.0), FairPolicy(1.0, delta=0.0, delta_more=1.0)):
        picks = policy.pick(scores, persons, hub, 3, counts=counts)
        assert picks[0].position == 0 and len({persons[p.position] for p in picks}) == 3
    assert FairPolicy(1.0, delta=0.05).pick(scores, persons, hub, 1, counts=counts)[0].position == 2, \
        "a margin given: the closest may yield to a less-shown person within it"


def test_the_replay_reads_the_displayed_order_not_the_policys():
    class Backwards(ExactPolicy):  # prefers its worse candidates: the order shown is still by score
        def pick(self, scores, persons, hub, k, distinct=True, counts=None, quality=None):
            return list(reversed(super().pick(scores, persons, hub, k, distinct, counts, quality)))

    D, I = np.array([[0.60, 0.59, 0.30]]), np.array([[0, 1, 2]])
    persons, hub = np.array([0, 1, 2]), np.zeros(3)
    replayed = shown(D, I, persons, hub, 2, Replayed(Backwards()))
    assert replayed.top_id.tolist() == [0] and replayed.top_score.tolist() == [pytest.approx(0.60)]
    assert replayed.short == 0
    assert shown(D[:, :1], I[:, :1], persons, hub, 2, Replayed(EXACT)).short == 1, "one person where two were asked"


def test_the_even_floor_is_the_most_even_spread_of_the_showings():
    from index_builder.bench.exposure import even_floor

    assert even_floor(1000, 100) == {"gini": pytest.approx(0.9), "share_never_shown": 0.9}
    most_even = gini(np.array([3] * 50 + [2] * 50))
    assert even_floor(100, 250) == {"gini": pytest.approx(most_even), "share_never_shown": 0.0}


def test_exact_is_the_shortlist_in_order_each_person_once():
    picks = EXACT.pick(np.array([0.9, 0.8, 0.7, 0.6]), ["a", "a", "b", "c"], np.zeros(4), 2, distinct=True)
    assert [p.position for p in picks] == [0, 2]


def test_a_policy_runs_on_a_gallery_as_its_build_measured():
    assert FairPolicy().on_gallery(True, 0.75) == FairPolicy(0.75)
    assert FairPolicy(1.0).on_gallery(True, 0.75) == FairPolicy(1.0), "a λ given wins over the gallery's"
    assert FairPolicy().on_gallery(True, None) == FairPolicy(0.0), "none measured: plain scores"
    assert FairPolicy(1.0).on_gallery(False, 0.75) is EXACT, "no hubness scores: exact"
    assert EXACT.on_gallery(True, 0.75) is EXACT
    assert policy_named("fair", 0.5) == FairPolicy(0.5) and policy_named("exact", 0.5) is EXACT


@pytest.fixture(scope="module")
def gallery_path(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fair")
    copy_lfw_people(root / "corpus", PEOPLE)
    build(BuildOptions(corpus=root / "corpus", out=root / "gallery", workers=2, progress=False))
    return root / "gallery"


def visitor() -> Path:
    return next(iter(sorted((need(LFW) / "images_deepfunneled" / "George_W_Bush").iterdir())))


def plain_knn(gallery: Gallery, xq: np.ndarray, k: int, distinct: bool) -> list[tuple[float, int]]:
    """The kiosk's search before issue 12, kept as the oracle for --policy exact."""
    D, I = gallery.search(xq, k * 5 if distinct else k)
    out, seen = [], set()
    for score, face in zip(D[0], gallery.faces(I[0].tolist()), strict=False):
        who = face.identity or face.id
        if distinct and who in seen:
            continue
        seen.add(who)
        out.append((float(score), face.id))
        if len(out) == k:
            break
    return out


def test_the_build_stores_hubness_of_other_people_and_the_chosen_lambda(gallery_path):
    from index_builder.bench.common import gallery_arrays

    gallery, xb, identities = gallery_arrays(gallery_path)
    assert (gallery.root / HUBNESS_FILE).is_file() and gallery.hubness is not None
    np.testing.assert_allclose(gallery.hubness, hubness_oracle(xb, person_numbers(identities), 10), atol=1e-5)
    fairness = gallery.manifest.fairness
    assert fairness is not None and fairness.k == 10 and fairness.seconds >= 0 and "own index" in fairness.method
    assert fairness.lambda_ in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert all(face.photo_sha1 and len(face.photo_sha1) == 40 for face in gallery.faces(list(range(gallery.count))))


def test_policy_exact_equals_plain_knn_bit_for_bit(gallery_path):
    gallery = Gallery(gallery_path, use_gpu=False)
    rng = np.random.default_rng(3)
    for xq in unit(rng, 20, gallery.manifest.dim):
        for distinct in (True, False):
            got = [(m.score, m.face.id) for m in choose(gallery, xq[None], 5, distinct, EXACT)]
            assert got == plain_knn(gallery, xq[None], 5, distinct)


def test_search_json_gives_raw_and_fair_scores(gallery_path, capsys):
    assert builder_main(["search", str(gallery_path), str(visitor()), "--json", "--fairness", "1"]) == 0
    fair = json.loads(capsys.readouterr().out)
    assert fair["policy"] == "fair" and len({m["identity"] for m in fair["matches"]}) == len(fair["matches"]) == 5
    gallery = Gallery(gallery_path, use_gpu=False)
    by_image = {face.image: face.id for face in gallery.faces(list(range(gallery.count)))}
    for match in fair["matches"]:
        hub = gallery.hubness[by_image[match["image"]]]
        assert match["fair_score"] == pytest.approx(match["score"] - hub, abs=2e-4)
    assert builder_main(["search", str(gallery_path), str(visitor()), "--json", "--policy", "exact"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert all(m["score"] == m["fair_score"] for m in plain["matches"])
    assert plain["matches"][0]["score"] >= fair["matches"][0]["score"]


def test_a_gallery_without_hubness_falls_back_to_exact_with_a_log_line(gallery_path, tmp_path, caplog):
    copy = Path(shutil.copytree(gallery_path.resolve(), tmp_path / "no-hubness"))
    (copy / HUBNESS_FILE).unlink()
    with caplog.at_level(logging.WARNING):
        gallery = Gallery(copy, use_gpu=False)
    assert any("exact policy" in record.getMessage() for record in caplog.records)
    xq = unit(np.random.default_rng(4), 1, gallery.manifest.dim)
    assert choose(gallery, xq, 5, True, FairPolicy(1.0)) == choose(gallery, xq, 5, True, EXACT)


def test_a_damaged_hubness_file_is_one_line(gallery_path, tmp_path, capsys):
    copy = Path(shutil.copytree(gallery_path.resolve(), tmp_path / "bad-hubness"))
    np.save(copy / HUBNESS_FILE, np.zeros(3, np.float32))
    assert builder_main(["search", str(copy), str(visitor())]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hubness.npy is damaged" in err[0]


def test_bench_exposure_compares_policies_on_a_real_gallery(gallery_path, tmp_path):
    out = tmp_path / "exposure.json"
    assert builder_main(["bench", "exposure", str(gallery_path), "--k", "3", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    names = {"exact", "fair_0", "fair_0.25", "fair_0.5", "fair_0.75", "fair_1"}
    assert names < set(result["policies"])
    for policy in result["policies"].values():
        assert {"gini", "gini_per_person", "share_never_shown", "share_never_shown_per_person", "max_count",
                "max_count_per_person", "rank1", "stranger_score_loss", "share_short_lists", "most_shown",
                "most_shown_person", "lorenz", "lorenz_per_person"} <= set(policy)
        assert policy["share_short_lists"] == 0, "every visitor sees k different people"
    assert result["policies"]["exact"]["stranger_score_loss"] == 0
    assert all(result["query_ms"][name]["p50"] > 0 for name in ("exact", "fair", "fair_ledger"))
    ledger = next(name for name in result["policies"] if "_ledger_" in name)
    assert ledger.endswith("_ledger_0_0.15"), "the ledger at the gallery's λ, with both margins in its name"
    assert out.with_suffix(".png").stat().st_size > 1000

    synthetic = tmp_path / "synthetic.json"
    assert builder_main(["bench", "exposure", str(gallery_path), "--synthetic", "3000", "--sample", "400",
                         "--out", str(synthetic)]) == 0
    result = json.loads(synthetic.read_text())
    assert result["vectors"] == 3000 and result["visitors"]["strangers"] == 400
    assert "a sample of 3000 reference faces" in result["hubness_from"] and names < set(result["policies"])


# the exposure ledger ---------------------------------------------------------------------------

def faces_of(gallery_path: Path) -> list:
    gallery = Gallery(gallery_path, use_gpu=False)
    return gallery.faces(list(range(gallery.count)))


def test_the_ledger_survives_a_restart(gallery_path, tmp_path):
    faces = faces_of(gallery_path)
    ledger = Ledger(tmp_path / "exposure.json")
    ledger.record(faces[:3])
    ledger.record(faces[:1])
    ledger.flush()
    again = Ledger(tmp_path / "exposure.json")
    assert again.faces_shown([face.content_key for face in faces[:4]]) == [2, 1, 1, 0]
    people = [face.person_key for face in faces]
    assert again.shown(people[:4]) == [sum(n for who, n in zip(people[:4], [2, 1, 1, 0], strict=True) if who == person)
                                       for person in people[:4]], "a person's count is the sum over their faces"
    summary = again.summary(people)
    shown_people = len(set(people[:3]))
    assert summary.people == len(set(people)) == len(PEOPLE)
    assert summary.shown_people == shown_people and summary.share_never_shown == pytest.approx(
        1 - shown_people / len(PEOPLE))
    assert again.summary(people) is summary, "nothing shown since: the panel's summary is not recomputed"
    newcomer = next(face for face in faces if face.person_key not in people[:3])
    again.record([newcomer])
    assert again.summary(people).shown_people == shown_people + 1
    again.reset()
    assert again.summary(people).shown_people == 0
    assert Ledger(tmp_path / "exposure.json").shown([faces[0].person_key]) == [0]
    assert Ledger(tmp_path / "exposure.json").faces_shown([faces[0].content_key]) == [0]


def test_a_ledger_of_faces_only_is_read_and_its_people_start_from_nothing(tmp_path, caplog):
    path = tmp_path / "exposure.json"
    path.write_text(json.dumps({"format": "other-me-exposure", "counts": {"a:0": 3}}))
    with caplog.at_level(logging.INFO):
        ledger = Ledger(path)
    assert ledger.faces_shown(["a:0"]) == [3] and ledger.people == {} and "counts faces only" in caplog.text
    assert not (tmp_path / "exposure.damaged").exists()
    ledger.save()
    assert json.loads(path.read_text()) == {"format": "other-me-exposure", "counts": {"a:0": 3}, "people": {}}


def test_the_ledger_survives_kill_9(tmp_path):
    path = tmp_path / "exposure.json"
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from pathlib import Path
        from face_engine.gallery import face_record
        from kiosk.ledger import Ledger
        ledger = Ledger(Path({str(path)!r}), clock=lambda: time.monotonic() * 1000)  # writes on every record
        face = face_record(0, image="", identity="", display_name="", caption="", source="", x1=0, y1=0, x2=1,
                           y2=1, score=1.0, photo_sha1="ab" * 20, photo_face=0)
        while True:
            ledger.record([face])
    """)], cwd=REPO)
    deadline = time.monotonic() + 30
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    data = json.loads(path.read_text())
    assert data["counts"]["ab" * 20 + ":0"] >= 1, "the last complete write is there, whole"
    assert data["people"]["ab" * 20 + ":0"] == data["counts"]["ab" * 20 + ":0"], "an unnamed face: a person of its own"


@pytest.mark.parametrize("content", ["{not json", json.dumps({"format": "other-me-exposure", "counts": {"a:0": -1}}),
                                     json.dumps([1, 2]),
                                     json.dumps({"format": "other-me-exposure", "counts": {}, "people": {"a": "x"}})])
def test_a_corrupt_ledger_is_replaced_with_a_warning(tmp_path, caplog, content):
    path = tmp_path / "exposure.json"
    path.write_text(content)
    with caplog.at_level(logging.WARNING):
        ledger = Ledger(path)
    assert ledger.counts == {} == ledger.people and "counting starts afresh" in caplog.text
    assert (tmp_path / "exposure.damaged").read_text() == content, "the damaged file is set aside, not lost"
    ledger.save()
    assert json.loads(path.read_text())["counts"] == {} == json.loads(path.read_text())["people"]


@pytest.mark.slow
def test_the_ledger_keeps_counts_across_a_gallery_swap(gallery_path, tmp_path):
    corpus = tmp_path / "corpus"
    copy_lfw_people(corpus, {"Tony_Blair": 3, "Colin_Powell": 3})
    out = tmp_path / "gallery"
    build(BuildOptions(corpus=corpus, out=out, workers=2, progress=False))
    before = faces_of(out)
    ledger = Ledger(tmp_path / "exposure.json")
    ledger.record(before)
    ledger.flush()
    shutil.rmtree(corpus / "Colin_Powell")
    copy_lfw_people(corpus, {"Ariel_Sharon": 2})
    build(BuildOptions(corpus=corpus, out=out, workers=2, progress=False))
    after = faces_of(out)
    counts = dict(zip((face.image for face in after), Ledger(tmp_path / "exposure.json").faces_shown(
        [face.content_key for face in after]), strict=True))
    assert all(counts[str(photo)] == 1 for photo in sorted((corpus / "Tony_Blair").iterdir()))
    assert all(counts[str(photo)] == 0 for photo in sorted((corpus / "Ariel_Sharon").iterdir()))
    people = dict(zip((face.identity for face in after), Ledger(tmp_path / "exposure.json").shown(
        [face.person_key for face in after]), strict=True))
    assert people == {"Tony_Blair": 3, "Ariel_Sharon": 0}


def test_the_kiosk_worker_counts_what_it_shows_and_spreads_it(gallery_path, tmp_path, qtbot):
    import cv2

    from kiosk.worker import InferenceWorker

    ledger = Ledger(tmp_path / "exposure.json")
    worker = InferenceWorker(str(gallery_path), "", "cpu", FairPolicy(0.5, delta=1.0), ledger)
    worker.start_up()
    outcomes, summaries = [], []
    worker.searched.connect(outcomes.append)
    worker.exposure.connect(summaries.append)
    frame = cv2.imread(str(visitor()))
    for _ in range(2):
        worker.search(frame, 1, 0.0)
    assert [len(outcome.pairs[0].matches) for outcome in outcomes] == [1, 1]
    first, second = (outcome.pairs[0].matches[0].name for outcome in outcomes)
    assert first != second, "within δ the less-shown comes next"
    worker.report_exposure()
    assert summaries[-1].showings == 2 and summaries[-1].shown_people == 2
    worker.reset_exposure()
    assert summaries[-1].showings == 0 and Ledger(tmp_path / "exposure.json").counts == {}
    assert Ledger(tmp_path / "exposure.json").people == {}


def test_the_staff_panel_shows_exposure_and_resets_it(qtbot):
    from kiosk.messages import ExposureSummary
    from kiosk.staff_pages import StaffPage

    page = StaffPage()
    qtbot.addWidget(page)
    numbers = ExposureSummary(people=200, shown_people=150, showings=900, share_never_shown=0.25, gini=0.3125)
    for lang, says in (("en", "150 of 200 people shown so far; never shown 25.0%; Gini 0.312"), ("zh", "150 / 200")):
        page.retranslate(lang)
        page.show_exposure(numbers)
        assert says in page.exposure.text()
    with qtbot.waitSignal(page.reset_exposure):
        page.reset_button.click()


def test_kiosk_config_validates_policy_and_fairness(tmp_path):
    path = tmp_path / "kiosk.toml"
    path.write_text('policy = "exact"\nfairness = 0.5\n')
    config = load_config(path)
    assert config.match_policy() == EXACT and config.fairness == 0.5
    assert load_config(tmp_path / "absent.toml").match_policy() == FairPolicy(None)
    for line, says in (('policy = "nearest"', "policy must be one of exact, fair"),
                       ("fairness = -1", "fairness must be a number from 0 to 5"),
                       ('fairness = "lots"', "fairness must be a number")):
        path.write_text(line + "\n")
        with pytest.raises(ConfigError, match=says):
            load_config(path)
