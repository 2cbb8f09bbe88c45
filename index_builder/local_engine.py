"""`build --engine local`: worker processes on this machine read, decode, detect and align photos
(index_builder.worker); this process embeds their crops a recognizer batch at a time, so detection
in the workers overlaps embedding here, and commits a shard every shard_size faces."""
from __future__ import annotations

import multiprocessing
import pickle
import shutil
import sys
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from pathlib import Path

from tqdm import tqdm

from face_engine.engine import open_recognizer
from index_builder.corpus import CorpusItem
from index_builder.options import BuildOptions
from index_builder.state import BuildState, PendingShard
from index_builder.worker import PhotoResult, init_worker, process_photo_into
from models.packs import ModelPack

IN_FLIGHT_PER_WORKER = 32


def embed(todo: list[CorpusItem], state: BuildState, pack: ModelPack, options: BuildOptions) -> tuple[int, list[str]]:
    """Process `todo` through the worker processes and commit it in shards; returns the faces
    embedded and the providers the recognizer used. A worker that dies (the OOM-killer, a crash in
    a decoder) raises BrokenProcessPool instead of leaving the build waiting for it forever."""
    recognizer = open_recognizer(pack, options.device, batch_size=options.batch)
    providers = list(recognizer.session.get_providers())
    if not todo:
        return 0, providers
    by_key = {item.key: item for item in todo}
    shard = PendingShard(recognizer.embed, recognizer.dim, options.batch)
    embedded = 0
    handoff = _empty_folder(state.work / "handoff")
    context = multiprocessing.get_context("spawn")  # no forked copies of onnxruntime's threads
    # the bar is closed (its line ended) before an error propagates, so the error gets a line of its own
    with (ProcessPoolExecutor(options.workers, mp_context=context, initializer=init_worker,
                              initargs=(pack, options.device, options.face_filter)) as pool,
          tqdm(total=len(todo), unit="photo", disable=not options.progress, file=sys.stderr,
               mininterval=0.5 if sys.stderr.isatty() else 10, dynamic_ncols=True) as bar):
        for result in _in_flight(pool, todo, IN_FLIGHT_PER_WORKER * options.workers, handoff):
            shard.add(by_key[result.key], result, state)
            if shard.faces >= options.shard_size:
                embedded += shard.commit(state)
            bar.update()
            bar.set_postfix(faces=embedded + shard.faces, refresh=False)
        embedded += shard.commit(state)
    shutil.rmtree(handoff, ignore_errors=True)
    return embedded, providers


def _in_flight(pool: ProcessPoolExecutor, todo: list[CorpusItem], most: int, handoff: Path) -> Iterator[PhotoResult]:
    """The results of `todo` in order, with at most `most` photos submitted and not yet taken:
    submitting them all would read the corpus ahead and pile up results faster than they are
    embedded; this keeps memory flat on a corpus of any size. Each result comes through a file of
    `handoff` (see process_photo_into)."""
    numbered = enumerate(todo)

    def submit(number: int, item: CorpusItem) -> Future[str]:
        return pool.submit(process_photo_into, item, str(handoff / f"{number}.pickle"))

    pending = deque(submit(*entry) for entry in islice(numbered, most))
    while pending:
        path = Path(pending.popleft().result())
        for entry in islice(numbered, 1):
            pending.append(submit(*entry))
        yield _take(path)


def _take(path: Path) -> PhotoResult:
    """The result a worker left in `path`, which is then removed."""
    with open(path, "rb") as file:
        result: PhotoResult = pickle.load(file)
    path.unlink()
    return result


def _empty_folder(folder: Path) -> Path:
    """`folder`, emptied of what a killed build left there."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder
