"""A week in an hour: many simulated visits, gallery swaps and exposure-ledger saves through the
kiosk's real InferenceWorker, with the process's resident memory, open files, threads, and the log,
ledger and heartbeat file sizes sampled; they must stay flat (first tenth against last tenth, in one
JSON result). Partway through, the disk fills up (RLIMIT_FSIZE 0 with SIGXFSZ ignored: no file may
grow) for a stretch of visits: the kiosk must keep serving and say so once for each file.

What is real: the models the gallery was built with, the gallery (a small one built from LFW unless
--gallery names one), the worker's analyse and search slots (the live view's analysis reused by the
capture, as in the kiosk; face alignment, the fair policy with the ledger's counts, the search, the
portraits decoded and scaled, the ledger's record), between_visitors after each visit (the ledger
handed to its writer thread, a waiting gallery swapped in), a freshly opened Gallery offered every
--swap-every visits (the ledger pruned to it), the kiosk's rotating log (one visit line each) and
its heartbeat file every --beat-every visits. What is reused so that a 2-core machine makes 100,000
visits in about an hour: each photo's detections (the detector runs once per photo) and each aligned
face's embedding (the recognizer runs once per distinct face crop; the same crop gives the same
embedding). Visitors are the photos of shared/data/photos, cycled.

    .venv/bin/python benchmarks/soak_kiosk.py [--visits 100000] [--gallery galleries/x] [--out ...]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import logging
import os
import resource
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"
PHOTOS = SHARED / "data" / "photos"
LFW_PEOPLE = {"Tony_Blair": 4, "Colin_Powell": 4, "Zico": 2, "George_W_Bush": 4, "Ariel_Sharon": 3,
              "Gerhard_Schroeder": 3, "Donald_Rumsfeld": 3, "Hugo_Chavez": 3}
DISK_FULL = (0.4, 0.5)  # the stretch of the run (as shares of its visits) with a full disk
FULL_SAYS = ("cannot be written", "could not be written", "not written to")


class CountingStderr(io.TextIOBase):
    """stderr as before, with the lines that say a file could not be written counted."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.full_lines: list[str] = []

    def write(self, text: str) -> int:
        self.full_lines += [line for line in text.splitlines() if any(says in line for says in FULL_SAYS)]
        return int(self.real.write(text))

    def flush(self) -> None:
        self.real.flush()


def own_folders(home: Path) -> None:
    """The kiosk's log, heartbeat and ledger in the soak's own folder, never the user's."""
    for name in ("XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        os.environ[name] = str(home / name.lower())


def small_gallery(home: Path) -> str:
    """A small real gallery built from LFW photos (with the default model pack)."""
    from index_builder.build import build
    from index_builder.options import BuildOptions

    corpus = home / "corpus"
    for person, count in LFW_PEOPLE.items():
        (corpus / person).mkdir(parents=True, exist_ok=True)
        for photo in sorted((SHARED / "data" / "lfw" / "images_deepfunneled" / person).iterdir())[:count]:
            (corpus / person / photo.name).write_bytes(photo.read_bytes())
    build(BuildOptions(corpus=corpus, out=home / "gallery", workers=1, progress=False))
    return str(home / "gallery")


def memoized(function: Callable[[np.ndarray], Any], key: Callable[[np.ndarray], object]) -> Callable[..., Any]:
    """`function`, its answer kept per `key` of its argument (the same photo or crop answers the same)."""
    answers: dict[object, Any] = {}

    def once(argument: np.ndarray) -> Any:
        name = key(argument)
        if name not in answers:
            answers[name] = function(argument)
        return answers[name]
    return once


def reuse_models(worker: Any) -> None:
    """Detections per photo (the frames are kept, so their ids stay theirs) and embeddings per
    aligned crop; everything between them runs as in the kiosk."""
    engine = worker.engine
    engine.detect = memoized(engine.detect, id)
    recognizer = engine.recognizer
    recognizer.embed = memoized(recognizer.embed, lambda crops: hashlib.blake2b(crops.tobytes()).digest())


def sizes(files: dict[str, list[Path]]) -> dict[str, int]:
    return {name: sum(path.stat().st_size for path in paths if path.exists()) for name, paths in files.items()}


def sample(visit: int, started: float, files: dict[str, list[Path]], served: int) -> dict[str, Any]:
    from index_builder.bench.common import rss_mb

    return {"visits": visit, "seconds": round(time.perf_counter() - started, 1), "rss_mb": round(rss_mb(), 1),
            "open_files": len(os.listdir("/proc/self/fd")), "threads": len(os.listdir("/proc/self/task")),
            "python_threads": threading.active_count(), "served": served,
            **{f"{name}_bytes": size for name, size in sizes(files).items()}}


def flatness(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Each measure's mean over the first and the last tenth of the samples, and its largest value."""
    tenth = max(1, len(samples) // 10)
    first, last = samples[:tenth], samples[-tenth:]
    measures = [name for name in samples[0] if name not in ("visits", "seconds", "served")]
    return {name: {"first_tenth": round(float(np.mean([s[name] for s in first])), 1),
                   "last_tenth": round(float(np.mean([s[name] for s in last])), 1),
                   "max": max(s[name] for s in samples)} for name in measures}


class Soak:
    """The worker and the files around it, one visit at a time."""

    def __init__(self, gallery: str, home: Path) -> None:
        from kiosk.flow import Flow
        from kiosk.heartbeat import Heartbeat
        from kiosk.ledger import Ledger
        from kiosk.log import log_path, setup_logging
        from kiosk.rates import Tally
        from kiosk.worker import InferenceWorker

        self.stderr = CountingStderr(sys.stderr)
        sys.stderr = self.stderr  # before the log's stderr handler takes it
        self.log_file = setup_logging()
        self.ledger = Ledger()
        self.heartbeat, self.flow, self.tally = Heartbeat(), Flow(), Tally()
        self.worker = InferenceWorker(gallery, "", "cpu", ledger=self.ledger)
        self.outcomes: list[Any] = []
        self.worker.searched.connect(self.outcomes.append)  # direct: the worker runs on this thread here
        failed: list[str] = []
        self.worker.failed.connect(failed.append)
        self.worker.start_up()
        if failed:
            raise SystemExit(f"soak: the worker did not start: {failed[0]}")
        reuse_models(self.worker)
        self.files = {"log": [log_path(), *(log_path().with_name(f"kiosk.log.{n}") for n in range(1, 4))],
                      "ledger": [self.ledger.path], "heartbeat": [self.heartbeat.path]}
        self.swaps = 0

    def visit(self, frame: np.ndarray) -> bool:
        """One visitor: the live view's analysis, the capture, its log line, then the visitor goes."""
        from kiosk.log import visit_line

        self.worker.analyse(frame)
        self.worker.search(frame, 5, time.perf_counter())
        outcome = self.outcomes.pop()
        self.tally.searched(outcome)
        scores = [match.score for pair in outcome.pairs for match in pair.matches]
        total = sum(outcome.timings_ms.values())
        logging.getLogger("kiosk.window").info(visit_line(self.tally.visits, outcome.faces, scores, total,
                                                          outcome.failure))
        self.worker.between_visitors()
        return bool(outcome.pairs)

    def swap(self, gallery: str) -> None:
        """A newly published version, opened as the loader thread opens it; swapped in between visitors."""
        from face_engine.gallery import Gallery

        self.worker.offer_gallery(Gallery(Path(gallery).resolve()))
        self.swaps += 1

    def beat(self) -> None:
        self.heartbeat.write(self.heartbeat.pulse("results", self.flow, self.tally, self.worker.info()))


def set_disk_full(full: bool, limit: tuple[int, int]) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, limit[1]) if full else limit)


def soak(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    from face_engine.imaging import read_image
    from kiosk.log import BACKUPS, LOG_BYTES

    own_folders(home)
    gallery = args.gallery or small_gallery(home)
    frames = [read_image(p) for p in sorted(PHOTOS.iterdir()) if p.suffix in (".jpg", ".png")]
    booth = Soak(gallery, home)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    full_from, full_to = (int(share * args.visits) for share in DISK_FULL)
    served = served_while_full = 0
    samples: list[dict[str, Any]] = []
    started = time.perf_counter()
    for number in range(1, args.visits + 1):
        if number == full_from:
            set_disk_full(True, limit)
        if number == full_to:
            set_disk_full(False, limit)
        if number % args.swap_every == 0:
            booth.swap(gallery)
        ok = booth.visit(frames[number % len(frames)])
        served += ok
        served_while_full += ok and full_from <= number < full_to
        if number % args.beat_every == 0:
            booth.beat()
        if number % args.sample_every == 0 or number == 1:
            samples.append(sample(number, started, booth.files, served))
            if not full_from <= number < full_to:  # stdout may be a file: it cannot grow either
                print(samples[-1], flush=True)
    booth.ledger.flush()
    seconds = time.perf_counter() - started
    return {
        "gallery": gallery, "visits": args.visits, "photos_cycled": len(frames), "swaps": booth.swaps,
        "served": served, "ms_per_visit": round(seconds / args.visits * 1e3, 1), "seconds": round(seconds, 1),
        "disk_full": {"visits": [full_from, full_to], "served": served_while_full,
                      "said": booth.stderr.full_lines},
        "ledger_entries": len(booth.ledger.counts) + len(booth.ledger.people),
        "log_cap_bytes": LOG_BYTES * (BACKUPS + 1),  # the rotating log's bound: it fills, then stays under it
        "flatness": flatness(samples), "samples": samples,
    }


def main() -> None:
    from index_builder.bench.common import write_result

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gallery", help="a gallery to serve (default: a small one built from LFW photos)")
    parser.add_argument("--visits", type=int, default=100_000)
    parser.add_argument("--swap-every", type=int, default=2_000, help="visits between two gallery swaps")
    parser.add_argument("--beat-every", type=int, default=50, help="visits between two heartbeats")
    parser.add_argument("--sample-every", type=int, default=500)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "kiosk_soak_cpu.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as folder:
        result = soak(args, Path(folder))
    write_result(args.out, "kiosk_soak", {**vars(args), "gallery": args.gallery or "small LFW gallery"}, result)
    flat = result["flatness"]
    print(f"{args.visits} visits ({result['served']} served, {result['disk_full']['served']} of them on a full "
          f"disk, {result['swaps']} swaps), {result['ms_per_visit']} ms each: RSS {flat['rss_mb']['first_tenth']} -> "
          f"{flat['rss_mb']['last_tenth']} MB, open files {flat['open_files']['first_tenth']} -> "
          f"{flat['open_files']['last_tenth']}, threads {flat['threads']['first_tenth']} -> "
          f"{flat['threads']['last_tenth']}; wrote {args.out}")


if __name__ == "__main__":
    main()
