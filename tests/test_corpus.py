"""The corpus reader on hostile corpora: repeated and outside manifest rows, linked person folders
and link loops, malformed manifests, and long or multi-line names and captions. Built on real LFW
photos where the build report or the gallery matters."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import copy_lfw_people
from face_engine.gallery import Gallery
from index_builder.build import BuildOptions, build
from index_builder.cli import main
from index_builder.corpus import CorpusError, read_corpus


def options(corpus: Path, out: Path, **overrides) -> BuildOptions:
    return BuildOptions(corpus=corpus, out=out, workers=2, progress=False, **overrides)


def gallery_faces(out: Path) -> list[tuple[str, str, str]]:
    """(image, identity, caption) of every face, in gallery order."""
    gallery = Gallery(out, use_gpu=False)
    rows = gallery.db.execute("SELECT image, identity, caption FROM faces ORDER BY id").fetchall()
    gallery.close()
    return rows


def report_of(out: Path) -> dict:
    return json.loads((out.parent / f"{out.name}.d" / "work" / "report.json").read_text())


@pytest.mark.slow
def test_a_repeated_manifest_row_keeps_the_first_row_and_is_counted(tmp_path, capsys):
    photos = copy_lfw_people(tmp_path / "files", {"Zico": 2, "Hugo_Chavez": 2})
    first = photos[0].relative_to(tmp_path)
    manifest = tmp_path / "corpus.csv"
    manifest.write_text("path,name\n" + "".join(f"{p.relative_to(tmp_path)},Person {i}\n" for i, p in enumerate(photos))
                        + f"./{first},Someone Else\n", encoding="utf-8")
    out = tmp_path / "gallery"
    assert main(["build", str(manifest), "--out", str(out), "--workers", "2"]) == 1  # a repeated row is a bad row
    assert f"warning: {manifest}: line 6 repeats the path of line 2 (kept line 2)" in capsys.readouterr().err
    report = report_of(out)
    assert report["skipped"] == {"duplicate_row": 1} and report["gallery_faces"] == 4
    assert [(image, identity) for image, identity, _ in gallery_faces(out) if image.endswith(first.name)] == [
        (str(photos[0]), "Person 0")]


@pytest.mark.slow
def test_manifest_paths_outside_its_folder_are_refused_unless_allowed(tmp_path):
    inside = copy_lfw_people(tmp_path / "corpus" / "files", {"Zico": 2})
    outside = copy_lfw_people(tmp_path / "elsewhere", {"Hugo_Chavez": 3})
    (tmp_path / "corpus" / "link_out.jpg").symlink_to(outside[2])
    manifest = tmp_path / "corpus" / "corpus.jsonl"
    rows = [{"path": f"files/Zico/{p.name}", "name": "Zico"} for p in inside] + [
        {"path": f"../elsewhere/Hugo_Chavez/{outside[0].name}", "name": "Hugo"},
        {"path": str(outside[1]), "name": "Hugo"},
        {"path": "link_out.jpg", "name": "Hugo"}]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    refused = build(options(manifest, tmp_path / "refused"))
    assert refused["skipped"] == {"outside_corpus": 3} and refused["gallery_faces"] == 2
    assert {identity for _, identity, _ in gallery_faces(tmp_path / "refused")} == {"Zico"}

    allowed = tmp_path / "allowed"
    assert main(["build", str(manifest), "--out", str(allowed), "--workers", "2", "--allow-outside"]) == 0
    assert report_of(allowed)["skipped"] == {} and report_of(allowed)["gallery_faces"] == 5


@pytest.mark.slow
def test_linked_person_folders_build_a_gallery_named_by_the_links_and_a_loop_ends(tmp_path):
    library = tmp_path / "library"
    copy_lfw_people(library, {"Zico": 2, "Hugo_Chavez": 2})
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "Zico_Star").symlink_to(library / "Zico")
    (corpus / "Hugo").symlink_to(library / "Hugo_Chavez")
    (library / "Zico" / "back_to_the_corpus").symlink_to(corpus)  # a loop through both trees
    report = build(options(corpus, tmp_path / "gallery"))
    assert report["gallery_faces"] == 4 and report["skipped"] == {"symlink_loop": 1}
    assert sorted({identity for _, identity, _ in gallery_faces(tmp_path / "gallery")}) == ["Hugo", "Zico_Star"]


def test_a_folder_with_no_photo_says_what_it_found(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    (tmp_path / "empty_person").mkdir()
    corpus.mkdir()
    (corpus / "Someone").symlink_to(tmp_path / "empty_person")
    (corpus / "again").symlink_to(corpus)
    (corpus / ".DS_Store").write_bytes(b"\0")
    assert main(["build", str(corpus), "--out", str(tmp_path / "gallery")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"index-builder: no photo found in {corpus}: 2 folder(s) read (1 through symlinks), "
        "left out: hidden 1, symlink_loop 1")


def test_a_folder_tree_reads_each_linked_folder_once(tmp_path):
    people = copy_lfw_people(tmp_path / "corpus" / "people", {"Zico": 2})
    (tmp_path / "corpus" / "Zico_again").symlink_to(people[0].parent)
    found = read_corpus(tmp_path / "corpus")
    assert [item.key for item in found.items] == ["Zico_again/Zico_0001.jpg", "Zico_again/Zico_0002.jpg"]
    assert found.refused == {"repeated_folder": 1}


MALFORMED = [
    ("bad_json.jsonl", b'{"path": "a.jpg"}\n{"path": "b.jpg"}\n\n{"path": "c.jpg",\n', "line 4: not JSON"),
    ("array.jsonl", b'{"path": "a.jpg"}\n["a.jpg", "Zico"]\n', "line 2: an array, not an object"),
    ("number.jsonl", b'{"path": "a.jpg"}\n5\n', "line 2: a number, not an object"),
    ("string.jsonl", b'"a.jpg"\n', "line 1: a string, not an object"),
    ("path_number.jsonl", b'{"path": "a.jpg"}\n{"path": 5}\n', "line 2: `path` is a number, not text"),
    ("name_object.jsonl", b'{"path": "a.jpg", "name": {"first": "Zico"}}\n', "line 1: `name` is an object, not text"),
    ("caption_bool.jsonl", b'{"path": "a.jpg", "caption": true}\n', "line 1: `caption` is true or false, not text"),
    ("no_path.jsonl", b'{"path": "a.jpg"}\n{"name": "Zico"}\n', "line 2: no `path`"),
    ("empty_path.jsonl", b'{"path": "a.jpg"}\n{"path": " "}\n', "line 2: empty `path`"),
    ("nul_path.jsonl", b'{"path": "a.jpg\\u0000.png"}\n', "line 1: `path` holds a character no file name can"),
    ("deep.jsonl", b'{"path": "a.jpg"}\n' + b"[" * 100_000 + b"\n", "line 2: not JSON (nested too deeply)"),
    ("no_path_column.csv", b"file,name\na.jpg,Zico\n", "line 1: no `path` column"),
    ("empty_path.csv", b"path,name\na.jpg,Zico\n,Zico\n", "line 3: empty `path`"),
    ("extra_field.csv", b"path,name,caption\na.jpg,Zico,at home, in Rio\n", "line 2: 4 fields under 3 columns"),
    ("open_quote.csv", b'path,name\na.jpg,Zico\nb.jpg,"Zico\n', "line 3: not CSV (unexpected end of data)"),
    ("utf16.csv", "path,name\na.jpg,Zico\n".encode("utf-16"), "line 1: not UTF-8 text (save it as UTF-8)"),
    ("latin1.csv", "path,name\na.jpg,Zico\nb.jpg,José\n".encode("latin-1"),
     "line 3: not UTF-8 text (save it as UTF-8)"),
    ("nul.jsonl", b'{"path": "a.jpg"}\n{"path": "b.jpg\x00"}\n', "line 2: a NUL byte, so not UTF-8 text"),
]


@pytest.mark.parametrize("name, data, says", MALFORMED, ids=[case[0] for case in MALFORMED])
def test_a_malformed_manifest_names_its_line_and_what_is_wrong(tmp_path, name, data, says):
    manifest = tmp_path / name
    manifest.write_bytes(data)
    with pytest.raises(CorpusError) as error:
        read_corpus(manifest)
    assert str(error.value).startswith(f"{manifest}: {says}")
    assert "\n" not in str(error.value)


def test_manifest_rows_all_outside_say_so(tmp_path):
    manifest = tmp_path / "corpus.jsonl"
    manifest.write_text('{"path": "../../../../etc/hostname"}\n{"path": "/etc/passwd"}\n')
    with pytest.raises(CorpusError, match=r"its 2 rows were refused \(outside_corpus 2\); paths must lie inside "):
        read_corpus(manifest)


def test_a_five_megabyte_caption_and_a_long_name_are_cut_and_counted(tmp_path):
    photos = copy_lfw_people(tmp_path, {"Zico": 2})
    long_name, caption = "N" * 81, "a long caption " * 350_000
    (tmp_path / "corpus.csv").write_text(f'path,name,caption,source\nZico/{photos[0].name},{long_name},"{caption}",'
                                         f'{"s" * 200}\nZico/{photos[1].name},Zico,short,\n')
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"path": f"Zico/{photos[0].name}", "name": long_name,
                                                       "caption": caption, "source": "s" * 200}) + "\n")
    for manifest in ("corpus.csv", "corpus.jsonl"):
        found = read_corpus(tmp_path / manifest)
        assert found.truncated == {"name": 1, "caption": 1}
        item = found.items[0]
        assert (item.identity, item.caption) == ("N" * 79 + "…", caption[:199].rstrip() + "…")
        assert item.source == "s" * 200


@pytest.mark.slow
def test_names_and_captions_reach_the_gallery_as_one_line_of_plain_text_of_bounded_length(tmp_path):
    photos = copy_lfw_people(tmp_path, {"Zico": 2, "Hugo_Chavez": 1})
    rows = [{"path": f"Zico/{photos[0].name}", "name": "Zico\n\u202eevil",
             "caption": '<img src="/etc/hostname"><b>bold</b>\nsecond line\tand a tab\x00'},
            {"path": f"Zico/{photos[1].name}", "name": "Z" * 500, "caption": "c" * 5_000_000},
            {"path": f"Hugo_Chavez/{photos[2].name}", "name": "Hugo", "caption": "first\u2028second"}]
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = build(options(tmp_path / "corpus.jsonl", tmp_path / "gallery"))
    assert report["truncated"] == {"name": 1, "caption": 1}
    faces = gallery_faces(tmp_path / "gallery")
    assert [(identity, caption) for _, identity, caption in faces] == [
        ("Hugo", "first second"),
        ("Zico  evil", '<img src="/etc/hostname"><b>bold</b> second line and a tab'),
        ("Z" * 79 + "…", "c" * 199 + "…")]
    assert os.path.getsize(tmp_path / "gallery" / "metadata.sqlite") < 1_000_000


@pytest.mark.slow
def test_a_corrected_caption_is_republished_though_no_photo_changed(tmp_path):
    photos = copy_lfw_people(tmp_path, {"Zico": 2})
    manifest = tmp_path / "corpus.csv"

    def write(caption: str) -> None:
        manifest.write_text("path,name,caption\n" + "".join(
            f"Zico/{photo.name},Zico,{caption}\n" for photo in photos), encoding="utf-8")

    write("a typo")
    out = tmp_path / "gallery"
    build(options(manifest, out))
    write("corrected")
    assert not build(options(manifest, out)).get("up_to_date")
    assert {caption for _, _, caption in gallery_faces(out)} == {"corrected"}
    assert build(options(manifest, out))["up_to_date"] is True
