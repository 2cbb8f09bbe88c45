"""`index-builder build`: corpus -> embeddings (resumable, incremental) -> index -> published gallery.

Stages: worker processes read, decode, detect and align photos (index_builder.worker); this process
embeds their crops in batches, writes shards as it goes (index_builder.state), then chooses and
fills the index (index_builder.indexes) and publishes atomically (index_builder.publish).
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import resource
import shutil
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from tqdm import tqdm

from face_engine.engine import open_recognizer
from face_engine.gallery import FORMAT, FORMAT_VERSION, INDEX_FILE, METADATA_FILE, PORTRAITS, THUMBNAILS
from face_engine.imaging import REASONS as UNREADABLE
from face_engine.memory import bytes_per_vector
from index_builder.corpus import CorpusItem, display_name, read_corpus
from index_builder.indexes import (
    IndexChoice,
    OverMemoryBudget,
    Vectors,
    choose_index,
    default_memory_budget,
    held_out_strangers,
    set_search,
    train_and_add,
)
from index_builder.lock import build_lock
from index_builder.publish import cannot_write, face_record, gallery_home, publish, write_gallery
from index_builder.state import BuildState
from index_builder.worker import FaceFilter, PhotoResult, init_worker, process_photo
from models.packs import resolve_pack

log = logging.getLogger(__name__)


IN_FLIGHT_PER_WORKER = 32

# Skips that mean a file or a row of the corpus is broken (the build exits 1 after publishing), as
# against photos that are fine but add no face (no_face, duplicate, face_too_small, low_score).
BAD_FILE_REASONS = frozenset(UNREADABLE) | {"outside_corpus", "duplicate_row", "unreadable_folder", "undecodable_name"}


class BuildError(RuntimeError):
    """The build cannot go on; the live gallery is untouched."""


@dataclass
class BuildOptions:
    corpus: Path
    out: Path
    pack: str = "sface"
    device: str = "auto"
    workers: int = max(1, os.cpu_count() or 1)
    batch: int = 32
    faces: str = "largest"
    min_face: float = 0.0
    min_score: float = 0.0
    fresh: bool = False
    shard_size: int = 1024
    budget_ms: float = 20.0
    memory_budget_bytes: int = field(default_factory=default_memory_budget)  # for the gallery's index
    index: str | None = None  # a faiss factory string forced for experiments; None: chosen by measurement
    index_params: dict[str, Any] = field(default_factory=dict)  # search parameters of the forced index
    engine: str = "local"  # or "ray"
    address: str | None = None  # a Ray cluster; None starts a local Ray instance
    allow_outside: bool = False  # manifest paths may lead outside the manifest's folder
    progress: bool = True
    wait: bool = False  # for another build of the same gallery to end, instead of refusing


def build(options: BuildOptions) -> dict[str, Any]:
    """Run the whole build, holding the gallery's build lock, and return its report (also written to
    the work folder and manifest). Raises BuildLocked when another build holds the lock."""
    _refuse_gallery_inside_corpus(options.corpus, options.out)
    work = gallery_home(options.out) / "work"
    try:
        with build_lock(options.out, options.wait):
            return _build(options)
    except (OSError, sqlite3.OperationalError) as error:  # disk full, read-only: the state stays resumable
        raise cannot_write(error, work) from None
    except sqlite3.DatabaseError as error:
        raise BuildError(f"the build state {work / 'state.sqlite'} is damaged ({error}); "
                         "rerun with --fresh to start over") from None


def _refuse_gallery_inside_corpus(corpus: Path, out: Path) -> None:
    """A gallery inside its own corpus tree would ingest its own thumbnails on every run (and a
    corpus inside the gallery's folder would lose photos to --fresh and pruning)."""
    if not corpus.is_dir():
        return
    tree = corpus.resolve()
    for place in (out.parent.resolve() / out.name, gallery_home(out).resolve()):
        if place.is_relative_to(tree):
            raise BuildError(f"--out {out} puts the gallery inside the corpus {corpus} (at {place}): it would "
                             "take in its own thumbnails; choose an --out outside the corpus")
        if tree.is_relative_to(place):
            raise BuildError(f"the corpus {corpus} lies inside the gallery's folder {place}; "
                             "move the corpus or choose another --out")


def _build(options: BuildOptions) -> dict[str, Any]:
    started = time.time()
    pack = resolve_pack(options.pack)
    pack.check()
    work = gallery_home(options.out) / "work"
    if options.fresh and work.exists():
        shutil.rmtree(work)
    state = BuildState(work)
    try:
        if not state.has_portraits():
            raise BuildError(f"the work folder {work} was made by an older index-builder (its faces have no "
                             "portraits); rerun with --fresh to start over")
        settings = {"recognizer": pack.recognizer_id, "detector": pack.detector_path.name,
                    "faces": options.faces, "min_face": str(options.min_face), "min_score": str(options.min_score)}
        previous = state.settings()
        if previous and previous != settings:
            changed = ", ".join(f"{k}: {previous.get(k)} -> {v}" for k, v in settings.items() if previous.get(k) != v)
            raise BuildError(f"the work folder {work} holds a build made with other settings ({changed}); "
                             "rerun with --fresh to start over")
        state.save_settings(settings)
        corpus = read_corpus(options.corpus, options.allow_outside)
        todo, removed = state.sync(corpus.items)
        state.remove_unreferenced_shards()
        log.info("corpus %s: %d photos, %d to process, %d removed since the last build",
                 options.corpus, len(corpus.items), len(todo), removed)

        embed_started = time.time()
        if options.engine == "ray":
            from index_builder.ray_engine import embed_with_ray

            embedded, providers = embed_with_ray(todo, state, pack, options)
        else:
            recognizer = open_recognizer(pack, options.device, batch_size=options.batch)
            embedded = _embed_photos(todo, state, recognizer, pack, options)
            providers = list(recognizer.session.get_providers())
        embed_seconds = time.time() - embed_started

        rows = state.gallery_rows()
        skipped = dict(Counter(state.skip_counts()) + corpus.refused)  # the reader's refusals are skips too
        if not rows:
            reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(skipped.items()))
            raise BuildError(f"no face was found in the {len(corpus.items)} file(s) of {options.corpus} "
                             f"(skipped: {reasons}): nothing to publish")
        by_key = {item.key: item for item in corpus.items}
        # names and captions are part of what is published: a corrected caption is a new gallery
        texts = [(by_key[row[0]].identity, by_key[row[0]].caption, by_key[row[0]].source) for row in rows]
        content_id = hashlib.sha1(repr((settings, [row[:4] for row in rows], texts)).encode()).hexdigest()
        live = _live_manifest(options.out)
        if not todo and not removed and live and live["build"].get("content_id") == content_id:
            return {**live["build"], "photos_processed_this_run": 0, "faces_embedded_this_run": 0,
                    "up_to_date": True, "published": str(options.out.resolve()),
                    "wall_seconds": round(time.time() - started, 2)}
        xb = state.vector_blocks(rows)
        identities = [by_key[row[0]].identity for row in rows]
        choice, index, strangers, index_stage = _index_for(xb, identities, options)

        report = {
            "corpus": str(options.corpus),
            "photos_in_corpus": len(corpus.items),
            "photos_processed_this_run": len(todo),
            "photos_removed_since_last_build": removed,
            "faces_embedded_this_run": embedded,
            "gallery_faces": len(rows),
            "identities": len({name for name in identities if name}),
            "photos_with_faces": len({row[0] for row in rows}),
            "skipped": skipped,
            "bad_files": sum(count for reason, count in skipped.items() if reason in BAD_FILE_REASONS),
            "truncated": dict(corpus.truncated),
            "warnings": corpus.warnings,
            "embed_seconds": round(embed_seconds, 2),
            "faces_per_second": round(embedded / embed_seconds, 2) if embedded else None,
            "photos_per_second": round(len(todo) / embed_seconds, 2) if todo else None,
            "wall_seconds": None,
            "workers": options.workers,
            "device": options.device,
            "engine": options.engine,
            "providers": providers,
            "faiss_gpus": faiss.get_num_gpus(),
            "content_id": content_id,
            **index_stage,
        }
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "pack": pack.id,
            "pack_source": options.pack,
            "recognizer": pack.recognizer_id,
            "detector": pack.detector_path.name,
            "dim": xb.dim,
            "metric": "inner_product",
            "count": len(rows),
            "identities": report["identities"],
            "index": {"factory": choice.factory, "search_params": choice.search_params, "reason": choice.reason,
                      "settings": choice.settings, "bytes_per_face": bytes_per_vector(choice.factory, xb.dim),
                      "measurements": choice.measurements, "stranger_queries": strangers},
            "recall": {"recall@5_vs_exact_on_strangers": next(
                m["recall@5"] for m in choice.measurements
                if m["factory"] == choice.factory and m["params"] == choice.search_params)},
            "build": report,
            "options": {k: str(v) for k, v in asdict(options).items() if k not in ("progress", "wait")},
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "files": {"index": INDEX_FILE, "metadata": METADATA_FILE, "thumbnails": THUMBNAILS, "portraits": PORTRAITS},
        }
        faces = [
            face_record(i, image=by_key[key].path, identity=by_key[key].identity,
                        display_name=display_name(by_key[key].identity), caption=by_key[key].caption,
                        source=by_key[key].source, x1=x1, y1=y1, x2=x2, y2=y2, score=score)
            for i, (key, _, _, _, x1, y1, x2, y2, score) in enumerate(rows)
        ]
        report["wall_seconds"] = round(time.time() - started, 2)
        version = publish(options.out, xb, lambda folder: write_gallery(
            folder, manifest, index, faces, state.pictures()))
        report["published"] = str(version)
        try:
            (work / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        except OSError as error:  # published already: say so, not "the live gallery is unchanged"
            log.warning("published %s, but its report could not be written: %s", version, error)
        return report
    finally:
        state.close()


def _index_for(xb: Vectors, identities: list[str], options: BuildOptions
               ) -> tuple[IndexChoice, faiss.Index, int, dict[str, float]]:
    """Choose the index on held-out strangers (whole people the measured index never saw), then
    build the chosen one on every vector, streamed from the shards. Returns the choice, the index,
    the strangers counted and the stage's memory (ru_maxrss: the process's peak so far)."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    use_gpu = faiss.get_num_gpus() > 0
    strangers = held_out_strangers(identities, np.random.default_rng(0))
    rest = xb.without(strangers) if len(strangers) < len(xb) else xb
    forced = (options.index, options.index_params) if options.index else None
    try:
        choice = choose_index(rest, xb[strangers], options.budget_ms, use_gpu, gallery_size=len(xb),
                              memory_budget_bytes=options.memory_budget_bytes, forced=forced)
    except OverMemoryBudget as error:
        raise BuildError(f"{error}; raise --memory-budget or build on a larger machine") from None
    except RuntimeError as error:  # a forced factory or parameter faiss does not know
        if forced is None:
            raise
        raise BuildError(f"--index {options.index} {options.index_params}: faiss refused it "
                         f"({str(error).strip().splitlines()[-1][:200]})") from None
    index = train_and_add(choice.factory, xb, use_gpu)
    set_search(index, choice.settings)
    stage = {"index_stage_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
             "peak_rss_mb_before_index_stage": rss_before}
    return choice, index, len(strangers), stage


def _live_manifest(out: Path) -> dict | None:
    try:
        return json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _embed_photos(todo: list[CorpusItem], state: BuildState, recognizer, pack, options: BuildOptions) -> int:
    """Process `todo` through the worker pool; embed crops as they arrive, a recognizer batch at a
    time, so detection in the workers overlaps embedding here; commit a shard every shard_size faces."""
    if not todo:
        return 0
    by_key = {item.key: item for item in todo}
    batch = Batch(recognizer.embed, recognizer.dim, options.batch)
    embedded = 0
    face_filter = FaceFilter(options.faces, options.min_face, options.min_score)
    # Pool.imap would read all of `todo` ahead and pile up results faster than they are embedded;
    # these slots bound the photos in flight, so memory stays flat on a corpus of any size.
    slots = threading.BoundedSemaphore(IN_FLIGHT_PER_WORKER * options.workers)

    def feed():
        for item in todo:
            slots.acquire()
            yield item

    context = multiprocessing.get_context("spawn")  # no forked copies of onnxruntime's threads
    # the bar is closed (its line ended) before an error propagates, so the error gets a line of its own
    with (context.Pool(options.workers, initializer=init_worker, initargs=(pack, options.device, face_filter)) as pool,
          tqdm(total=len(todo), unit="photo", disable=not options.progress, file=sys.stderr,
               mininterval=0.5 if sys.stderr.isatty() else 10, dynamic_ncols=True) as bar):
        for result in pool.imap(process_photo, feed(), chunksize=4):
            slots.release()
            batch.add(by_key[result.key], result, state)
            if batch.faces >= options.shard_size:
                embedded += batch.commit(state)
            bar.update()
            bar.set_postfix(faces=embedded + batch.faces, refresh=False)
        embedded += batch.commit(state)
    return embedded


class Batch:
    """Photos processed since the last shard: their rows, their faces, and their embeddings,
    computed a recognizer batch at a time as crops arrive."""

    def __init__(self, embed: Callable[[np.ndarray], np.ndarray] | None, dim: int, batch_size: int) -> None:
        self.embed, self.dim, self.batch_size = embed, dim, batch_size
        self.items: list[tuple] = []
        self.faces_rows: list[tuple] = []
        self.crops: list[np.ndarray] = []
        self.vectors: list[np.ndarray] = []
        self.sha1s: dict[str, str] = {}

    @property
    def faces(self) -> int:
        return len(self.faces_rows)

    def add(self, item: CorpusItem, result: PhotoResult, state: BuildState) -> None:
        row = [item.key, item.size, item.mtime_ns, result.sha1, result.reason, None]
        if not result.reason:
            original = self.sha1s.get(result.sha1) or state.original_of(result.sha1)
            if original:
                row[4:] = ["duplicate", original]
            else:
                self.sha1s[result.sha1] = item.key
                for face in range(len(result.boxes)):
                    self.faces_rows.append((result.key, face, len(self.faces_rows), result.boxes[face],
                                            result.scores[face], result.landmarks[face], result.thumbnails[face],
                                            result.portraits[face]))
                if result.vectors is not None:  # embedded already (by a Ray actor)
                    self._embed_pending()
                    self.vectors.append(result.vectors)
                else:
                    self.crops.extend(result.crops)
                    if len(self.crops) >= self.batch_size:
                        self._embed_pending()
        self.items.append(tuple(row))

    def _embed_pending(self) -> None:
        if self.crops:
            assert self.embed is not None, "crops arrived without a recognizer to embed them"
            self.vectors.append(self.embed(np.stack(self.crops)))
            self.crops = []

    def commit(self, state: BuildState) -> int:
        """Write the shard and its rows; returns the number of faces committed."""
        if not self.items:
            return 0
        self._embed_pending()
        vectors = np.concatenate(self.vectors) if self.vectors else np.zeros((0, self.dim), np.float32)
        state.commit(state.next_shard_name(), vectors, self.items, self.faces_rows)
        count = len(vectors)
        self.__init__(self.embed, self.dim, self.batch_size)
        return count
