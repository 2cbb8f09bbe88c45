"""The inference thread's stall when the exposure ledger is saved, at 2,000,000 entries (1,000,000
faces and 1,000,000 people by default). Writes one JSON result.

The calling thread plays the inference thread: it records one showing with the clock past
SAVE_SECONDS (so the record saves, as in a visit), then runs 1 ms tasks for a few seconds, as the
worker would go on detecting and searching while the file is written. Reported: the record call
itself, the worst and the 99th percentile task (a write on another thread holds Python's lock for
a while at a time), and when the file was whole on disk.

    .venv/bin/python benchmarks/bench_ledger.py [--entries 2000000] [--out benchmarks/results/ledger_cpu.json]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from face_engine.gallery import face_record
from index_builder.bench.common import write_result
from kiosk import ledger as ledger_module
from kiosk.ledger import Ledger

HERE = Path(__file__).resolve().parent
TASK_SECONDS = 0.001


def filled_ledger(path: Path, entries: int, clock: list[float]) -> Ledger:
    ledger = Ledger(path, clock=lambda: clock[0])
    ledger.counts.update((f"{n:040x}:0", n % 97 + 1) for n in range(entries // 2))
    ledger.people.update((f"person {n}", n % 89 + 1) for n in range(entries - entries // 2))
    return ledger


def busy_task() -> float:
    """One millisecond of Python work; returns how long it took (longer while another thread holds the GIL)."""
    start = time.perf_counter()
    while time.perf_counter() - start < TASK_SECONDS:
        pass
    return time.perf_counter() - start


def written(path: Path, before: float) -> bool:
    try:
        return path.stat().st_mtime > before
    except FileNotFoundError:
        return False


def measure(entries: int, seconds: float) -> dict[str, float | None]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "exposure.json"
        clock = [0.0]
        ledger = filled_ledger(path, entries, clock)
        face = face_record(0, image="", identity="", display_name="", caption="", source="", x1=0, y1=0, x2=1,
                           y2=1, score=1.0, photo_sha1="ab" * 20, photo_face=0)
        clock[0] += ledger_module.SAVE_SECONDS + 1
        began = time.time() - 1
        start = time.perf_counter()
        ledger.record([face])
        record_ms = (time.perf_counter() - start) * 1e3
        tasks, on_disk = [], None
        while time.perf_counter() - start < seconds:
            tasks.append(busy_task())
            if on_disk is None and written(path, began):
                on_disk = time.perf_counter() - start
        ledger.flush()
        return {"record_ms": round(record_ms, 1), "worst_task_ms": round(max(tasks) * 1e3, 1),
                "p99_task_ms": round(float(np.percentile(tasks, 99)) * 1e3, 2),
                "file_written_after_s": round(on_disk, 2) if on_disk is not None else None,
                "file_mb": round(path.stat().st_size / 2**20, 1)}


def earlier_labels(out: Path, label: str) -> dict[str, Any]:
    """What `out` holds for other labels (the code before a change, measured before it was made)."""
    try:
        return {name: run for name, run in json.loads(out.read_text())["by_label"].items() if name != label}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def prune_ms(entries: int) -> float | None:
    """Ledger.keep_only at a swap, half the entries staying (where the code has it)."""
    with tempfile.TemporaryDirectory() as folder:
        ledger = filled_ledger(Path(folder) / "exposure.json", entries, [0.0])
        if not hasattr(ledger, "keep_only"):
            return None
        faces, people = list(ledger.counts)[::2], list(ledger.people)[::2]
        start = time.perf_counter()
        ledger.keep_only(people, faces)
        return round((time.perf_counter() - start) * 1e3, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=2_000_000)
    parser.add_argument("--seconds", type=float, default=4.0, help="how long the 1 ms tasks run after the record")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--label", default="after", help="what code this measures (before/after a change)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "ledger_cpu.json")
    args = parser.parse_args()
    runs = [measure(args.entries, args.seconds) for _ in range(args.repeats)]
    for run in runs:
        print(run, flush=True)
    worst = {name: max((value for run in runs if (value := run[name]) is not None), default=None) for name in runs[0]}
    mine = {"runs": runs, "worst": worst, "prune_half_ms": prune_ms(args.entries)}
    write_result(args.out, "ledger_save_stall", vars(args), {"by_label": {**earlier_labels(args.out, args.label),
                                                                           args.label: mine}})
    print(f"{args.label}: record {worst['record_ms']} ms, worst 1 ms task {worst['worst_task_ms']} ms, "
          f"keep_only {mine['prune_half_ms']} ms; wrote {args.out}")


if __name__ == "__main__":
    main()
