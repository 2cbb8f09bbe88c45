"""Memory of galleries: index sizes known before building, memory-mapped opening, the kiosk's check
before a hot swap, and search parameters that survive the manifest."""
from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from face_engine import memory
from face_engine.gallery import Gallery
from index_builder import indexes
from index_builder.indexes import train_and_add
from test_bench import synthetic_gallery
from test_indexes import brute_force, face_like


def gallery_with(folder, factory, settings, n=3000):
    """A synthetic gallery whose index is `factory` with `settings`, recorded as the builder does."""
    xb, names = face_like(n)
    synthetic_gallery(folder, xb, names)
    index = train_and_add(factory, xb, use_gpu=False)
    indexes.set_search(index, settings)
    faiss.write_index(index, str(folder / "index.faiss"))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["index"].update(factory=factory, search_params=indexes.search_params(settings), settings=settings,
                             bytes_per_face=memory.bytes_per_vector(factory, xb.shape[1]))
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder, xb


def test_a_reopened_gallery_searches_with_the_recorded_shortlists(tmp_path):
    settings = {"k_factor_rf": 4, "inner_k_factor": 48}
    folder, xb = gallery_with(tmp_path / "g", "PQ16x4fs,Refine(SQ8),RFlat", settings)
    gallery = Gallery(folder, use_gpu=False)
    assert gallery.manifest.index.search_params == {"k_factor_rf": 4}
    assert gallery.index.k_factor == 4
    assert faiss.downcast_index(gallery.index.base_index).k_factor == 48
    xq, _ = face_like(20, seed=5)
    _, I = gallery.search(xq, 5)
    expected = train_and_add("PQ16x4fs,Refine(SQ8),RFlat", xb, use_gpu=False)
    indexes.set_search(expected, settings)
    np.testing.assert_array_equal(I, expected.search(xq, 5)[1])


def test_flat_and_fp16_galleries_open_memory_mapped_and_search_the_same(tmp_path):
    folder, xb = gallery_with(tmp_path / "g", "SQfp16", {})
    assert memory.read_flags(folder / "index.faiss") == faiss.IO_FLAG_MMAP_IFC
    xq, _ = face_like(10, seed=6)
    _, I = Gallery(folder, use_gpu=False).search(xq, 5)
    assert indexes.recall_at(I, brute_force(xq, xb, 5), 5) == 1.0
    cost = memory.open_cost(folder / "index.faiss")
    assert cost["mmap"] and cost["open_seconds"] < 1 and cost["file_mb"] > 0


def test_fast_scan_files_are_read_whole_since_a_truncated_one_would_crash_under_mmap(tmp_path):
    folder, _ = gallery_with(tmp_path / "g", "PQ16x4fs,RFlat", {"k_factor_rf": 8})
    assert memory.read_flags(folder / "index.faiss") == 0


def test_expected_rss_counts_bytes_per_face(tmp_path):
    folder, xb = gallery_with(tmp_path / "g", "PQ16x4fs,RFlat", {"k_factor_rf": 8})
    manifest = Gallery(folder, use_gpu=False).manifest
    assert manifest.index.bytes_per_face == 16 / 2 + 4 * 32
    assert memory.expected_rss_bytes(manifest.index.bytes_per_face, manifest.count) == (
        int(136 * len(xb)) + memory.GALLERY_OVERHEAD_BYTES)


def test_the_kiosk_refuses_a_new_gallery_that_does_not_fit_beside_the_current_one(tmp_path, monkeypatch):
    pytest.importorskip("PySide6")
    from kiosk.worker import GalleryWatcher

    folder, _ = gallery_with(tmp_path / "g", "SQfp16", {}, n=500)
    delivered, refused = [], []
    watcher = GalleryWatcher(str(folder), delivered.append, refused.append)
    monkeypatch.setattr(memory, "available_bytes", lambda: 10 * 2**20)
    watcher._load(folder)
    assert not delivered and len(refused) == 1
    assert "needs about 64 MiB and only 10 MiB are free" in refused[0] and "\n" not in refused[0]
    monkeypatch.setattr(memory, "available_bytes", lambda: 2**40)
    watcher._load(folder)
    assert len(delivered) == 1 and len(refused) == 1


def test_the_build_state_streams_the_same_vectors_in_gallery_order(tmp_path):
    from index_builder.state import Box, BuildState, ItemRow, NewFace

    state = BuildState(tmp_path / "work")
    xb, _ = face_like(50)
    for shard, keys in (("000001", "qwerty"), ("000000", "asdfgh")):  # gallery order is by key, not by shard
        quality = (0.5, 0.5, 0.5, 0.5)
        rows = [NewFace(key, 0, i, Box(0, 0, 1, 1), 0.9, b"t", b"p", quality) for i, key in enumerate(keys)]
        items = [ItemRow(key, 1, 1, f"sha1-{key}", "") for key in keys]
        state.commit(shard, xb[:6] if shard == "000001" else xb[6:12], items, rows)
    rows = state.gallery_rows()
    streamed = state.vector_blocks(rows, block=5)
    assert len(streamed) == 12 and streamed.dim == 32
    np.testing.assert_array_equal(np.concatenate(list(streamed.blocks())), state.vectors(rows))
    state.close()


def test_with_a_gpu_a_gallery_whose_index_has_no_gpu_form_stays_on_the_cpu(tmp_path, monkeypatch):
    """faiss has no GPU form of 4-bit fast-scan or refinement: faked GPUs refuse such an index as
    faiss does, and the gallery opens and searches on the CPU instead of failing the kiosk."""
    folder, xb = gallery_with(tmp_path / "g", "PQ16x4fs,RFlat", {"k_factor_rf": 64})
    moved = []

    def to_gpus(index):
        if isinstance(faiss.downcast_index(index), faiss.IndexRefine):
            raise RuntimeError("Error in index_cpu_to_gpu: This index type is not implemented on GPU.")
        moved.append(index)
        return index

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", to_gpus)
    gallery = Gallery(folder)
    xq, _ = face_like(10, seed=7)
    _, I = gallery.search(xq, 5)
    assert not moved and indexes.recall_at(I, brute_force(xq, xb, 5), 5) >= 0.98

    flat, _ = gallery_with(tmp_path / "flat", "Flat", {})
    Gallery(flat)
    assert len(moved) == 1, "an index with a GPU form is moved to the GPUs"


@pytest.mark.parametrize("factory, expected", [
    ("Flat", 4 * 128),
    ("SQfp16", 2 * 128),
    ("PQ64x4fs,RFlat", 64 / 2 + 4 * 128),  # fast-scan codes, then the floats that re-rank their shortlist
    ("PQ64x4fs,Refine(SQ8),RFlat", 64 / 2 + 128 + 4 * 128),
    ("IVF64,Flat", 4 * 128 + 8),  # an inverted list keeps each vector's id
    ("HNSW32,Flat", 4 * 128 + 4 * 2 * 32 + 16),  # 2M links on level 0
])
def test_bytes_per_face_are_the_code_sizes_faiss_reports(factory, expected):
    assert memory.bytes_per_vector(factory, 128) == expected


def test_a_factory_faiss_cannot_make_has_no_size_and_is_left_to_the_gallery_s_checks(tmp_path):
    with pytest.raises(ValueError, match="faiss cannot make 'Bogus7'"):
        memory.bytes_per_vector("Bogus7", 128)
    folder = tmp_path / "g"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"dim": 128, "count": 10, "index": {"factory": "Bogus7"}}))
    assert memory.swap_refusal(folder) is None
