"""10^7 faces on a 16 GB kiosk (issue 24, part 1): recall@5 for strangers, single-query latency with
the gallery split across this machine's cores (face_engine.shards), and the serving process's peak
memory through a hot swap to a second 10^7 gallery.

Stages, each cached under --work (they are long on 2 cores; run them once, in this order):

    data     the synthetic gallery (bench scale's faces, fitted to --fit), strangers and exact top-10
    index    each candidate index trained and filled, written to a file
    sweep    each candidate at each shortlist: recall@5, and p50/p99 of single queries on 1 thread
             (whole index) and on --threads threads (the index split as Gallery splits it)
    exact    exact search (the plain faiss script): a flat scan on 1 thread and split on 2
    ab       the galleries' index whole on 1 thread and split on --threads, query by query in turn
    gallery  two gallery folders Gallery opens (index, manifest, metadata, per-face arrays)
    serve    a fresh process serves as the kiosk's worker does: models and gallery A, captures
             searched, gallery B opened and swapped in, captures again; its peak RSS (VmHWM)
    report   the result file and its plot

    .venv/bin/python -m benchmarks.bench_scale_10m data --size 10000000
    .venv/bin/python -m benchmarks.bench_scale_10m index --size 10000000
    flock /tmp/coord/quiet.lock .venv/bin/python -m benchmarks.bench_scale_10m sweep --size 10000000
    flock /tmp/coord/quiet.lock .venv/bin/python -m benchmarks.bench_scale_10m exact --size 10000000
    flock /tmp/coord/quiet.lock .venv/bin/python -m benchmarks.bench_scale_10m ab --size 10000000
    .venv/bin/python -m benchmarks.bench_scale_10m gallery --size 10000000
    .venv/bin/python -m benchmarks.bench_scale_10m serve --size 10000000
    .venv/bin/python -m benchmarks.bench_scale_10m report
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from face_engine.fairness import EXACT
from face_engine.gallery import apply_search_params, one_thread
from face_engine.memory import (
    KIOSK_MEMORY_BYTES,
    SERVING_BYTES,
    SERVING_BYTES_PER_FACE,
    bytes_per_vector,
    kiosk_index_budget,
    status_bytes,
)
from face_engine.shards import ShardedIndex, boundaries, search_threads, sharded
from index_builder.bench.common import gallery_arrays, write_result
from index_builder.bench.scale import STRANGER_QUERIES, fit, generate, synthetic_gallery
from index_builder.indexes import Vectors, exact_truth, percentiles, query_times_ms, recall_at, train_and_add

HERE = Path(__file__).resolve().parent
STARTED = time.monotonic()
K = 10
PHOTOS = HERE.parents[1] / "shared" / "data" / "photos"
VISITORS = ("fr_obama.jpg", "fr_lin_manuel_miranda.png", "astronaut.png", "mtcnn_ivan.jpg")
MAX_LOOKALIKES = 5  # kiosk.config.MAX_LOOKALIKES: the results screen's faces
LATENCY_QUERIES = 150  # of the strangers, timed one at a time in the sweeps (all of them give the recall)
PICTURES = 1000  # real LFW faces whose rows and pictures the synthetic gallery's faces reuse
# (factory, shortlists swept: k_factor_rf of the re-rank, or nprobe for IVF) cheapest first
CANDIDATES: list[tuple[str, list[dict[str, Any]]]] = [
    # an SQ8 re-rank: 128 bytes a face, but its rounding reorders strangers' near-ties (recall@5 stops
    # at 0.965 at 10^6, 0.957 at 10^7, with shortlists of 81,920)
    ("PQ32x4fs,Refine(SQ8)", [{"k_factor_rf": kf} for kf in (512, 2048, 8192)]),
    ("PQ32x4fs,Refine(SQfp16)", [{"k_factor_rf": kf} for kf in (1024, 2048, 4096, 8192)]),
    ("PQ64x4fs,Refine(SQfp16)", [{"k_factor_rf": kf} for kf in (32, 64, 128, 256)]),
    # IVF lists scanned in part: DESIGN.md warns they lose strangers' near-ties; measured, not assumed
    ("IVF4096,PQ64x4fs,Refine(SQfp16)", [{"nprobe": probes, "k_factor_rf": 128} for probes in (256, 512, 1024, 2048)]),
]


CHOSEN: tuple[str, dict[str, Any]] = ("PQ64x4fs,Refine(SQfp16)", {"k_factor_rf": 128})


def slug(factory: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", factory).strip("_")


def folder_of(work: Path, size: int, seed: int = 0) -> Path:
    folder = work / (f"n{size}" if seed == 0 else f"n{size}-seed{seed}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def vectors(work: Path, size: int, seed: int = 0) -> Vectors:
    paths = sorted((folder_of(work, size, seed) / "vectors").glob("*.npy"))
    dim = int(np.load(paths[0], mmap_mode="r").shape[1])
    return Vectors(size, dim, lambda: (np.load(path, mmap_mode="r") for path in paths))


def stage_data(args: argparse.Namespace) -> None:
    folder = folder_of(args.work, args.size, args.seed)
    started = time.perf_counter()
    _, real, identities = gallery_arrays(args.fit)
    model = fit(real, identities)
    (folder / "vectors").mkdir(exist_ok=True)
    xb = synthetic_gallery(model, args.size, args.seed, folder / "vectors")
    xq, _ = generate(model, STRANGER_QUERIES, np.random.default_rng([args.seed, 1]), first_person=10**9)
    generated = time.perf_counter() - started
    if args.seed != 0:  # gallery B of the swap: nobody measures its recall
        return
    D, I = exact_truth(xb, xq, K)
    np.save(folder / "xq.npy", xq)
    np.save(folder / "truth_D.npy", D)
    np.save(folder / "truth_I.npy", I)
    save(folder / "data.json", {"size": args.size, "seed": args.seed, "fit": args.fit, "strangers": len(xq),
                                "generate_seconds": generated,
                                "exact_truth_seconds": time.perf_counter() - started - generated})
    print(f"data: {args.size:,} faces in {generated:.0f} s, truth in "
          f"{time.perf_counter() - started - generated:.0f} s", flush=True)


def stage_index(args: argparse.Namespace) -> None:
    folder = folder_of(args.work, args.size, args.seed)
    xb = vectors(args.work, args.size, args.seed)
    for factory, _ in chosen_candidates(args.only):
        path = folder / f"{slug(factory)}.faiss"
        if path.exists():
            continue
        started = time.perf_counter()
        index = train_and_add(factory, xb, use_gpu=False)
        built = time.perf_counter() - started
        faiss.write_index(index, str(path))
        save(folder / f"{slug(factory)}.build.json", {"factory": factory, "build_seconds": built,
                                                       "file_bytes": path.stat().st_size})
        print(f"index: {factory} built in {built:.0f} s, {path.stat().st_size / 2**20:,.0f} MiB", flush=True)
        del index


def truth(work: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    folder = folder_of(work, size)
    return np.load(folder / "xq.npy"), np.load(folder / "truth_I.npy")


def latency_ms(index: faiss.Index, xq: np.ndarray) -> dict[str, float]:
    """Single queries, as the kiosk searches (Gallery.search: the calling thread's OpenMP at 1; a
    split index runs its shards on threads of its own)."""
    times = query_times_ms(index, xq, K)
    return {**percentiles(times, (50, 95, 99)), "mean": float(np.mean(times)), "max": float(np.max(times))}


def measured(index: faiss.Index, settings: dict[str, Any], xq: np.ndarray, I_exact: np.ndarray) -> dict[str, Any]:
    apply_search_params(index, settings)
    _, I = index.search(xq, K)
    return {"recall@5": recall_at(I, I_exact, 5), "recall@10": recall_at(I, I_exact, 10),
            "latency_ms": latency_ms(index, xq[:LATENCY_QUERIES])}


def stage_sweep(args: argparse.Namespace) -> None:
    """Each candidate whole on one thread, then split for --threads threads as Gallery splits it."""
    folder = folder_of(args.work, args.size)
    xq, I_exact = truth(args.work, args.size)
    for factory, sweep in chosen_candidates(args.only):
        load = [os.getloadavg()]
        path = folder / f"{slug(factory)}.faiss"
        index = faiss.read_index(str(path))
        rows = []
        for settings in sweep:
            rows.append({"factory": factory, "settings": settings, "threads": 1, "shards": 1,
                         **measured(index, settings, xq, I_exact)})
            print_row(rows[-1])
        searcher = sharded(index, args.threads, release=True)  # as Gallery opens it
        split = searcher is not index  # an IVF index is searched whole
        del index
        for settings in sweep if split else []:
            rows.append({"factory": factory, "settings": settings, "threads": args.threads,
                         "shards": args.threads,
                         **measured(searcher, settings, xq, I_exact)})
            print_row(rows[-1])
        load.append(os.getloadavg())
        save(folder / f"{slug(factory)}.sweep.json", {"rows": rows, "load_average": load,
                                                       "bytes_per_face": bytes_per_vector(factory, xq.shape[1]),
                                                       "file_bytes": path.stat().st_size})


def stage_ab(args: argparse.Namespace) -> None:
    """The galleries' index at its setting, whole on one thread and split for --threads threads, one
    query of each in turn (the same queries, the machine's load the same for both), --repeats times."""
    folder = folder_of(args.work, args.size)
    xq, I_exact = truth(args.work, args.size)
    whole = faiss.read_index(str(folder / f"{slug(args.factory)}.faiss"))
    apply_search_params(whole, dict(args.param))
    split = sharded(whole, args.threads)  # shares the re-rank codes with `whole`, which stays whole
    forms = {"1 thread": whole, f"{args.threads} threads": split}
    rounds = []
    for _ in range(args.repeats):
        times: dict[str, list[float]] = {name: [] for name in forms}
        load = [os.getloadavg()]
        with one_thread():
            for q in xq:
                for name, index in forms.items():
                    start = time.perf_counter()
                    index.search(q[None], K)
                    times[name].append((time.perf_counter() - start) * 1e3)
        load.append(os.getloadavg())
        rounds.append({"load_average": load, **{name: {**percentiles(t, (50, 95, 99)), "mean": float(np.mean(t))}
                                                 for name, t in times.items()}})
        print(json.dumps(rounds[-1]), flush=True)
    recall = {name: recall_at(index.search(xq, K)[1], I_exact, 5) for name, index in forms.items()}
    runs = len(list(folder.glob("ab*.json")))  # each run kept: the machine's load differs from run to run
    save(folder / ("ab.json" if runs == 0 else f"ab-{runs + 1}.json"),
         {"factory": args.factory, "settings": dict(args.param), "queries": len(xq),
          "recall@5": recall, "rounds": rounds})


def print_row(row: dict[str, Any]) -> None:
    print(f"{row['factory']:30s} {row['settings']} x{row['threads']}: recall@5 {row['recall@5']:.3f} "
          f"p50 {row['latency_ms']['p50']:.2f} p99 {row['latency_ms']['p99']:.2f} ms", flush=True)


def stage_exact(args: argparse.Namespace) -> None:
    """Exact search as a plain faiss script does it: IndexFlatIP over every vector, one query at a
    time, on one thread and split in two searched by two threads (two halves, never a third copy)."""
    xb = vectors(args.work, args.size)
    xq, I_exact = truth(args.work, args.size)
    bounds = boundaries(len(xb), args.threads)
    halves = [faiss.IndexFlatIP(xb.dim) for _ in range(args.threads)]
    start = 0
    for block in xb.blocks():
        for number, half in enumerate(halves):
            first, last = max(bounds[number], start), min(bounds[number + 1], start + len(block))
            if first < last:
                half.add(np.ascontiguousarray(block[first - start:last - start]))
        start += len(block)
    load = [os.getloadavg()]
    queries = xq[:args.exact_queries]
    one = faiss.IndexShards(xb.dim, False, True)  # not threaded: the halves one after the other, a whole scan
    for half in halves:
        one.add_shard(half)
    rows = [{"factory": "Flat", "threads": 1, **measured(one, {}, queries, I_exact[:len(queries)])}]
    print_row({**rows[-1], "settings": {}})
    both = ShardedIndex(halves)
    rows.append({"factory": "Flat", "threads": args.threads, **measured(both, {}, queries, I_exact[:len(queries)])})
    print_row({**rows[-1], "settings": {}})
    load.append(os.getloadavg())
    # OMP_NUM_THREADS=1: the shards' threads start no OpenMP threads of their own (faiss's default does)
    omp = os.environ.get("OMP_NUM_THREADS", "")
    save(folder_of(args.work, args.size) / f"exact{'-omp' + omp if omp else ''}.json",
         {"rows": rows, "queries": len(queries), "load_average": load, "bytes_per_face": 4 * xb.dim,
          "OMP_NUM_THREADS": omp or "unset"})


def stage_gallery(args: argparse.Namespace) -> None:
    """Galleries A (seed 0) and B (seed 1) of --size synthetic faces with the --factory index, as
    versions behind one link (the builder's layout), each a folder Gallery opens: LFW's manifest
    with this index and count, metadata rows and pictures of PICTURES real LFW faces repeated (a
    synthetic face has no photo), per-face hubness (0: the exact policy's order) and quality."""
    home = args.work / "galleries" / f"g{args.size}.d" / "versions"
    for name, seed in (("A", 0), ("B", 1)):
        out = home / name
        if (out / "manifest.json").exists():
            continue
        index_path = folder_of(args.work, args.size, seed) / f"{slug(args.factory)}.faiss"
        if not index_path.exists():
            raise SystemExit(f"{index_path} is missing: run the data and index stages with --seed {seed} first")
        write_synthetic_gallery(out, index_path, args.factory, dict(args.param), args.size, args.fit,
                                home / "A" if name == "B" else None)
        print(f"gallery: {out}", flush=True)
    link = args.work / "galleries" / f"g{args.size}"
    link.unlink(missing_ok=True)
    link.symlink_to(home / "A")


def write_synthetic_gallery(out: Path, index_path: Path, factory: str, params: dict[str, Any], size: int,
                            fit_gallery: str, rows_of: Path | None) -> None:
    """One version folder; its metadata and pictures copied from `rows_of` where given (the same rows)."""
    real = Path(fit_gallery).resolve()
    if rows_of is not None:
        shutil.copytree(rows_of, out, ignore=shutil.ignore_patterns("index.faiss", "manifest.json"))
    else:
        write_rows(out, real, size)
    os.link(index_path, out / "index.faiss")  # the same file as the index stage's, not a copy: 2.7 GB of disk
    manifest = json.loads((real / "manifest.json").read_text())
    manifest.update(count=size, identities=size, built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    manifest["index"] = {"factory": factory, "search_params": params, "settings": params, "stranger_queries": 0,
                         "reason": f"benchmarks/bench_scale_10m.py: {size:,} synthetic faces", "measurements": [],
                         "bytes_per_face": bytes_per_vector(factory, int(manifest["dim"]))}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def write_rows(out: Path, real: Path, size: int) -> None:
    """Metadata, pictures and per-face arrays of `size` faces, reusing PICTURES real faces' rows."""
    out.mkdir(parents=True)
    source = sqlite3.connect(real / "metadata.sqlite")
    schema = source.execute("SELECT sql FROM sqlite_master WHERE name = 'faces'").fetchone()[0]
    rows = source.execute(f"SELECT * FROM faces ORDER BY id LIMIT {PICTURES}").fetchall()
    columns = [column[1] for column in source.execute("PRAGMA table_info(faces)")]
    source.close()
    for row in rows:
        for column in ("thumbnail", "portrait"):
            picture = row[columns.index(column)]
            (out / picture).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(real / picture, out / picture)
    db = sqlite3.connect(out / "metadata.sqlite")
    with db:
        db.execute(schema)
        db.executemany(f"INSERT INTO faces VALUES ({','.join('?' * len(columns))})",
                       (synthetic_row(rows[face % len(rows)], columns, face) for face in range(size)))
    db.close()
    np.save(out / "hubness.npy", np.zeros(size, np.float32))
    quality = np.load(real / "quality.npy")[:len(rows)]
    np.save(out / "quality.npy", quality[np.arange(size) % len(rows)])


def synthetic_row(row: tuple[Any, ...], columns: list[str], face: int) -> tuple[Any, ...]:
    """A real face's metadata row as face number `face`: its own id, person and content key."""
    values = dict(zip(columns, row, strict=True))
    values.update(id=face, identity=f"synthetic {face}", display_name=f"Synthetic {face}",
                  photo_sha1=f"{face:040x}", photo_face=0)
    return tuple(values[column] for column in columns)


def stage_serve(args: argparse.Namespace) -> None:
    """The serving process measured from its start: a fresh interpreter (serve-child)."""
    load = [os.getloadavg()]
    child = subprocess.run([sys.executable, "-m", "benchmarks.bench_scale_10m", "serve-child", "--size", str(args.size),
                            "--work", str(args.work), "--captures", str(args.captures)],
                           capture_output=True, text=True, check=False)
    print(child.stderr[-3000:], flush=True)
    if child.returncode != 0:
        raise SystemExit(f"serve-child failed ({child.returncode})")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    load.append(os.getloadavg())
    folder = folder_of(args.work, args.size)
    runs = len(list(folder.glob("serve*.json")))  # the first run is the headline; later ones are kept beside it
    save(folder / ("serve.json" if runs == 0 else f"serve-{runs + 1}.json"), {**result, "load_average": load})
    print(json.dumps({key: value for key, value in result.items() if key != "steps"}, indent=1))


def stage_serve_child(args: argparse.Namespace) -> None:
    """The kiosk's inference worker (kiosk.worker.InferenceWorker: models, gallery, exposure ledger,
    attract set) on gallery A; captures of real photos searched; strangers searched through
    Gallery.search (recall and latency); gallery B published behind the link, noticed and opened by
    the kiosk's GalleryWatcher, swapped in between visitors; captures and strangers again. Memory
    from /proc/self/status at each step; the last line of stdout is the result."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QCoreApplication

    from face_engine.imaging import read_image
    from kiosk.ledger import Ledger
    from kiosk.worker import GalleryWatcher, InferenceWorker

    app = QCoreApplication([])  # noqa: F841  (the worker's signals need an application)
    home = args.work / "galleries"
    link = home / f"g{args.size}"
    point(link, home / f"g{args.size}.d" / "versions" / "A")
    steps = [memory_step("interpreter")]
    frames = [read_image(PHOTOS / name) for name in VISITORS]
    xq, I_exact = truth(args.work, args.size)
    with tempfile.TemporaryDirectory() as folder:
        worker = InferenceWorker(str(link), "", "cpu", EXACT, Ledger(Path(folder) / "ledger.json"))
        outcomes: list[Any] = []
        worker.searched.connect(outcomes.append)
        worker.start_up()
        assert worker.gallery is not None, "the worker started"
        steps.append(memory_step("started on gallery A (models, gallery, ledger, attract set)"))
        served = {"A": serve(worker, frames, outcomes, args.captures, xq, I_exact)}
        steps.append(memory_step("served gallery A"))
        delivered: list[Any] = []
        watcher = GalleryWatcher(str(link), delivered.append, delivered.append)
        point(link, home / f"g{args.size}.d" / "versions" / "B")
        watcher.check()  # a loader thread opens B while A serves
        while not delivered:
            time.sleep(0.05)
        steps.append(memory_step("gallery B opened beside A"))
        worker.offer_gallery(delivered[0])
        worker.between_visitors()
        steps.append(memory_step("B swapped in, A let go"))
        served["B"] = serve(worker, frames, outcomes, args.captures, xq, None)
        steps.append(memory_step("served gallery B"))
        if worker.ledger is not None:
            worker.ledger.flush()
    gallery = worker.gallery
    print(json.dumps({"steps": steps, "served": served, "peak_rss_bytes": steps[-1]["VmHWM"],
                      "index": gallery.manifest.index.factory, "settings": gallery.manifest.index.search_params,
                      "index_class": type(gallery.index).__name__, "threads": search_threads()}))


def point(link: Path, target: Path) -> None:
    """Publish `target` behind `link` atomically, as index_builder.publish swaps its link."""
    temporary = link.with_name(link.name + ".new")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target)
    os.replace(temporary, link)


def memory_step(what: str) -> dict[str, Any]:
    """Memory now (bytes), and the seconds since the process started."""
    return {"step": what, "seconds": time.monotonic() - STARTED, **status_bytes("VmHWM", "VmRSS", "RssAnon", "RssFile")}


def serve(worker: Any, frames: list[np.ndarray], outcomes: list[Any], captures: int, xq: np.ndarray,
          I_exact: np.ndarray | None) -> dict[str, Any]:
    """`captures` captures through the worker (its own stage timings), then the strangers through
    Gallery.search one at a time, as the worker searches (recall against exact search for gallery A)."""
    first = len(outcomes)
    for number in range(captures):
        worker.search(frames[number % len(frames)], MAX_LOOKALIKES, float(number))
    timings = [outcome.timings_ms for outcome in outcomes[first:]]
    gallery = worker.gallery
    times, found = [], []
    for q in xq:
        start = time.perf_counter()
        found.append(gallery.search(q[None], K)[1][0])
        times.append((time.perf_counter() - start) * 1e3)
    result = {"captures": len(timings), "faces_found": sum(outcome.faces for outcome in outcomes[first:]),
              "capture_search_ms": percentiles([t["search"] for t in timings if "search" in t], (50, 99)),
              "capture_portraits_ms": percentiles([t.get("portraits", 0.0) for t in timings], (50, 99)),
              "strangers": len(xq),
              "stranger_search_ms": {**percentiles(times, (50, 95, 99)), "mean": float(np.mean(times))}}
    if I_exact is not None:
        result["recall@5"] = recall_at(np.array(found), I_exact, 5)
        result["recall@10"] = recall_at(np.array(found), I_exact, 10)
    return result


def stage_report(args: argparse.Namespace) -> None:
    """The headline (the serving process's own search and memory on gallery A), the sweeps beside it,
    the plain faiss comparison, the 512-d pack on paper; then the plot."""
    big = folder_of(args.work, args.size)
    serve_run = json.loads((big / "serve.json").read_text())
    served = serve_run["served"]["A"]
    sweeps = {size: sweeps_of(folder_of(args.work, size)) for size in (args.small_size, args.size)}
    result = {
        "faces": args.size, "index": serve_run["index"], "settings": serve_run["settings"],
        "threads": serve_run["threads"], "recall_at_5": served["recall@5"],
        "p50_ms": served["stranger_search_ms"]["p50"], "p99_ms": served["stranger_search_ms"]["p99"],
        "peak_rss_gb": peak_bytes(serve_run) / 1e9, "peak_rss_gib": peak_bytes(serve_run) / 2**30,
        "meets": {"recall_at_5>=0.98": served["recall@5"] >= 0.98,
                  "p99_ms<=20": served["stranger_search_ms"]["p99"] <= 20,
                  "peak_rss_gb<=8": peak_bytes(serve_run) / 1e9 <= 8},
        "headline_is": ("the first serving run (serve.json): gallery A's strangers through the kiosk's own "
                        "Gallery.search; every run, with the load average around it, is in serving_runs"),
        "what_the_galleries_hold": (
            f"two gallery folders of {args.size:,} synthetic faces each (bench scale's faces fitted to {args.fit}, "
            "seeds 0 and 1), each with its own index file, manifest, metadata.sqlite of one row per face and "
            f"hubness/quality arrays; the rows and pictures are those of {PICTURES} real LFW faces repeated, "
            "each face with its own id, identity and content key; hubness 0 (the exact policy's order)"),
        "serving_process": serve_run,
        "serving_runs": [serve_summary(json.loads(path.read_text()))
                         for path in sorted(big.glob("serve*.json"), key=lambda path: path.stat().st_mtime)],
        "whole_against_split": [json.loads(path.read_text())
                                for path in sorted(big.glob("ab*.json"), key=lambda path: path.stat().st_mtime)],
        "sweep": sweeps,
        "plain_faiss_exact": {size: exact_of(folder_of(args.work, size)) for size in (args.small_size, args.size)},
        "pack_512d_on_paper": on_paper(512, args.size),
        "pack_128d_on_paper": on_paper(128, args.size),
        "data": json.loads((big / "data.json").read_text()),
    }
    out = HERE / "results" / "scale_10m_cpu.json"
    write_result(out, "scale_10m", {**vars(args), "param": dict(args.param)},
                 result)
    plot(out)
    print(f"{out}: recall@5 {result['recall_at_5']:.3f}, p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
          f"peak RSS {result['peak_rss_gb']:.2f} GB", flush=True)


def peak_bytes(run: dict[str, Any]) -> int:
    """A serving run's peak RSS (VmHWM at its last step)."""
    return int(run["steps"][-1]["VmHWM"])


def serve_summary(run: dict[str, Any]) -> dict[str, Any]:
    """One serving run: its peak memory, its strangers' search on each gallery and the load around it."""
    return {"peak_rss_gb": peak_bytes(run) / 1e9, "load_average": run["load_average"],
            **{f"gallery_{name}_ms": served["stranger_search_ms"] for name, served in run["served"].items()}}


def sweeps_of(folder: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(folder.glob("*.sweep.json")):
        sweep = json.loads(path.read_text())
        build = json.loads(path.with_name(path.name.replace(".sweep.", ".build.")).read_text())
        rows += [{**row, "bytes_per_face": sweep["bytes_per_face"], "file_bytes": sweep["file_bytes"],
                  "build_seconds": build["build_seconds"], "load_average": sweep["load_average"]}
                 for row in sweep["rows"]]
    return rows


def exact_of(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("exact*.json"))]


def on_paper(dim: int, faces: int) -> list[dict[str, Any]]:
    """Bytes per face of each candidate at `dim` (faiss's code sizes), its index at `faces`, and
    whether two fit a 16 GB kiosk's serving process during a swap (face_engine.memory)."""
    budget = kiosk_index_budget(KIOSK_MEMORY_BYTES, faces)
    rows = []
    for factory in (f"PQ{dim // 2}x4fs,Refine(SQfp16)", f"PQ{dim // 4}x4fs,Refine(SQfp16)", f"PQ{dim // 2}x4fs,RFlat",
                    f"PQ{dim // 2}x4fs,Refine(SQ8)", f"PQ{dim // 4}x4fs,Refine(SQ8)", "Flat", "SQfp16",
                    "PCA128,PQ64x4fs,Refine(SQfp16)"):
        per_face = bytes_per_vector(factory, dim)
        beside = SERVING_BYTES + SERVING_BYTES_PER_FACE * faces
        rows.append({"factory": factory, "bytes_per_face": per_face, "index_gb": per_face * faces / 2**30,
                     "fits_16gb_kiosk_swap": per_face * faces <= budget,
                     "kiosk_memory_needed_gib": 2 * (2 * per_face * faces + beside) / 2**30})
    return rows


def plot(result_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = json.loads(result_path.read_text())
    figure, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    colours = iter(plt.get_cmap("tab20").colors)
    for size, rows in result["sweep"].items():
        marker = "o" if int(size) < result["faces"] else "s"
        for (factory, threads), group in groupby_rows(rows):
            style = "-" if threads > 1 else ":"
            label = f"{int(size):,} {factory} x{threads}"
            axes[0].plot([r["latency_ms"]["p99"] for r in group], [r["recall@5"] for r in group], style, marker=marker,
                         label=label, color=next(colours))
            if threads > 1:
                axes[1].plot([r["bytes_per_face"] for r in group], [r["recall@5"] for r in group], marker="o",
                             label=label)
        for row in [row for run in result["plain_faiss_exact"].get(size, [])[:1] for row in run["rows"]]:
            axes[0].plot(row["latency_ms"]["p99"], 1.0, marker="s", color="black", linestyle="none")
            axes[0].annotate(f"exact {int(size):,} x{row['threads']}", (row["latency_ms"]["p99"], 1.0), fontsize=7,
                             rotation=30)
    axes[0].plot(result["p99_ms"], result["recall_at_5"], marker="*", markersize=16, color="red", linestyle="none",
                 label=f"kiosk's Gallery.search ({result['threads']} threads)")
    axes[0].axvline(20, color="grey", linestyle=":")
    axes[0].set(xscale="log", xlabel="single-query p99 (ms)", ylabel="recall@5 for strangers",
                title="recall vs p99 (dotted: 1 thread, solid: split across threads)")
    per_face_budget = kiosk_index_budget(KIOSK_MEMORY_BYTES, result["faces"]) / result["faces"]
    axes[1].axvline(per_face_budget, color="grey", linestyle=":",
                    label="16 GB kiosk's budget per face at 10^7")
    axes[1].set(xlabel="index bytes per face", ylabel="recall@5 for strangers", title="recall vs memory")
    for axis in axes:
        axis.axhline(0.98, color="grey", linestyle=":")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=6)
    figure.suptitle(f"{result['faces']:,} faces: recall@5 {result['recall_at_5']:.3f}, p50 {result['p50_ms']:.1f} / "
                    f"p99 {result['p99_ms']:.1f} ms, peak RSS through a swap {result['peak_rss_gb']:.2f} GB")
    figure.savefig(result_path.with_suffix(".png"), dpi=110, bbox_inches="tight")
    plt.close(figure)


def groupby_rows(rows: list[dict[str, Any]]) -> list[tuple[tuple[str, int], list[dict[str, Any]]]]:
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["factory"], row["threads"]), []).append(row)
    return list(groups.items())


def chosen_candidates(only: str) -> list[tuple[str, list[dict[str, Any]]]]:
    return [candidate for candidate in CANDIDATES if candidate[0].startswith(only)]


def save(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=lambda value: value.item()) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=list(STAGES))
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--fit", default="galleries/lfw", help="the real gallery the synthetic faces imitate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/scale10m"), help="where the stages keep their files")
    parser.add_argument("--only", default="", help="the candidates whose factory starts with this")
    parser.add_argument("--threads", type=int, default=2, help="threads (shards) a query is searched with")
    parser.add_argument("--exact-queries", type=int, default=50,
                        help="strangers timed on exact search (~0.3 s each at 10^7)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the ab stage")
    parser.add_argument("--small-size", type=int, default=1_000_000, help="the smaller gallery of the report's curves")
    parser.add_argument("--captures", type=int, default=20, help="captures served on each gallery")
    parser.add_argument("--factory", default=CHOSEN[0], help="the galleries' index")
    parser.add_argument("--param", type=setting, action="append", default=list(CHOSEN[1].items()),
                        metavar="NAME=VALUE", help="a search parameter of the galleries' index")
    args = parser.parse_args()
    STAGES[args.stage](args)


STAGES = {"data": stage_data, "index": stage_index, "sweep": stage_sweep, "exact": stage_exact, "ab": stage_ab,
          "gallery": stage_gallery, "serve": stage_serve, "serve-child": stage_serve_child, "report": stage_report}


def setting(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    return name, float(value)


if __name__ == "__main__":
    main()
