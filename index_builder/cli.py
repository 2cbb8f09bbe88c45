"""`index-builder`: the staff and engineer command line (embed photos, manage model packs, check set-up)."""
from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import logging
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import faiss
import numpy as np

from face_engine.engine import Face, FaceEngine, check_runs
from face_engine.fairness import LAMBDAS, LEDGER_DELTA, LEDGER_DELTA_MORE, POLICIES, policy_named
from face_engine.gallery import Gallery, GalleryError
from face_engine.imaging import ImageError
from face_engine.likeness import MEANING
from face_engine.memory import bytes_per_vector, expected_rss_bytes
from face_engine.providers import DEVICES, DeviceError, describe
from face_engine.withheld import FORGET_FILE, ListError
from index_builder.build import BuildError, build
from index_builder.corpus import LIMITS, CorpusError
from index_builder.forget import ForgetError, forget, hide, hide_list, rollback, unhide
from index_builder.indexes import default_memory_budget, set_search
from index_builder.lock import BuildLocked
from index_builder.options import BuildOptions
from index_builder.outcome import BuildRecording, outcomes_path
from index_builder.publish import PublishError, check_out, gallery_home
from index_builder.schedule import ScheduleError, default_unit_dir, enable_instructions, install, schedule
from index_builder.worker import FaceFilter
from models.catalogue import DEFAULT_PACK, KNOWN_PACKS
from models.packs import PackError, install_pack, list_packs, models_dir, resolve_pack

EPILOG = """\
examples:
  index-builder embed photo.jpg                     faces and embeddings, as a table
  index-builder embed --demo                        the same on sample photos shipped with the install
  index-builder embed --json corpus/*.jpg > out.jsonl
  index-builder embed --pack buffalo_l --device cuda photo.jpg
  index-builder models list                         packs, their files, SHA-256 status, licenses
  index-builder models install ~/buffalo_l.zip      install an insightface pack staff supplied
  index-builder build ~/corpus --out galleries/main  build, resume or update a gallery
  index-builder schedule ~/corpus --out galleries/main --at 03:00   the same build every night (systemd)
  index-builder search galleries/main visitor.jpg   the five most alike faces, with timings
  index-builder info galleries/main                 what a gallery holds and how it was made
  index-builder forget galleries/main "Jane Doe"    remove a person for good (every version, every later build)
  index-builder hide galleries/main "Jane Doe"      keep a person (or --caption TEXT) off the screen, no rebuild
  index-builder doctor                              what this machine runs on, and whether it is sound
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.run is not run_build:
        return run_command(args).code
    recording = BuildRecording(args.out)  # every build records how it ended, for the kiosk's status
    try:
        finished = run_command(args)
    except BaseException as error:  # a crash: recorded, then its traceback as before
        recording.finish(1, f"{type(error).__name__}: {error}", crashed=True)
        raise
    recording.finish(finished.code, finished.error)
    return finished.code


@dataclass(frozen=True)
class Finished:
    """How a command ended: its exit status, and the error it printed."""

    code: int
    error: str = ""


def run_command(args: argparse.Namespace) -> Finished:
    try:
        run: Callable[[argparse.Namespace], int] = args.run
        return Finished(run(args))
    except (PackError, DeviceError, GalleryError, BuildError, CorpusError, PublishError,
            ForgetError, ListError, ScheduleError) as error:
        return complain(error, 2)
    except BuildLocked as error:
        return complain(error, 3)
    except BrokenPipeError:  # output piped into `head` that has closed it: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Finished(1)
    except KeyboardInterrupt:  # Ctrl-C: a build resumes from its last shard when run again
        return complain("interrupted", 130)


def complain(error: Exception | str, code: int) -> Finished:
    print(f"index-builder: {error}", file=sys.stderr)
    return Finished(code, str(error))


class Parser(argparse.ArgumentParser):
    """Bad options get one line naming what is wrong, and exit 2; the usage is one --help away.
    Subparsers are made of the same class (add_subparsers' default parser_class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"index-builder: {message} (see {self.prog} --help)\n")


MAX_K = 1000  # matches asked of one search; a thousand look-alikes is already more than anyone reads
MAX_WORKERS = 256  # processes of about 200 MB each
MAX_BATCH = 4096
MAX_SHARD = 1_000_000
MAX_REPEATS = 1000
MAX_COUNT = 1_000_000_000  # sizes and samples of the benches: far beyond any gallery a kiosk serves
MAX_PIXELS = 100_000  # --min-face: wider than any photo
MAX_MILLISECONDS = 60_000
MAX_MEMORY_MIB = 2**30  # a pebibyte
MAX_MEMORY_GIB = 2**20  # a pebibyte
MAX_SEARCH_PARAM = 10**9
INDEX_CHECK_DIMS = (512, 128)  # the embedding sizes of the known packs (insightface's, SFace)


def at_most(parse: Callable[[str], Number], high: int) -> Callable[[str], Number]:
    """An argparse type: what `parse` accepts, up to `high`."""
    def bounded(text: str) -> Number:
        value = parse(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:,}, not {text[:40]}")
        return value
    return bounded


def positive_int(text: str) -> int:
    value = _parse(int, text, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def non_negative_float(text: str) -> float:
    value = _parse(float, text, "a number")
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text[:40]}")
    return value


def positive_float(text: str) -> float:
    value = _parse(float, text, "a number")
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text[:40]}")
    return value


def search_param(text: str) -> tuple[str, float]:
    name, equals, value = text.partition("=")
    if not equals or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"must be NAME=VALUE, not {text[:40]!r}")
    number = _parse(float, value, "a number after =")
    if not 0 <= number <= MAX_SEARCH_PARAM:
        raise argparse.ArgumentTypeError(f"{name}'s value must be from 0 to {MAX_SEARCH_PARAM:,}, not {value[:40]}")
    return name, int(number) if number.is_integer() else number


def fraction(text: str) -> float:
    value = _parse(float, text, "a number")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {text[:40]}")
    return value


Number = TypeVar("Number", int, float)


def _parse(kind: Callable[[str], Number], text: str, what: str) -> Number:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, not {text[:40]!r}") from None


# the numeric options' types, each bounded: a typo must not hang a search or fill the machine
workers = at_most(positive_int, MAX_WORKERS)
batch_size = at_most(positive_int, MAX_BATCH)
pixels = at_most(non_negative_float, MAX_PIXELS)
shard_size = at_most(positive_int, MAX_SHARD)
milliseconds = at_most(positive_float, MAX_MILLISECONDS)
mebibytes = at_most(positive_float, MAX_MEMORY_MIB)
gibibytes = at_most(positive_float, MAX_MEMORY_GIB)
matches = at_most(positive_int, MAX_K)
count = at_most(positive_int, MAX_COUNT)
repeats = at_most(positive_int, MAX_REPEATS)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="index-builder",
        description="Build and inspect the face galleries of the 'Meet the other me' kiosk.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the engine chose and why")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for add in (add_embed_parser, add_models_parser, add_build_parser, add_search_parser, add_info_parser,
                add_bench_parser, add_doctor_parser, add_forget_parser, add_rollback_parser,
                add_hide_parser, add_unhide_parser, add_schedule_parser):
        add(commands)
    return parser


SCHEDULE_DESCRIPTION = (
    "Rebuild GALLERY from CORPUS every day at HH:MM: writes a systemd user timer and the service it starts, "
    "which runs `index-builder build CORPUS --out GALLERY` with any --build-options. A night "
    "missed while the machine was off runs at its next start. Exit 1 (published without broken files) and 3 "
    "(another build was running) count as success; output goes to GALLERY.d/rebuild.log, rotated; every "
    "build's outcome is kept in GALLERY.d/builds.json (kiosk --status shows the last). Scheduling the same "
    "gallery name again replaces its schedule.")
FORGET_DESCRIPTION = (
    "Remove a person from GALLERY for good (a takedown request): publish the live version without their faces "
    "(index, metadata, portraits, hubness, likeness table measured again), so a running kiosk swaps to it at its "
    "next break between visitors or capture, within a minute; then rewrite every kept version without them and "
    "put them on the forget list (GALLERY.d/forgotten.json), which every later build honours, by name and by "
    "photo. NAME is the identity (the corpus folder's name) or the name shown. Exit 2 for a person the gallery "
    "does not hold, 3 while a build holds the gallery.")
HIDE_DESCRIPTION = (
    "Keep a person (NAME: the identity or the name shown) or a whole caption (--caption) off the screen, in the "
    "kiosk and `search`, without a rebuild: the hide list GALLERY.d/hidden.json is read on every query. Without "
    "NAME or --caption, print the hide list. Undo with `index-builder unhide`.")
EMBED_DESCRIPTION = (
    "Detect every face in each photo and embed it. Faces are listed largest first. A file that cannot be read "
    "gets a one-line error and the next file is processed; the exit status is 1 when any file failed, 0 "
    "otherwise. A photo with no face is not an error.")
BUILD_DESCRIPTION = (
    "Embed every photo of CORPUS and publish a searchable gallery at GALLERY. CORPUS is a folder tree (a "
    "photo's identity is its parent folder's name, as in LFW) or a manifest (.csv or .jsonl with `path` and "
    "optional `name`, `caption`, `source`). Rerunning the same command resumes an interrupted build or "
    "updates the gallery: only new or changed photos are embedded and photos gone from the corpus leave it. "
    "Bad files are counted by reason, never fatal. The live gallery is replaced only by a complete, validated "
    "one.")


def command(commands: argparse._SubParsersAction[Parser], name: str, run: Callable[[argparse.Namespace], int],
            help: str, description: str | None = None) -> Parser:
    """A subcommand that runs `run` with its parsed arguments."""
    parser = commands.add_parser(name, help=help, description=description)
    parser.set_defaults(run=run)
    return parser


def add_embed_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    embed = command(commands, "embed", run_embed, help="find the faces in photos and print their embeddings",
                    description=EMBED_DESCRIPTION)
    embed.add_argument("images", nargs="*", metavar="IMAGE", help="photo files (JPEG, PNG, WebP, BMP, TIFF, ...)")
    embed.add_argument("--demo", action="store_true",
                       help="embed the sample photos that ship inside the installed insightface package")
    add_engine_options(embed)
    embed.add_argument("--json", action="store_true",
                       help="one JSON object per image per line, with full embeddings")


def add_models_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    packs = commands.add_parser("models", help="list or install model packs")
    pack_commands = packs.add_subparsers(title="models commands", required=True, metavar="ACTION")
    listing = pack_commands.add_parser("list", help="each pack: where its files are, verified or not, license")
    listing.set_defaults(run=run_models_list)
    install = pack_commands.add_parser(
        "install",
        help="install an insightface-layout pack from a folder or zip",
        description="Copy the detector and recognizer .onnx files of a folder or zip (insightface's "
        f"layout: {', '.join(KNOWN_PACKS)} or any SCRFD + ArcFace pair) into the models folder "
        f"({models_dir()}, or $OTHERME_MODELS_DIR), recording their SHA-256 and license.",
    )
    install.add_argument("source", type=Path, metavar="FOLDER_OR_ZIP")
    install.add_argument("--name", help="pack name (default: the folder or zip name, e.g. buffalo_l)")
    install.add_argument("--license", help="the models' terms, when this tool does not know them")
    install.set_defaults(run=run_models_install)


def add_build_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    build = command(commands, "build", run_build, description=BUILD_DESCRIPTION,
                    help="build (or update) a gallery from a photo corpus, and publish it atomically")
    build.add_argument("corpus", type=Path, metavar="CORPUS")
    build.add_argument("--out", type=Path, required=True, metavar="GALLERY",
                       help="the gallery path readers open (a link swapped on publish; state lives in GALLERY.d/)")
    add_engine_options(build)
    build.add_argument("--workers", type=workers, default=BuildOptions.workers,
                       help=f"decode/detect processes (default: one per core, {BuildOptions.workers})")
    build.add_argument("--batch", type=batch_size, default=BuildOptions.batch,
                       help="faces per recognizer batch (default: 32)")
    build.add_argument("--faces", choices=("largest", "central", "all"), default="largest",
                       help="keep each photo's largest face (default); its central one, large and near the "
                       "middle (for subject-centred photos such as news photos or LFW); or all of them")
    build.add_argument("--min-face", type=pixels, default=0.0, metavar="PX",
                       help="skip faces whose box is smaller than PX pixels on its shorter side")
    build.add_argument("--min-score", type=fraction, default=0.0, metavar="S",
                       help="skip faces with a detection score below S (0..1)")
    build.add_argument("--min-quality", type=fraction, default=0.0, metavar="Q",
                       help="leave out faces whose portrait quality (sharpness, frontal pose, size; 0..1) is below "
                       "Q, counted in the report; changing it needs no --fresh (default: 0, keep all)")
    build.add_argument("--fresh", action="store_true", help="forget earlier runs and embed everything again")
    build.add_argument("--wait", action="store_true",
                       help="when another build of GALLERY is running, wait for it to end instead of exiting "
                       "with status 3")
    build.add_argument("--allow-outside", action="store_true",
                       help="let manifest paths lead outside the manifest's folder (absolute paths, `..`, links "
                       "out); without it such rows are skipped as outside_corpus")
    build.add_argument("--shard-size", type=shard_size, default=BuildOptions.shard_size, metavar="N",
                       help="faces per shard written to disk; a killed build redoes at most one shard")
    build.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: worker processes on this machine (default); ray: Ray Data over a cluster "
                       "(needs the ray extra: ./setup_kiosk.sh --ray)")
    build.add_argument("--address", help="with --engine ray: the cluster to join (default: start a local Ray)")
    build.add_argument("--latency-budget", type=milliseconds, default=BuildOptions.budget_ms, metavar="MS",
                       help="single-query search time under which exact search is kept (default: 20 ms)")
    build.add_argument("--memory-budget", type=mebibytes, metavar="MIB",
                       default=default_memory_budget() / 2**20,
                       help="memory the gallery's index may take in the kiosk; indexes expected to need more are "
                       "not tried (default: half of this machine's RAM)")
    build.add_argument("--kiosk-memory", type=gibibytes, metavar="GIB", default=BuildOptions.kiosk_memory_bytes / 2**30,
                       help="memory of the kiosk PC that serves the gallery: the index must leave it room to hold "
                       "two galleries during a hot swap, within half of it (default: 16)")
    build.add_argument("--index", metavar="FACTORY",
                       help="for experiments: use this faiss index factory string (e.g. PQ64x4fs,RFlat) instead of "
                       "choosing by measurement; its recall and latency are still measured and recorded")
    build.add_argument("--index-param", type=search_param, action="append", default=[], metavar="NAME=VALUE",
                       help="a search parameter of the --index (e.g. k_factor_rf=64); repeatable")


def add_schedule_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    schedule = command(commands, "schedule", run_schedule, description=SCHEDULE_DESCRIPTION,
                       help="rebuild a gallery every night (a systemd user timer)")
    schedule.add_argument("corpus", type=Path, metavar="CORPUS")
    schedule.add_argument("--out", type=Path, required=True, metavar="GALLERY", help="the gallery to rebuild")
    schedule.add_argument("--at", required=True, metavar="HH:MM", help="the time of day, 24-hour clock")
    schedule.add_argument("--unit-dir", type=Path, metavar="DIR",
                          help=f"write the unit files into DIR, to review or copy (default: {default_unit_dir()})")
    schedule.add_argument("--build-options", nargs=argparse.REMAINDER, default=[], metavar="OPTION",
                          help="last: the rest of the line is `index-builder build` options for every rebuild "
                          "(e.g. --build-options --pack buffalo_l --faces central)")


def add_search_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    search = command(
        commands, "search", run_search, help="find the gallery faces most like the largest face in a photo",
        description="The kiosk's query path without a window: decode, detect, embed the largest face, "
        "search. The matches are k different people (fewer only where the gallery has fewer), in the order a "
        "visitor sees them: by score, best first. With --json one object: image, faces, policy, likeness_table "
        "(the gallery's own, or its pack's), matches (rank, score, likeness, fair_score, name, identity, caption, "
        "image, thumbnail, portrait, quality) and timings_ms per stage. A photo with no face gives no matches and "
        f"exit 0. score is the raw cosine similarity; {MEANING}")
    search.add_argument("gallery", type=Path, metavar="GALLERY")
    search.add_argument("image", metavar="IMAGE")
    search.add_argument("--k", type=matches, default=5,
                        help=f"number of matches, at most {MAX_K} (default: 5)")
    search.add_argument("--pack", help="model pack (default: the one that built the gallery)")
    search.add_argument("--device", default="auto", choices=DEVICES)
    search.add_argument("--json", action="store_true", help="print one JSON object")
    add_policy_options(search)


def add_policy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", choices=POLICIES, default="fair",
                        help="fair: re-rank the 50 nearest faces by score - λ·hubness, each person once, so hub "
                        "faces do not take all the attention (default); exact: plain nearest neighbours")
    parser.add_argument("--fairness", type=non_negative_float, metavar="λ",
                        help="the fair policy's λ (default: the one the gallery's build measured best)")


def add_info_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    info = command(commands, "info", run_info, help="show a gallery's manifest, readably")
    info.add_argument("gallery", type=Path, metavar="GALLERY")
    info.add_argument("--json", action="store_true", help="print the manifest as it is")


def add_doctor_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    command(commands, "doctor", run_doctor, help="check the installation: runtimes, devices, default model files")


def add_bench_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    bench = commands.add_parser(
        "bench", help="measure recall, latency and scale; one JSON result per run (and a PNG)",
        description="Each run writes one JSON result (machine, versions, parameters, raw timings) to --out "
        "and draws its plot beside it; `bench plot RESULT.json` redraws a plot from a stored result.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  index-builder bench ann galleries/lfw --out benchmarks/results/ann_lfw.json\n"
        "  index-builder bench identity galleries/lfw --pairs ../shared/data/lfw/pairs.txt\n"
        "  index-builder bench scale --fit galleries/lfw --sizes 10000 100000 1000000\n"
        "  index-builder bench e2e galleries/lfw --photos ../shared/data/photos\n"
        "  index-builder bench exposure galleries/lfw --k 5\n")
    modes = bench.add_subparsers(title="modes", required=True, metavar="MODE")

    def mode(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = modes.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("--out", type=Path, help=f"result file (default: bench_results/{name}-<time>.json)")
        parser.set_defaults(run=run_bench, mode=name)
        return parser

    ann = mode("ann", "recall@1/5/10/100 of index types against exact search, swept over their search "
               "parameters, for strangers and for people in the gallery; single-query latency and batch throughput")
    ann.add_argument("gallery", metavar="GALLERY")
    ann.add_argument("--index", action="append", metavar="FACTORY",
                     help="a faiss index factory string to measure (repeatable; default: Flat, SQfp16, SQ8, "
                     "PQ fast-scan with an exact re-rank, HNSW32 and IVF (for in-gallery queries) swept, and the "
                     "gallery's own)")
    identity = mode("identity", "rank-1/rank-5 identification (each query left out), the lists visitors see through "
                    "the query path (short lists, score order, rank-1 as shown, median likeness) and LFW 10-fold "
                    "verification")
    identity.add_argument("gallery", metavar="GALLERY")
    identity.add_argument("--pairs", type=Path, help="LFW pairs.txt, for verification accuracy")
    scale = mode("scale", "synthetic face-like galleries of growing size: the chosen index, recall@5 for strangers and "
                 "people in the gallery, latency against exact search, memory, build and open time")
    scale.add_argument("--fit", required=True, metavar="GALLERY", help="the real gallery the synthetic faces imitate")
    scale.add_argument("--sizes", type=count, nargs="+", default=[10_000, 100_000, 1_000_000, 10_000_000])
    scale.add_argument("--latency-budget", type=milliseconds, default=BuildOptions.budget_ms, metavar="MS")
    e2e = mode("e2e", "the kiosk's query path on real photos: decode, detect, embed, search, p50/p95")
    e2e.add_argument("gallery", metavar="GALLERY")
    e2e.add_argument("--photos", type=Path, required=True, help="a folder of photos used as visitors")
    e2e.add_argument("--repeats", type=repeats, default=3)
    e2e.add_argument("--device", default="auto", choices=DEVICES)
    exposure = mode("exposure", "matching policies side by side on the same visitors: how often each gallery face "
                    "is shown (Gini per face and per person, share never shown, most shown), identity rank-1, "
                    "strangers' top-1 score loss; Lorenz curves")
    exposure.add_argument("gallery", metavar="GALLERY")
    exposure.add_argument("--k", type=matches, default=5, help="lookalikes shown per visitor (default: 5)")
    exposure.add_argument("--lambdas", type=non_negative_float, nargs="+", default=list(LAMBDAS), metavar="λ",
                          help=f"the fair policy's λ sweep (default: {' '.join(map(str, LAMBDAS))})")
    exposure.add_argument("--deltas", type=non_negative_float, nargs="+", default=[LEDGER_DELTA], metavar="δ",
                          help=f"the ledger's margins for the best lookalike, at the gallery's λ (default: "
                          f"{LEDGER_DELTA}; the smaller matches use {LEDGER_DELTA_MORE})")
    exposure.add_argument("--sample", type=count, metavar="N",
                          help="at most N visitors of each kind (default: every gallery face)")
    exposure.add_argument("--synthetic", type=count, metavar="N",
                          help="measure N synthetic faces fitted to GALLERY (as bench scale draws them) instead")
    plot = modes.add_parser("plot", help="draw the PNG of a stored result")
    plot.add_argument("result", type=Path)
    plot.set_defaults(run=run_bench_plot)


def run_bench(args: argparse.Namespace) -> int:
    from index_builder.bench import ann, e2e, exposure, identity, scale
    from index_builder.bench.common import write_result
    from index_builder.bench.plots import plot_result

    if args.mode == "ann":
        specs: list[tuple[str, list[dict[str, Any]]]] | None = (
            [(factory, [{}]) for factory in args.index] if args.index else None)
        parameters, results = {"gallery": args.gallery, "index": args.index}, ann.run_ann(args.gallery, specs)
    elif args.mode == "identity":
        parameters = {"gallery": args.gallery, "pairs": str(args.pairs) if args.pairs else None}
        results = identity.run_identity(args.gallery, args.pairs)
    elif args.mode == "scale":
        parameters = {"fit": args.fit, "sizes": args.sizes, "latency_budget_ms": args.latency_budget}
        results = scale.run_scale(args.fit, args.sizes, args.latency_budget)
    elif args.mode == "e2e":
        parameters = {"gallery": args.gallery, "photos": str(args.photos), "repeats": args.repeats,
                      "device": args.device}
        results = e2e.run_e2e(args.gallery, args.photos, args.repeats, args.device)
    else:
        parameters = {"gallery": args.gallery, "k": args.k, "lambdas": args.lambdas, "deltas": args.deltas,
                      "sample": args.sample}
        parameters["synthetic"] = args.synthetic
        if args.synthetic:
            results = exposure.run_exposure_synthetic(args.gallery, args.synthetic, args.k, args.lambdas, args.deltas,
                                                      args.sample)
        else:
            results = exposure.run_exposure(args.gallery, args.k, args.lambdas, args.deltas, args.sample)
    out = args.out or Path("bench_results") / f"{args.mode}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_result(out, args.mode, parameters, results)
    picture = plot_result(out)
    print(f"wrote {out}" + (f" and {picture}" if picture else ""))
    return 0


def run_bench_plot(args: argparse.Namespace) -> int:
    from index_builder.bench.plots import plot_result

    picture = plot_result(args.result)
    print(f"wrote {picture}" if picture else f"{args.result}: this benchmark has no plot")
    return 0


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pack", default=DEFAULT_PACK,
                        help="model pack: a name from `models list` or a folder of .onnx files "
                             f"(default: {DEFAULT_PACK})")
    parser.add_argument("--device", default="auto", choices=DEVICES,
                        help="auto: the GPU when onnxruntime can use one, else the CPU; cuda: fail unless "
                        "CUDA really runs (default: auto)")


def run_embed(args: argparse.Namespace) -> int:
    images = args.images + (demo_photos() if args.demo else [])
    if not images:
        print("index-builder embed: give one or more IMAGE files, or --demo", file=sys.stderr)
        return 2
    engine = FaceEngine(resolve_pack(args.pack), args.device)
    failed = 0
    for image in images:
        try:
            faces = engine.analyze(image)
        except ImageError as error:
            failed += 1
            if args.json:
                print(json.dumps({"image": image, "error": f"{error.reason}: {error}"}, ensure_ascii=False), flush=True)
            print(f"error: {escaped(image)}: {error}", file=sys.stderr, flush=True)
            continue
        if args.json:
            record = {"image": image, "pack": engine.pack.id, "providers": engine.applied_providers,
                      "faces": [face.to_json() for face in faces]}
            print(json.dumps(record, ensure_ascii=False), flush=True)
        else:
            print_faces(image, faces, engine)
    return 1 if failed else 0


def demo_photos() -> list[str]:
    """Photos shipped inside an installed package, so a fresh machine has something real to show."""
    from importlib import resources

    folder = resources.files("insightface") / "data" / "images"
    return [str(folder / name) for name in ("t1.jpg", "Tom_Hanks_54745.png")]


def escaped(text: str) -> str:
    """`text` with newlines and other control characters written as escapes (\\n, \\x1b): a file
    name is one line of a table, and never moves the terminal's cursor."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def print_faces(image: str, faces: list[Face], engine: FaceEngine) -> None:
    device = describe(engine.applied_providers).upper()
    print(f"{escaped(image)}: {len(faces)} face{'s' if len(faces) != 1 else ''}  "
          f"[pack {engine.pack.id}, {engine.dim}-d, {device}]")
    if faces:
        print(f"  {'#':>2}  {'box x1,y1,x2,y2':<24} {'size':>9}  {'score':>5}  embedding (first 4 of {engine.dim})")
    for number, face in enumerate(faces, 1):
        x1, y1, x2, y2 = face.box
        box = f"{x1:.0f},{y1:.0f},{x2:.0f},{y2:.0f}"
        size = f"{x2 - x1:.0f}x{y2 - y1:.0f}"
        head = " ".join(f"{v:+.3f}" for v in face.embedding[:4])
        print(f"  {number:>2}  {box:<24} {size:>9}  {face.score:5.2f}  {head} ...")


def run_build(args: argparse.Namespace) -> int:
    if args.index_param and not args.index:
        raise BuildError("--index-param sets a search parameter of --index FACTORY; give --index too")
    if args.index:
        check_forced_index(args.index, dict(args.index_param))
    check_out(args.out)  # before any photo is read, not once they are all embedded
    options = BuildOptions(corpus=args.corpus, out=args.out, pack=args.pack, device=args.device,
                           workers=args.workers, batch=args.batch,
                           face_filter=FaceFilter(args.faces, args.min_face, args.min_score),
                           min_quality=args.min_quality, fresh=args.fresh,
                           shard_size=args.shard_size,
                           budget_ms=args.latency_budget, engine=args.engine, address=args.address,
                           wait=args.wait, allow_outside=args.allow_outside,
                           memory_budget_bytes=int(args.memory_budget * 2**20), index=args.index,
                           kiosk_memory_bytes=int(args.kiosk_memory * 2**30),
                           index_params=dict(args.index_param))
    report = build(options)
    if report.get("up_to_date"):
        print(f"{args.out} is up to date: no photo was added, changed or removed since it was published")
        return 0
    skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(report["skipped"].items())) or "none"
    rate = f"{report['faces_per_second']} faces/s" if report["faces_per_second"] else "nothing new to embed"
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"published {args.out} -> {report['published']}")
    print(f"  {report['gallery_faces']} faces of {report['identities']} identities from "
          f"{report['photos_in_corpus']} photos; this run embedded {report['faces_embedded_this_run']} ({rate})")
    print(f"  skipped photos: {skipped}")
    if report["faces_below_min_quality"]:
        print(f"  faces below --min-quality {report['min_quality']}: {report['faces_below_min_quality']} left out")
    if report["truncated"]:
        cut = ", ".join(f"{field} {count} (to {LIMITS[field]} characters)"
                        for field, count in sorted(report["truncated"].items()))
        print(f"  texts cut to length: {cut}")
    print(f"  took {report['wall_seconds']} s; report: {gallery_home(args.out) / 'work' / 'report.json'}")
    if report["bad_files"]:
        print(f"index-builder: {report['bad_files']} file(s) or row(s) of the corpus are broken (see skipped "
              "photos above); the gallery was published without them", file=sys.stderr)
        return 1
    return 0


def check_forced_index(factory: str, params: dict[str, float]) -> None:
    """--index and each --index-param tried on an empty index before any photo is read: a typo costs
    a second, not the embedding of a whole corpus (the build measures the index as before)."""
    index = _empty_index(factory)
    for name, value in params.items():
        try:
            set_search(index, {name: value})
        except (RuntimeError, AttributeError):  # faiss's ParameterSpace, or a refine's missing middle stage
            raise BuildError(f"--index-param {name}={value}: a {factory} index has no search parameter {name!r} "
                             "(IVF has nprobe, HNSW efSearch, a refine (RFlat, Refine) k_factor_rf)") from None


def _empty_index(factory: str) -> faiss.Index:
    for dim in INDEX_CHECK_DIMS:
        try:
            return faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError:
            continue
    raise BuildError(f"--index {factory[:80]!r}: not an index faiss can make for embeddings of "
                     f"{' or '.join(map(str, INDEX_CHECK_DIMS))} values (factory strings such as Flat, "
                     "IVF1024,Flat, HNSW32 or PQ64x4fs,RFlat)")


def run_schedule(args: argparse.Namespace) -> int:
    plan = schedule(args.corpus, args.out, args.at, tuple(args.build_options))
    build_parser().parse_args(plan.build_command()[1:])  # a wrong build option fails now, not at night
    service, timer = install(plan, args.unit_dir or default_unit_dir())
    print(f"wrote {service}\n  and {timer}")
    print(f"  every day at {plan.at}: {' '.join(plan.build_command())}")
    print(f"  output: {plan.log} (rotated); outcomes: {outcomes_path(plan.out)}")
    print(enable_instructions(plan, installed=args.unit_dir is None))
    return 0


def run_search(args: argparse.Namespace) -> int:
    from face_engine.query import open_for_query, search_photo

    gallery, engine = open_for_query(args.gallery, args.pack, args.device)
    try:
        result = search_photo(engine, gallery, args.image, args.k, policy=policy_named(args.policy, args.fairness))
    except ImageError as error:
        print(f"error: {args.image}: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    timings = ", ".join(f"{stage} {ms:.1f}" for stage, ms in result["timings_ms"].items())
    print(f"{args.image}: {result['faces']} face(s); matches for the largest ({timings} ms)")
    for match in result["matches"]:
        caption = f"  \"{match['caption']}\"" if match["caption"] else ""
        name = match["name"] or "(no name)"
        print(f"  {match['rank']:>2}. {match['score']:.3f} {match['likeness']:>3}% alike  {name:<28} "
              f"{match['image']}{caption}")
    print(f"  policy {result['policy']}; likeness table: {result['likeness_table']}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    gallery = Gallery(args.gallery, use_gpu=False)
    manifest = gallery.manifest
    if args.json:
        print(json.dumps(manifest.to_json(), indent=2, ensure_ascii=False))
        return 0
    build_report = manifest.build
    index = manifest.index
    print(f"gallery      {args.gallery} -> {gallery.root}")
    print(f"built        {manifest.built_at} from {build_report.corpus}")
    print(f"pack         {manifest.pack} (recognizer {manifest.recognizer}, {manifest.dim}-d, {manifest.metric})")
    print(f"faces        {manifest.count} of {manifest.identities} identities "
          f"({build_report.photos_with_faces} of {build_report.photos_in_corpus} photos)")
    print(f"index        {index.factory} {index.search_params or ''}".rstrip())
    print(f"             {index.reason}")
    print(f"recall       {manifest.recall}")
    per_face = index.bytes_per_face or bytes_per_vector(index.factory, manifest.dim)
    print(f"memory       {per_face:,.0f} bytes per face; expected RSS "
          f"{expected_rss_bytes(per_face, manifest.count) / 2**20:,.0f} MiB for the index and metadata")
    skipped = ", ".join(f"{r} {n}" for r, n in sorted(build_report.skipped.items())) or "none"
    print(f"skipped      {skipped}")
    if gallery.quality is not None:
        print(f"quality      portraits' median {float(np.median(gallery.quality[:, 0])):.2f} (0..1: sharpness, frontal "
              f"pose, size); {build_report.faces_below_min_quality} face(s) below --min-quality "
              f"{build_report.min_quality} left out")
    rate = f"{build_report.faces_per_second} faces/s" if build_report.faces_per_second else "nothing new"
    print(f"last run     embedded {build_report.faces_embedded_this_run} faces in {build_report.embed_seconds} s "
          f"({rate}), {build_report.workers} workers, providers {', '.join(build_report.providers)}")
    fairness = manifest.fairness
    if fairness:
        print(f"fairness     λ {fairness.lambda_} (fair policy: score - λ·hubness); hubness of each face "
              f"over its {fairness.k} nearest other people, {fairness.seconds} s, "
              f"{fairness.method}")
    print(f"likeness     {gallery.calibration.summary()}")
    return 0


def run_models_list(args: argparse.Namespace) -> int:
    print(f"models folder: {models_dir()}")
    for pack in list_packs():
        checks = pack.verify()
        status = {True: "verified", False: "SHA-256 MISMATCH", None: "no recorded digest"}
        print(f"\n{pack.id}  ({pack.source})")
        for role, path in (("detector", pack.detector_path), ("recognizer", pack.recognizer_path)):
            print(f"  {role:<10} {path}  [{status[checks[path.name]]}]")
        print(f"  license    {pack.license}")
    installed = {pack.id for pack in list_packs()}
    missing = [pack for name, pack in KNOWN_PACKS.items() if name not in installed]
    if missing:
        print("\nknown, not installed (staff supply the files: index-builder models install --help):")
        for known in missing:
            print(f"  {known.id:<11} {known.dim}-d  {known.note}")
    return 0


def run_models_install(args: argparse.Namespace) -> int:
    pack = install_pack(args.source, check_runs, name=args.name, license=args.license)
    print(f"installed pack {pack.id} into {pack.detector_path.parent}")
    print(f"  detector   {pack.detector_path.name} ({pack.detector_kind})")
    print(f"  recognizer {pack.recognizer_path.name}")
    print(f"  license    {pack.license}")
    if "non-commercial" in pack.license:
        print("  NOTE: non-commercial research use only; clear the license before showing it to the public.")
    print(f"use it with --pack {pack.id}")
    return 0


def run_doctor(args: argparse.Namespace) -> int:
    import cv2
    import faiss
    import onnxruntime

    problems = []
    print(f"python        {platform.python_version()} ({sys.executable})")
    print(f"onnxruntime   {onnxruntime.__version__}: providers {', '.join(onnxruntime.get_available_providers())}")
    print(f"faiss         {faiss.__version__}: {faiss.get_num_gpus()} GPU(s) visible")
    print(f"opencv        {cv2.__version__}")
    distributions = {dist.metadata["Name"].lower() for dist in metadata.distributions()}
    if "opencv-python" in distributions:
        problems.append("opencv-python is installed: it bundles Qt 5, which clashes with PySide6; run ./setup_kiosk.sh")
    if {"onnxruntime", "onnxruntime-gpu"} <= distributions:
        problems.append("onnxruntime and onnxruntime-gpu are both installed: the CPU build shadows the GPU one")
    if {"faiss-cpu", "faiss-gpu"} <= distributions:
        problems.append("faiss-cpu and faiss-gpu are both installed")
    pack = resolve_pack(DEFAULT_PACK)
    for name, ok in pack.verify().items():
        print(f"model         {name}: {'SHA-256 verified' if ok else 'SHA-256 MISMATCH'}")
        if not ok:
            problems.append(f"default model file {name} does not match its SHA-256")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def add_forget_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    parser = command(commands, "forget", run_forget, description=FORGET_DESCRIPTION,
                     help="remove a person from a gallery, its kept versions and every later build")
    parser.add_argument("gallery", type=Path, metavar="GALLERY")
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("--wait", action="store_true", help="when a build of GALLERY is running, wait for it")


def add_rollback_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    parser = command(commands, "rollback", run_rollback, help="point a gallery back at its previous version",
                     description="Point GALLERY back at the version published before the live one (a running "
                     "kiosk swaps to it within a minute). A person forgotten since is left out of it first.")
    parser.add_argument("gallery", type=Path, metavar="GALLERY")
    parser.add_argument("--wait", action="store_true", help="when a build of GALLERY is running, wait for it")


def add_hide_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    add_hiding_arguments(command(commands, "hide", run_hide, description=HIDE_DESCRIPTION,
                                 help="keep a person or a caption off the screen, without a rebuild"))


def add_unhide_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    add_hiding_arguments(command(commands, "unhide", run_unhide, help="show a hidden person or caption again",
                                 description="Take a person or a caption off GALLERY's hide list."))


def add_hiding_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("gallery", type=Path, metavar="GALLERY")
    parser.add_argument("name", nargs="?", metavar="NAME", help="the person's identity or shown name")
    parser.add_argument("--caption", metavar="TEXT", help="a whole caption, as shown")


def run_forget(args: argparse.Namespace) -> int:
    outcome = forget(args.gallery, args.name, args.wait)
    if outcome.published:
        print(f"published {args.gallery} -> {outcome.published} without {outcome.identity} ({outcome.faces} "
              "face(s)); a running kiosk swaps to it at its next break between visitors, within a minute")
    else:
        print(f"{outcome.identity} is not in the live version of {args.gallery} (forgotten before)")
    for version in outcome.purged:
        print(f"  kept version rewritten without them: {version.name}")
    print(f"  on the forget list {gallery_home(args.gallery) / FORGET_FILE}: no later build brings them back, "
          "and the kiosk drops their exposure counts")
    for version in outcome.still_held:
        print(f"warning: {version} was still open in another process (a kiosk that has not swapped?) when it was "
              "removed", file=sys.stderr)
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    print(f"rolled back {args.gallery} -> {rollback(args.gallery, args.wait)}")
    return 0


def run_hide(args: argparse.Namespace) -> int:
    if args.name is None and args.caption is None:
        hidden = hide_list(args.gallery)
        for person in hidden.people:
            print(f"person   {person}")
        for caption in hidden.captions:
            print(f"caption  {caption}")
        if not hidden:
            print(f"{args.gallery} hides nobody")
        return 0
    _one_of_name_or_caption(args)
    print(f"hidden in {args.gallery}: {hide(args.gallery, args.name, args.caption)!r} (within a visitor; "
          "`index-builder unhide` shows it again)")
    return 0


def run_unhide(args: argparse.Namespace) -> int:
    _one_of_name_or_caption(args)
    print(f"shown again in {args.gallery}: {unhide(args.gallery, args.name, args.caption)!r}")
    return 0


def _one_of_name_or_caption(args: argparse.Namespace) -> None:
    if (args.name is None) == (args.caption is None):
        raise ForgetError(f"{args.run.__name__.removeprefix('run_')}: give NAME or --caption TEXT, not both")


if __name__ == "__main__":
    sys.exit(main())
