"""`index-builder build`: corpus -> embeddings (resumable, incremental) -> index -> published gallery.

The steps, each a function here: check the work folder's settings, sync it with the corpus
(index_builder.corpus, index_builder.state), embed what is new with an engine (index_builder.local_engine
or index_builder.ray_engine, which commit shards as they go), choose and fill the index
(index_builder.indexes), write the gallery (face_engine.gallery) and publish it atomically
(index_builder.publish).
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from tqdm import tqdm

from face_engine.fairness import person_numbers
from face_engine.gallery import (
    FORMAT_VERSION,
    MANIFEST,
    BuildReport,
    FaceRecord,
    FairnessReport,
    IndexSpec,
    Manifest,
    face_record,
    write_gallery,
)
from face_engine.imaging import REASONS as UNREADABLE
from face_engine.likeness import Calibration, calibrate, pack_calibration
from face_engine.memory import bytes_per_vector, peak_rss_mb
from face_engine.withheld import read_forget_list
from index_builder import local_engine, ray_engine
from index_builder.attention import gallery_fairness
from index_builder.corpus import Corpus, CorpusItem, display_name, read_corpus
from index_builder.indexes import (
    IndexChoice,
    OverMemoryBudget,
    Vectors,
    choose_index,
    held_out_strangers,
    set_search,
    train_and_add,
)
from index_builder.lock import build_lock
from index_builder.options import BuildOptions
from index_builder.pairs import RULE as PAIRS_RULE
from index_builder.pairs import mine_pairs, same_person_cosine
from index_builder.publish import cannot_write, gallery_home, publish
from index_builder.state import BuildState, FaceRow
from models.packs import ModelPack, resolve_pack

log = logging.getLogger(__name__)
LOOKALIKES = 5  # shown per visitor, as the kiosk shows them: what λ is measured on

# Skips that mean a file or a row of the corpus is broken (the build exits 1 after publishing), as
# against photos that are fine but add no face (no_face, duplicate, face_too_small, low_score).
BAD_FILE_REASONS = frozenset(UNREADABLE) | {"outside_corpus", "duplicate_row", "unreadable_folder", "undecodable_name"}


class BuildError(RuntimeError):
    """The build cannot go on; the live gallery is untouched."""


Engine = Callable[[list[CorpusItem], BuildState, ModelPack, BuildOptions], tuple[int, list[str]]]
ENGINES: dict[str, Engine] = {"local": local_engine.embed, "ray": ray_engine.embed_with_ray}


@dataclass(frozen=True)
class Embedding:
    """What this run's engine did: faces embedded, the providers it ran on, and how long it took."""

    faces: int
    providers: list[str]
    seconds: float


@dataclass
class Collected:
    """The corpus as read, what this run must embed, and (once embedded) the state's faces in
    gallery order with the skips by reason."""

    corpus: Corpus
    todo: list[CorpusItem]
    removed: int
    rows: list[FaceRow] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    low_quality: int = 0  # faces left out by --min-quality
    by_key: dict[str, CorpusItem] = field(init=False)

    def __post_init__(self) -> None:
        self.by_key = {item.key: item for item in self.corpus.items}

    def item(self, row: FaceRow) -> CorpusItem:
        return self.by_key[row.key]

    @property
    def identities(self) -> list[str]:
        return [self.item(row).identity for row in self.rows]


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
    except BrokenProcessPool:  # the OOM-killer, or a crash inside a decoder
        raise BuildError("a worker process died while reading photos (killed by the system, perhaps for lack of "
                         "memory); finished shards are kept: rerun to resume, with fewer --workers if memory "
                         "is short") from None


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
        settings = _check_settings(state, work, pack, options)
        collected = _sync(state, options)
        embedding = _embed(collected.todo, state, pack, options)
        collected.rows, collected.skipped, collected.low_quality = _gallery_rows(state, collected, options)
        content_id = _content_id(settings, collected, options)
        live = _live_manifest(options.out)
        if not collected.todo and not collected.removed and live and live.build.content_id == content_id:
            return {**asdict(live.build), "photos_processed_this_run": 0, "faces_embedded_this_run": 0,
                    "up_to_date": True, "published": str(options.out.resolve()),
                    "wall_seconds": round(time.time() - started, 2)}
        report = _report(collected, embedding, options, content_id)
        report["published"] = str(_write_and_publish(state, collected, pack, options, report, started))
        try:
            (work / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        except OSError as error:  # published already: say so, not "the live gallery is unchanged"
            log.warning("published %s, but its report could not be written: %s", report["published"], error)
        return report
    finally:
        state.close()


def _check_settings(state: BuildState, work: Path, pack: ModelPack, options: BuildOptions) -> dict[str, str]:
    """The settings that shape every embedding, saved in the work folder; a work folder made with
    other settings (or by an older index-builder) is refused, never mixed in."""
    outdated = state.outdated()
    if outdated:
        raise BuildError(f"the work folder {work} was made by an older index-builder ({outdated}); "
                         "rerun with --fresh to start over")
    face_filter = options.face_filter
    settings = {"recognizer": pack.recognizer_id, "detector": pack.detector_path.name, "faces": face_filter.faces,
                "min_face": str(face_filter.min_face), "min_score": str(face_filter.min_score)}
    previous = state.settings()
    if previous and previous != settings:
        changed = ", ".join(f"{k}: {previous.get(k)} -> {v}" for k, v in settings.items() if previous.get(k) != v)
        raise BuildError(f"the work folder {work} holds a build made with other settings ({changed}); "
                         "rerun with --fresh to start over")
    state.save_settings(settings)
    return settings


def _sync(state: BuildState, options: BuildOptions) -> Collected:
    """Read the corpus and bring the state up to it: what is still to embed, and what left."""
    corpus = read_corpus(options.corpus, options.allow_outside)
    todo, removed = state.sync(corpus.items)
    state.remove_unreferenced_shards()
    log.info("corpus %s: %d photos, %d to process, %d removed since the last build",
             options.corpus, len(corpus.items), len(todo), removed)
    return Collected(corpus, todo, removed)


def _embed(todo: list[CorpusItem], state: BuildState, pack: ModelPack, options: BuildOptions) -> Embedding:
    started = time.time()
    faces, providers = ENGINES[options.engine](todo, state, pack, options)
    return Embedding(faces, providers, time.time() - started)


def _gallery_rows(state: BuildState, collected: Collected,
                  options: BuildOptions) -> tuple[list[FaceRow], dict[str, int], int]:
    """Every face in the state of --min-quality or more, in gallery order, the skips by reason and
    the faces left out for their quality; BuildError when there is no face at all. The state keeps
    every face, so another --min-quality needs no new embedding."""
    found = _without_forgotten(state, collected, state.gallery_rows(), options.out)
    rows = [row for row in found if row.quality[0] >= options.min_quality]
    skipped = dict(Counter(state.skip_counts()) + collected.corpus.refused)  # the reader's refusals are skips too
    if not rows:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(skipped.items()))
        below = f"; {len(found)} face(s) below --min-quality {options.min_quality}" if found else ""
        raise BuildError(f"no face was found in the {len(collected.corpus.items)} file(s) of {options.corpus} "
                         f"(skipped: {reasons}{below}): nothing to publish")
    return rows, skipped, len(found) - len(rows)


def _without_forgotten(state: BuildState, collected: Collected, rows: list[FaceRow], out: Path) -> list[FaceRow]:
    """`rows` less the faces of people on the gallery's forget list (by name, or from a photo that
    showed them), whose photos the state then marks forgotten: their pictures leave it too."""
    forget = read_forget_list(gallery_home(out))
    gone = [row for row in rows if forget.covers(collected.item(row).identity, row.sha1)]
    if not gone:
        return rows
    state.withhold({row.key for row in gone})
    log.info("%d face(s) of forgotten people left out", len(gone))
    return [row for row in rows if not forget.covers(collected.item(row).identity, row.sha1)]


def _content_id(settings: dict[str, str], collected: Collected, options: BuildOptions) -> str:
    """What the published gallery is made of; names and captions are part of it (a corrected
    caption is a new gallery), and so are the options that choose its index."""
    texts = [(collected.item(row).identity, collected.item(row).caption, collected.item(row).source)
             for row in collected.rows]
    where = [(row.key, row.face, row.shard, row.row) for row in collected.rows]
    index = (options.index, options.index_params, options.budget_ms, options.memory_budget_bytes, options.min_quality,
             options.kiosk_memory_bytes)
    # the format too: a gallery of an older format is rebuilt (its content gains what the new one adds)
    return hashlib.sha1(repr((settings, where, texts, index, FORMAT_VERSION, PAIRS_RULE)).encode()).hexdigest()


def _report(collected: Collected, embedding: Embedding, options: BuildOptions, content_id: str) -> dict[str, Any]:
    """The build report (report.json and the manifest's `build`); wall_seconds is filled in last."""
    todo, skipped, seconds = collected.todo, collected.skipped, embedding.seconds
    return {
        "corpus": str(options.corpus),
        "photos_in_corpus": len(collected.corpus.items),
        "photos_processed_this_run": len(todo),
        "photos_removed_since_last_build": collected.removed,
        "faces_embedded_this_run": embedding.faces,
        "gallery_faces": len(collected.rows),
        "identities": len({name for name in collected.identities if name}),
        "photos_with_faces": len({row.key for row in collected.rows}),
        "skipped": skipped,
        "faces_below_min_quality": collected.low_quality,
        "min_quality": options.min_quality,
        "bad_files": sum(count for reason, count in skipped.items() if reason in BAD_FILE_REASONS),
        "truncated": dict(collected.corpus.truncated),
        "warnings": collected.corpus.warnings,
        "embed_seconds": round(seconds, 2),
        "faces_per_second": round(embedding.faces / seconds, 2) if embedding.faces else None,
        "photos_per_second": round(len(todo) / seconds, 2) if todo else None,
        "wall_seconds": None,
        "workers": options.workers,
        "device": options.device,
        "engine": options.engine,
        "providers": embedding.providers,
        "faiss_gpus": faiss.get_num_gpus(),
        "content_id": content_id,
    }


def _write_and_publish(state: BuildState, collected: Collected, pack: ModelPack, options: BuildOptions,
                       report: dict[str, Any], started: float) -> Path:
    """Choose and fill the index, write the gallery beside the live one and publish it; returns the
    version folder."""
    xb = state.vector_blocks(collected.rows)
    index_started = time.time()
    choice, index, strangers, index_stage = _index_for(xb, collected.identities, options)
    report["index_seconds"] = round(time.time() - index_started, 2)
    report.update(index_stage)
    quality = np.array([row.quality for row in collected.rows], np.float32)
    measures = people_measures(index, xb, collected.identities, quality, report["index_seconds"], options.progress,
                               pack.id)
    faces = _face_records(collected)
    report["wall_seconds"] = round(time.time() - started, 2)
    manifest = _manifest(pack, options, xb, choice, strangers, report, measures.fairness, measures.likeness)
    return publish(options.out, xb, lambda folder: write_gallery(folder, manifest, index, faces,
                                                                 state.pictures(collected.rows), measures.hubness,
                                                                 quality, measures.pairs))


@dataclass(frozen=True)
class PeopleMeasures:
    """What a build measures on who is in the gallery (people_measures)."""

    hubness: np.ndarray
    fairness: FairnessReport
    likeness: Calibration | None
    pairs: np.ndarray  # the attract loop's lookalike pairs (index_builder.pairs)


def people_measures(index: faiss.Index, xb: Vectors, identities: list[str], quality: np.ndarray,
                    index_seconds: float, progress: bool, pack: str) -> PeopleMeasures:
    """What depends on who else is in the gallery: each face's hubness, the fair policy's λ, the
    likeness table and the attract pairs (so a gallery less one person measures them again)."""
    # hubness and the likeness table read the gallery's vectors at random: one float copy (5.1 GB at 10^7)
    vectors = xb[np.arange(len(xb))]
    hub, fairness = _hubness(index, vectors, identities, quality[:, 0], index_seconds, progress)
    persons = person_numbers(identities)
    likeness = calibrate(index, vectors, persons, np.random.default_rng(0))
    same_person = same_person_cosine(likeness or pack_calibration(pack))
    started = time.time()
    pairs = mine_pairs(vectors, persons, quality, same_person, np.random.default_rng(0))
    log.info("%d attract pairs mined in %.1f s (below cosine %.3f)", len(pairs), time.time() - started, same_person)
    return PeopleMeasures(hub, fairness, likeness, pairs)


def _hubness(index: faiss.Index, xb: np.ndarray, identities: list[str], quality: np.ndarray | None,
             index_seconds: float, progress: bool) -> tuple[np.ndarray, FairnessReport]:
    """r_g of every face (it depends on the whole gallery: recomputed on every build) and the λ
    measured best for this gallery."""
    with tqdm(total=len(xb), unit="face", desc="hubness", disable=not progress, file=sys.stderr) as bar:
        hub, fairness = gallery_fairness(index, xb, identities, LOOKALIKES, index_seconds, bar.update, quality)
    log.info("hubness of %d faces in %.1f s; fairness λ %s chosen", len(xb), fairness.seconds, fairness.lambda_)
    return hub, fairness


def _manifest(pack: ModelPack, options: BuildOptions, xb: Vectors, choice: IndexChoice, strangers: int,
              report: dict[str, Any], fairness: FairnessReport, likeness: Calibration | None) -> Manifest:
    recall = choice.measured["recall@5"]
    return Manifest(
        pack=pack.id,
        pack_source=options.pack,
        recognizer=pack.recognizer_id,
        detector=pack.detector_path.name,
        dim=xb.dim,
        metric="inner_product",
        count=len(xb),
        identities=report["identities"],
        index=IndexSpec(choice.factory, choice.search_params, choice.reason, choice.measurements, strangers,
                        choice.settings, bytes_per_vector(choice.factory, xb.dim)),
        recall={"recall@5_vs_exact_on_strangers": recall},
        build=BuildReport(**report),
        options=options.recorded(),
        built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        fairness=fairness,
        likeness=likeness,
    )


def _face_records(collected: Collected) -> list[FaceRecord]:
    faces = []
    for i, row in enumerate(collected.rows):
        item = collected.item(row)
        faces.append(face_record(i, image=item.path, identity=item.identity, display_name=display_name(item.identity),
                                 caption=item.caption, source=item.source, **row.box._asdict(), score=row.score,
                                 photo_sha1=row.sha1, photo_face=row.face, source_side=row.source_side))
    return faces


def _index_for(xb: Vectors, identities: list[str], options: BuildOptions
               ) -> tuple[IndexChoice, faiss.Index, int, dict[str, float]]:
    """Choose the index on held-out strangers (whole people the measured index never saw), then
    build the chosen one on every vector, streamed from the shards. Returns the choice, the index,
    the strangers counted and the stage's memory (ru_maxrss: the process's peak so far)."""
    rss_before = peak_rss_mb()
    use_gpu = faiss.get_num_gpus() > 0
    strangers = held_out_strangers(identities, np.random.default_rng(0))
    rest = xb.without(strangers) if len(strangers) < len(xb) else xb
    forced = (options.index, options.index_params) if options.index else None
    try:
        choice = choose_index(rest, xb[strangers], options.budget_ms, use_gpu, gallery_size=len(xb),
                              memory_budget_bytes=options.memory_budget_bytes, forced=forced,
                              kiosk_memory_bytes=options.kiosk_memory_bytes)
    except OverMemoryBudget as error:
        raise BuildError(f"{error}; raise --memory-budget or --kiosk-memory, or build on a larger machine") from None
    except (RuntimeError, ValueError) as error:  # a forced factory or parameter faiss (or the size rule) does not know
        if forced is None:
            raise
        raise BuildError(f"--index {options.index} {options.index_params}: faiss refused it "
                         f"({str(error).strip().splitlines()[-1][:200]})") from None
    choice.index = None  # measured on all but the strangers: dropped before the final index is built
    index = train_and_add(choice.factory, xb, use_gpu)
    set_search(index, choice.settings)
    stage = {"index_stage_peak_rss_mb": peak_rss_mb(),
             "peak_rss_mb_before_index_stage": rss_before}
    return choice, index, len(strangers), stage


def _live_manifest(out: Path) -> Manifest | None:
    try:
        return Manifest.from_json(json.loads((out / MANIFEST).read_text()))
    except (OSError, ValueError):  # ManifestError is a ValueError: a damaged gallery is rebuilt
        return None
