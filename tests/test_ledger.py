"""The exposure ledger as a hostile disk and a long week meet it (issue 22, items 1 and 8): damaged
files are set aside with one line and counting starts afresh, never an exception; counts stay whole
numbers from 0 to 2^53; saves are written off the inference thread, one writer at a time, and a
full disk is said once; the ledger is pruned to the gallery it serves.

The property tests mutate a valid ledger (bytes flipped, cut short, counts replaced by huge,
negative, NaN, float or string values, sections of another type, deep nesting, other top-level
types): the "fast" profile tries a few, the "ci" profile (CI=true) at least 1,000 (tests/conftest.py)."""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import PHOTOS, SMALL_GALLERY, Galleries, need, search
from face_engine.fairness import FairPolicy
from face_engine.gallery import Gallery, face_record
from kiosk import ledger as ledger_module
from kiosk.ledger import FORMAT, MAX_COUNT, Ledger, encoded

VALID: dict[str, Any] = {"format": FORMAT, "counts": {"ab" * 20 + ":0": 3, "cd" * 20 + ":1": 0},
                         "people": {"Tony_Blair": 3, "cd" * 20 + ":1": 0}}
HOSTILE_COUNTS = [2**63, 2**63 - 1, 2**64 + 1, 10**400, MAX_COUNT + 1, -1, 1.5, 1e300, "3", "NaN", True, None, [],
                  {}, [3], {"n": 3}]
CONSTANTS = ["NaN", "Infinity", "-Infinity"]  # what Python's json writes for float("nan") and friends


def face(number: int, identity: str = "") -> Any:
    return face_record(number, image="", identity=identity, display_name="", caption="", source="", x1=0, y1=0,
                       x2=1, y2=1, score=1.0, photo_sha1=f"{number:040x}", photo_face=0)


def valid_counts(ledger: Ledger) -> bool:
    return all(type(n) is int and 0 <= n <= MAX_COUNT
               for n in [*ledger.counts.values(), *ledger.people.values()])


@contextlib.contextmanager
def warnings_logged() -> Iterator[list[str]]:
    """The warnings the ledger logs meanwhile, as lines."""
    lines: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger(ledger_module.__name__)
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


# --- damaged files, generated ---

@st.composite
def damaged_ledger(draw: st.DrawFn) -> bytes:
    """A valid ledger's text, mutated: counts replaced, sections or the whole of another type, deep
    nesting, NaN and infinities, then perhaps bytes flipped or cut short."""
    data: Any = json.loads(json.dumps(VALID))
    text = None
    match draw(st.sampled_from(["count", "section", "top", "deep", "constant", "none"])):
        case "count":
            section = draw(st.sampled_from(["counts", "people"]))
            key = draw(st.sampled_from([*data[section], "new key", "\n\x00"]))
            data[section][key] = draw(st.sampled_from(HOSTILE_COUNTS))
        case "section":
            section = draw(st.sampled_from(["counts", "people", "format"]))
            data[section] = draw(st.sampled_from([None, [], 3, "x", [["a", 1]], {"a": {"b": 1}}, "other-me-exposure"]))
        case "top":
            data = draw(st.sampled_from([[], [VALID], "ledger", 3, None, True]))
        case "deep":
            depth = draw(st.sampled_from([50, 5_000, 100_000]))
            text = json.dumps(data).replace('"counts": {', '"counts": {"x": ' + "[" * depth + "]" * depth + ", ", 1)
        case "constant":
            section, constant = draw(st.sampled_from(["counts", "people"])), draw(st.sampled_from(CONSTANTS))
            text = json.dumps(data).replace(f'"{section}": {{', f'"{section}": {{"n": {constant}, ', 1)
        case "none":
            pass
    raw = (text if text is not None else json.dumps(data, allow_nan=True)).encode()
    flips = draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=3))
    for where, value in flips:
        raw = raw[:where] + bytes([value]) + raw[where + 1:]
    return raw[:draw(st.integers(0, len(raw)))] if draw(st.booleans()) else raw


@given(damaged_ledger())
def test_a_damaged_ledger_loads_fresh_or_whole_never_an_exception(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "exposure.json"
        path.write_bytes(raw)
        with warnings_logged() as warnings:
            ledger = Ledger(path)
        assert valid_counts(ledger)
        aside = path.with_suffix(".damaged")
        if aside.exists():
            assert aside.read_bytes() == raw, "the damaged file is set aside as it was"
            assert ledger.counts == {} == ledger.people
            assert len(warnings) == 1 and str(path) in warnings[0] and "set aside as exposure.damaged" in warnings[0]
            assert "\n" not in warnings[0]
        else:
            assert warnings == [] and path.read_bytes() == raw, "a ledger that loads is left as it is"
        ledger.record([face(1, "Zico")])
        ledger.summary(["Zico", "Tony_Blair"])
        assert ledger.save(), "a fresh ledger is written where the damaged one was"
        again = Ledger(path)
        assert (again.counts, again.people) == (ledger.counts, ledger.people)


@given(st.dictionaries(st.text(max_size=50), st.integers(0, MAX_COUNT), max_size=50),
       st.dictionaries(st.text(max_size=50), st.integers(0, MAX_COUNT), max_size=50))
def test_what_the_ledger_writes_it_reads_back(counts: dict[str, int], people: dict[str, int]) -> None:
    snapshot = {"format": FORMAT, "counts": counts, "people": people}
    assert json.loads("".join(encoded(snapshot))) == snapshot
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "exposure.json"
        ledger = Ledger(path)
        ledger.counts, ledger.people = dict(counts), dict(people)
        assert ledger.save()
        again = Ledger(path)
        assert (again.counts, again.people) == (counts, people)


# --- the cases of issue 22, one each ---

@pytest.mark.parametrize("count, says", [
    (2**63 + 5, "counts['" + "ab" * 20 + ":0'] is 9223372036854775813: a count is a whole number from 0 to 2^53"),
    (2**63 - 1, "is 9223372036854775807: a count is a whole number"),
    (1.5, "is 1.5"), ("3", "is '3'"), (-1, "is -1"), (True, "is True")])
def test_a_count_out_of_range_or_of_another_type_sets_the_ledger_aside(tmp_path, count, says):
    path = tmp_path / "exposure.json"
    path.write_text(json.dumps({**VALID, "counts": {"ab" * 20 + ":0": count}}))
    with warnings_logged() as warnings:
        ledger = Ledger(path)
    assert ledger.counts == {} and len(warnings) == 1 and says in warnings[0] and str(path) in warnings[0]
    assert (tmp_path / "exposure.damaged").exists() and not path.exists()


@pytest.mark.parametrize("constant", CONSTANTS)
def test_nan_and_infinite_counts_set_the_ledger_aside(tmp_path, constant):
    path = tmp_path / "exposure.json"
    path.write_text(f'{{"format": "{FORMAT}", "counts": {{"a:0": {constant}}}, "people": {{}}}}')
    with warnings_logged() as warnings:
        Ledger(path)
    assert len(warnings) == 1 and f"{constant} is not a count" in warnings[0]


def test_a_deeply_nested_ledger_is_set_aside_naming_the_file(tmp_path):
    path = tmp_path / "exposure.json"
    path.write_text('{"format": "other-me-exposure", "counts": ' + "[" * 200_000 + "]" * 200_000 + "}")
    with warnings_logged() as warnings:
        ledger = Ledger(path)
    assert ledger.counts == {} and len(warnings) == 1 and "nested too deeply" in warnings[0]
    assert str(path) in warnings[0] and (tmp_path / "exposure.damaged").exists()


def test_a_fifo_at_the_ledger_path_is_set_aside_not_waited_on(tmp_path):
    path = tmp_path / "exposure.json"
    os.mkfifo(path)
    with warnings_logged() as warnings:
        Ledger(path)
    assert len(warnings) == 1 and "not a regular file" in warnings[0]


def test_a_ledger_over_the_size_cap_is_set_aside_unread(tmp_path, monkeypatch):
    path = tmp_path / "exposure.json"
    path.write_text(json.dumps(VALID))
    monkeypatch.setattr(ledger_module, "MAX_BYTES", 10)
    with warnings_logged() as warnings:
        Ledger(path)
    assert len(warnings) == 1 and "a ledger has at most 10" in warnings[0]


def test_counts_stop_at_the_maximum_and_the_summary_sums_past_2_63(tmp_path):
    ledger = Ledger(tmp_path / "exposure.json")
    people = [f"person {n}" for n in range(3000)]
    ledger.people = dict.fromkeys(people, MAX_COUNT)
    ledger.counts = {face(1).content_key: MAX_COUNT}
    ledger.record([face(1)])
    assert ledger.counts[face(1).content_key] == MAX_COUNT, "a count stays within what the ledger reads back"
    summary = ledger.summary(people)
    assert summary.showings == 3000 * MAX_COUNT > 2**63 and summary.shown_people == 3000 and summary.gini == 0.0
    assert ledger.save() and Ledger(tmp_path / "exposure.json").people == ledger.people


def test_keep_only_drops_people_and_faces_no_longer_in_the_gallery(tmp_path):
    ledger = Ledger(tmp_path / "exposure.json")
    ledger.record([face(1, "Zico"), face(2, "Tony_Blair"), face(3)])
    assert ledger.keep_only(["Zico", face(3).person_key], [face(1).content_key, face(3).content_key]) == 2
    assert ledger.people == {"Zico": 1, face(3).person_key: 1}
    assert ledger.counts == {face(1).content_key: 1, face(3).content_key: 1}
    ledger.flush()
    assert Ledger(tmp_path / "exposure.json").people == ledger.people, "written on the next save"


# --- saving off the inference thread ---

@contextlib.contextmanager
def held_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Every ledger write waits at its fsync until the event is set."""
    release = threading.Event()
    real = os.fsync

    def slow_fsync(fd: int) -> None:
        release.wait(30)
        real(fd)

    monkeypatch.setattr(ledger_module.os, "fsync", slow_fsync)
    try:
        yield release
    finally:
        release.set()


def test_a_visit_does_not_wait_for_the_disk(tmp_path, monkeypatch):
    clock = [0.0]
    path = tmp_path / "exposure.json"
    ledger = Ledger(path, clock=lambda: clock[0])
    with held_disk(monkeypatch) as release:
        clock[0] = ledger_module.SAVE_SECONDS + 1
        start = time.perf_counter()
        ledger.record([face(1, "Zico")])
        ledger.flush(wait=False)  # the visitor has gone
        assert time.perf_counter() - start < 1.0 and not path.exists(), "handed over, not written on this thread"
        for number in range(2, 6):  # snapshots handed over meanwhile: only the newest is written next
            clock[0] += ledger_module.SAVE_SECONDS + 1
            ledger.record([face(number, "Zico")])
        release.set()
        ledger.flush()
    assert Ledger(path).people == {"Zico": 5}
    deadline = time.monotonic() + 5
    while any(thread.name == "ledger-writer" for thread in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(thread.name == "ledger-writer" for thread in threading.enumerate()), "no writer idles on"


def test_two_ledgers_of_one_file_share_its_one_writer(tmp_path, monkeypatch):
    path = tmp_path / "exposure.json"
    first = Ledger(path)
    writing = []
    real = ledger_module.Writer._write

    def counted(self: Any, snapshot: dict[str, Any]) -> bool:
        writing.append(1)
        assert len(writing) == 1, "never two writers of one file at once"
        try:
            return real(self, snapshot)
        finally:
            writing.pop()

    monkeypatch.setattr(ledger_module.Writer, "_write", counted)
    first.record([face(1, "Zico")])
    first.save(wait=False)
    second = Ledger(path)  # reads what the first one wrote, whole
    assert second.people == {"Zico": 1} and second._writer is first._writer


def test_a_full_disk_is_said_once_and_counting_goes_on(tmp_path, monkeypatch):
    path = tmp_path / "exposure.json"
    ledger = Ledger(path)

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ledger_module.os, "fsync", no_space)
    with warnings_logged() as warnings:
        for number in range(5):
            ledger.record([face(number, "Zico")])
            assert not ledger.save()
        assert ledger.people == {"Zico": 5} and not path.with_suffix(".tmp").exists(), "its half-written file freed"
        assert len(warnings) == 1 and "No space left on device" in warnings[0] and str(path) in warnings[0]
        monkeypatch.undo()
        ledger.flush()
    assert warnings[-1].endswith("is written again") and Ledger(path).people == {"Zico": 5}


# --- through the kiosk's worker ---

@pytest.fixture
def small_gallery(galleries: Galleries) -> Path:
    return galleries.built(SMALL_GALLERY) / "gallery"


def test_a_count_over_2_63_does_not_stop_the_visits(small_gallery, tmp_path, qtbot):
    from kiosk.worker import InferenceWorker

    path = tmp_path / "exposure.json"
    people = {key: 2**63 + 5 for key in Gallery(small_gallery, use_gpu=False).person_keys()}
    path.write_text(json.dumps({"format": FORMAT, "counts": {}, "people": people}))
    worker = InferenceWorker(str(small_gallery), "", "cpu", FairPolicy(0.5, delta=1.0), Ledger(path))
    worker.start_up()
    outcome = search(worker, cv2.imread(str(need(PHOTOS) / "fr_obama.jpg")))
    assert outcome.pairs and not outcome.failure, "the visitor is served"
    assert (tmp_path / "exposure.damaged").exists()
    summaries: list = []
    worker.exposure.connect(summaries.append)
    worker.report_exposure()
    assert summaries[-1].showings == len(outcome.pairs[0].matches)


def test_the_worker_prunes_the_ledger_to_its_gallery(small_gallery, tmp_path, qtbot):
    from kiosk.worker import InferenceWorker

    path = tmp_path / "exposure.json"
    path.write_text(json.dumps({"format": FORMAT, "counts": {"gone:0": 4}, "people": {"Somebody_Gone": 4,
                                                                                       "Zico": 2}}))
    ledger = Ledger(path)
    worker = InferenceWorker(str(small_gallery), "", "cpu", ledger=ledger)
    worker.start_up()
    assert ledger.people == {"Zico": 2} and ledger.counts == {}
    worker.between_visitors()
    ledger.flush()
    assert json.loads(path.read_text())["people"] == {"Zico": 2}
    assert not math.isnan(ledger.summary(worker.gallery.person_keys()).gini)


# --- a full disk: the ledger, the log and the heartbeat each say so once, and the kiosk goes on ---

FULL_DISK = '''
import logging, resource, signal, sys
from pathlib import Path
from kiosk.heartbeat import Heartbeat, Pulse
from kiosk.ledger import Ledger
from kiosk.log import setup_logging
from face_engine.gallery import face_record

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
setup_logging()
home = Path(sys.argv[1])
ledger, heartbeat = Ledger(home / "exposure.json"), Heartbeat(home / "heartbeat.json")
face = face_record(0, image="", identity="Zico", display_name="", caption="", source="", x1=0, y1=0, x2=1, y2=1,
                   score=1.0, photo_sha1="ab" * 20, photo_face=0)
log = logging.getLogger("soak")
limit = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, limit[1]))  # the disk is full: no file may grow
for visit in range(50):
    log.info("visit %d", visit)
    ledger.record([face])
    ledger.save()
    heartbeat.write(Pulse(written_at=0.0, pid=0, state="attract", uptime_seconds=visit))
resource.setrlimit(resource.RLIMIT_FSIZE, limit)
log.info("visit after")
ledger.save()
heartbeat.write(Pulse(written_at=0.0, pid=0, state="attract", uptime_seconds=51))
print(ledger.people["Zico"])
'''


def test_a_full_disk_is_said_once_each_and_the_kiosk_goes_on(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    done = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and done.stdout.strip() == "50", done.stderr
    assert "Traceback" not in done.stderr and "Logging error" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert sum("kiosk.log" in line and "cannot be written (File too large)" in line for line in lines) == 1, lines
    assert sum("exposure ledger" in line and "could not be written" in line for line in lines) == 1, lines
    assert sum("heartbeat not written" in line for line in lines) == 1, lines
    assert any("is written again" in line for line in lines)
    assert json.loads((tmp_path / "exposure.json").read_text())["people"] == {"Zico": 50}
    assert json.loads((tmp_path / "heartbeat.json").read_text())["uptime_seconds"] == 51
    assert "visit after" in (tmp_path / "state" / "other-me" / "kiosk.log").read_text()


@pytest.mark.slow
def test_the_soak_harness_runs_and_the_booth_stays_flat(small_gallery, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "soak.json"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "soak_kiosk.py"), "--gallery", str(small_gallery),
                           "--visits", "300", "--swap-every", "100", "--beat-every", "10", "--sample-every", "30",
                           "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=root)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    result = json.loads(out.read_text())
    assert result["swaps"] == 3 and result["served"] > 0 and result["disk_full"]["served"] > 0
    said = result["disk_full"]["said"]
    files = ("kiosk.log", "exposure.json", "heartbeat.json")
    assert [sum(name in line for line in said) for name in files] == [1, 1, 1], "each file said once"
    flat = result["flatness"]
    assert flat["open_files"]["last_tenth"] <= flat["open_files"]["first_tenth"] + 2
    assert flat["python_threads"]["max"] <= 4 and flat["ledger_bytes"]["max"] < 10_000
