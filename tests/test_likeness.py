"""The likeness a visitor reads: one definition (face_engine.likeness), rising with the raw cosine
from 0 to 100, calibrated on a gallery's strangers (checked against an independent brute force), its
pack's LFW table where a gallery has none, and the same words wherever it is explained."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import faiss
import numpy as np
import pytest

from face_engine.fairness import person_numbers
from face_engine.likeness import (
    LEVELS,
    MEANING,
    MIN_CALIBRATION_PEOPLE,
    Calibration,
    calibrate,
    one_face_each,
    pack_calibration,
    unrelated_partners,
)
from index_builder.cli import main
from models.catalogue import DEFAULT_PACK, LFW_LIKENESS
from test_indexes import face_like

ROOT = Path(__file__).resolve().parents[1]


def flat(xb: np.ndarray) -> faiss.Index:
    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    return index


def test_likeness_rises_with_the_cosine_from_0_to_100_through_the_tables_points():
    table = Calibration(tuple(float(c) for c in np.linspace(0.2, 0.6, len(LEVELS))))
    shown = [table.likeness(c) for c in np.linspace(-1, 1, 4001)]
    assert shown == sorted(shown), "sorting by the score sorts by the likeness"
    assert shown[0] == 0 and shown[-1] == 100
    assert [table.likeness(c) for c in table.cosines] == list(LEVELS)


def test_a_gallerys_table_is_its_strangers_best_matches_as_a_brute_force_finds_them():
    xb, names = face_like(3000, dim=32, people=600)
    persons = person_numbers(names)
    table = calibrate(flat(xb), xb, persons, np.random.default_rng(1), people=300)
    rng = np.random.default_rng(1)  # the same draws: the sample, then each one's unrelated partner
    sample = one_face_each(persons, rng, 300)
    partners = unrelated_partners(persons, sample, rng)
    assert (persons[partners] != persons[sample]).all()
    similarity = xb[sample] @ xb.T
    similarity[persons[sample][:, None] == persons[None, :]] = -np.inf  # their own person left out
    best = similarity.max(axis=1)
    unrelated = np.einsum("ij,ij->i", xb[sample], xb[partners])
    assert table is not None and table.people == 300 and table.source == "gallery"
    np.testing.assert_allclose(table.cosines, [np.median(unrelated), *np.percentile(best, LEVELS[1:])], atol=2e-5)
    assert table.likeness(float(np.median(best))) == 50, "a typical stranger's best match is the middle"
    assert table.likeness(float(np.percentile(best, 90))) == 90
    assert table.likeness(float(np.median(unrelated))) == 0 == table.likeness(-1.0)
    assert 0 < table.likeness(float(np.percentile(best, 10))) < 50


def test_one_face_of_each_person_at_most_the_number_asked():
    persons = np.repeat(np.arange(50), 7)
    chosen = one_face_each(persons, np.random.default_rng(0), 1000)
    assert sorted(persons[chosen].tolist()) == list(range(50))
    fewer = one_face_each(persons, np.random.default_rng(0), 20)
    assert len(fewer) == 20 and len(set(persons[fewer])) == 20


def test_a_gallery_of_too_few_people_has_no_table_of_its_own():
    xb, names = face_like(400, people=MIN_CALIBRATION_PEOPLE - 1)
    persons = person_numbers(names)
    assert len(set(names)) < MIN_CALIBRATION_PEOPLE
    assert calibrate(flat(xb), xb, persons, np.random.default_rng(0)) is None


def test_a_table_reads_back_as_written_and_a_damaged_one_reads_as_none():
    table = Calibration(tuple(float(c) for c in np.linspace(0.1, 0.5, len(LEVELS))), people=123)
    assert Calibration.from_json(table.to_json()) == table
    written = table.to_json()
    for damaged in ({}, None, [], {**written, "levels": [50]}, {**written, "cosines": written["cosines"][:-1]},
                    {**written, "cosines": ["x"] * len(LEVELS)}, {**written, "cosines": [2.0] * len(LEVELS)}):
        assert Calibration.from_json(damaged) is None, damaged
    tied = Calibration.from_json({**written, "cosines": [0.3] * len(LEVELS)})
    assert tied is not None and all(b > a for a, b in zip(tied.cosines, tied.cosines[1:], strict=False)), \
        "tied points are spaced apart, so the table rises strictly"


@pytest.mark.parametrize("pack", sorted(LFW_LIKENESS))
def test_each_pack_table_in_the_catalogue_rises_within_the_cosine_range(pack):
    cosines = LFW_LIKENESS[pack]
    assert len(cosines) == len(LEVELS) and all(-1 < c < 1 for c in cosines)
    assert all(b > a for a, b in zip(cosines, cosines[1:], strict=False))


def test_a_pack_without_a_table_uses_the_default_packs_and_says_so(caplog):
    assert pack_calibration(DEFAULT_PACK).cosines == LFW_LIKENESS[DEFAULT_PACK]
    assert pack_calibration(DEFAULT_PACK).source == f"pack {DEFAULT_PACK} on LFW"
    with caplog.at_level(logging.WARNING):
        other = pack_calibration("my-own-pack")
    assert other.cosines == LFW_LIKENESS[DEFAULT_PACK] and "my-own-pack" in other.source
    assert any("no likeness table for pack my-own-pack" in record.getMessage() for record in caplog.records)


def words(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("`", ""))


@pytest.mark.parametrize("document", ["README.md", "docs/architecture.md"])
def test_the_definition_is_written_in_the_same_words_in_the_docs(document):
    assert words(MEANING) in words((ROOT / document).read_text(encoding="utf-8"))


def test_search_help_gives_the_same_definition(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    assert words(MEANING) in words(capsys.readouterr().out)
