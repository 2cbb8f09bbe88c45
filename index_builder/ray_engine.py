"""`build --engine ray`: the same per-photo work spread over a Ray cluster with Ray Data.

Reading and decoding is a CPU stage (plain tasks); detecting, aligning and embedding is an actor
stage, each actor loading the models once (on a GPU where the cluster has them). Results stream
back to this driver, which commits them to the same build state, in the same shards, as the local
engine: resuming, updating and publishing work the same.
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from face_engine.quality import COLUMNS as QUALITY_COLUMNS
from index_builder.corpus import CorpusItem
from index_builder.options import BuildOptions
from index_builder.state import BuildState, PendingShard
from index_builder.worker import FaceFilter, PhotoResult, find_faces, init_worker, read_photo
from models.packs import ModelPack

log = logging.getLogger(__name__)

DECODE_BATCH = 16
NO_CROPS = np.zeros((0, 112, 112, 3), np.uint8)


def decode_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """CPU stage: read and decode; unusable photos carry their reason instead of an image."""
    sha1s: list[str] = []
    reasons: list[str] = []
    images: list[np.ndarray | None] = []
    for key, path in zip(batch["key"], batch["path"], strict=True):
        read = read_photo(str(key), str(path))
        if isinstance(read, PhotoResult):
            sha1s.append(read.sha1)
            reasons.append(read.reason)
            images.append(None)
        else:
            sha1s.append(read[0])
            reasons.append("")
            images.append(read[1])
    return {"key": batch["key"], "sha1": np.array(sha1s, dtype=object), "reason": np.array(reasons, dtype=object),
            "image": _objects(images)}


class FaceEmbedder:
    """Actor stage: the pack's detector and recognizer, loaded once per actor."""

    def __init__(self, pack: ModelPack, device: str, face_filter: FaceFilter, batch: int) -> None:
        from face_engine.engine import open_recognizer

        init_worker(pack, device, face_filter)
        self.recognizer = open_recognizer(pack, device, batch_size=batch)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = []
        for key, sha1, reason, image in zip(batch["key"], batch["sha1"], batch["reason"], batch["image"], strict=True):
            result = PhotoResult(str(key), str(sha1), str(reason)) if reason else find_faces(str(key), str(sha1), image)
            results.append(result)
        crops = [r.crops for r in results if len(r.crops)]
        vectors = (self.recognizer.embed(np.concatenate(crops)) if crops
                   else np.zeros((0, self.recognizer.dim), np.float32))
        out, start = [], 0
        for result in results:
            count = len(result.crops)  # the crops are embedded: only their vectors travel back
            out.append(asdict(replace(result, crops=NO_CROPS, vectors=vectors[start:start + count])))
            start += count
        providers = list(self.recognizer.session.get_providers())
        return {"result": _objects(out), "providers": _objects([providers] * len(out))}


def _objects(values: Sequence[object]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def embed_with_ray(todo: list[CorpusItem], state: BuildState, pack: ModelPack,
                   options: BuildOptions) -> tuple[int, list[str]]:
    """Run the per-photo work on Ray and commit it in shards as the local engine does; returns the
    faces embedded and the providers the actors used."""
    import ray
    import ray.data

    shard = PendingShard(None, 0, options.batch)  # the actors embed; the driver only commits

    if not todo:
        return 0, []
    if not log.isEnabledFor(logging.INFO):  # Ray's own progress lines only with -v
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)
    if options.address:
        ray.init(address=options.address, log_to_driver=False, configure_logging=False)
    else:
        ray.init(num_cpus=options.workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = options.progress and sys.stderr.isatty()
        gpus = int(ray.cluster_resources().get("GPU", 0))
        # One actor per GPU; on CPUs Ray fuses decoding into the actors, so one actor per CPU.
        actors = gpus or int(ray.cluster_resources().get("CPU", options.workers))
        log.info("ray: %s, %d actor(s) on %s", ray.cluster_resources(), actors, "GPUs" if gpus else "CPUs")
        items = ray.data.from_items([{"key": item.key, "path": item.path} for item in todo],
                                    override_num_blocks=min(len(todo), max(actors, -(-len(todo) // DECODE_BATCH))))
        decoded = items.map_batches(decode_batch, batch_size=DECODE_BATCH, num_cpus=1)
        embedded = decoded.map_batches(
            FaceEmbedder, fn_constructor_args=(pack, options.device, options.face_filter, options.batch),
            batch_size=options.batch, compute=ray.data.ActorPoolStrategy(size=actors),
            num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1)
        by_key = {item.key: item for item in todo}
        faces, providers = 0, []
        for row in embedded.iter_rows():
            result = _photo_result(row["result"])
            providers = row["providers"]
            shard.add(by_key[result.key], result, state)
            if shard.faces >= options.shard_size:
                faces += shard.commit(state)
        faces += shard.commit(state)
        return faces, providers
    finally:
        ray.shutdown()


def _photo_result(record: dict[str, Any]) -> PhotoResult:
    return PhotoResult(**{**record, "vectors": np.asarray(record["vectors"], np.float32),
                          "qualities": np.asarray(record["qualities"], np.float32).reshape(-1, len(QUALITY_COLUMNS))})
