"""The nightly rebuild (issue 21, item 2): `index-builder schedule` writes a timer and a service that
systemd accepts, whose ExecStart line is the build itself; every build records its outcome beside
build.lock, on every way out."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import SMALL_GALLERY, Galleries, copy_lfw_people
from index_builder.cli import main
from index_builder.lock import build_lock
from index_builder.outcome import HISTORY, BuildOutcome, history, last_outcome, outcomes_path, record
from index_builder.schedule import LOG_BACKUPS, LOG_BYTES, exec_line, rotate

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def schedule(tmp_path: Path, corpus: Path, out: Path, *extra: str) -> tuple[Path, Path]:
    assert main(["schedule", str(corpus), "--out", str(out), "--at", "03:30", "--unit-dir",
                 str(tmp_path / "units"), *extra]) == 0
    units = tmp_path / "units"
    return units / "other-me-rebuild-gallery.service", units / "other-me-rebuild-gallery.timer"


def settings(unit: Path) -> dict[str, str]:
    """The unit's KEY=VALUE lines (the last of each key)."""
    return dict(line.split("=", 1) for line in unit.read_text().splitlines() if "=" in line)


def exec_words(value: str) -> list[str]:
    """An Exec line's words, as systemd splits them (shell-like quoting; %% and $$ are % and $)."""
    return [word.replace("%%", "%").replace("$$", "$") for word in shlex.split(value)]


def test_the_units_have_absolute_paths_and_the_schedule_contract(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    service, timer = schedule(tmp_path, Path("corpus"), Path("galleries/gallery"), "--build-options",
                              "--pack", "sface", "--faces", "central")
    unit, clock = settings(service), settings(timer)
    assert clock["OnCalendar"] == "*-*-* 03:30:00" and clock["Persistent"] == "true"
    assert clock["WantedBy"] == "timers.target"
    assert unit["SuccessExitStatus"] == "1 3" and unit["Type"] == "oneshot"
    log = tmp_path / "galleries" / "gallery.d" / "rebuild.log"
    assert unit["StandardOutput"] == unit["StandardError"] == f"append:{log}"
    assert unit["WorkingDirectory"] == str(tmp_path / "galleries")
    words = exec_words(unit["ExecStart"])
    assert words[1:] == ["build", str(tmp_path / "corpus"), "--out", str(tmp_path / "galleries" / "gallery"),
                         "--pack", "sface", "--faces", "central"]
    assert all(Path(word).is_absolute() for word in (words[0], *exec_words(unit["ExecStartPre"])[::3]))
    assert log.parent.is_dir(), "the log's folder exists before the first night"
    out = capsys.readouterr().out
    assert "systemctl --user enable --now other-me-rebuild-gallery.timer" in out and "enable-linger" in out


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_both_units_with_no_warning(tmp_path):
    corpus = tmp_path / "my photos 100%"
    corpus.mkdir()
    service, timer = schedule(tmp_path, corpus, tmp_path / "gallery")
    verified = subprocess.run([SYSTEMD_ANALYZE, "verify", service.name, timer.name], cwd=service.parent,
                              capture_output=True, text=True, timeout=60)
    assert (verified.returncode, verified.stdout + verified.stderr) == (0, "")
    assert str(corpus) in exec_words(settings(service)["ExecStart"])


@pytest.mark.parametrize("at", ["24:00", "3", "03:60", "noon"])
def test_a_time_that_is_not_hh_mm_is_one_line_and_writes_nothing(tmp_path, capsys, at):
    code = main(["schedule", "corpus", "--out", str(tmp_path / "g"), "--at", at, "--unit-dir", str(tmp_path / "u")])
    err = capsys.readouterr().err
    assert code == 2 and "--at must be a time of day as HH:MM" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "u").exists()


def test_a_wrong_build_option_fails_when_scheduling_not_at_night(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["schedule", "corpus", "--out", str(tmp_path / "g"), "--at", "02:00", "--unit-dir", str(tmp_path / "u"),
              "--build-options", "--no-such-option"])
    assert exited.value.code == 2 and "--no-such-option" in capsys.readouterr().err
    assert not (tmp_path / "u").exists()


def test_exec_words_with_spaces_quotes_and_specifiers_survive():
    words = ["/a b/python", 'say "hi"', "100%", "$HOME", "back\\slash"]
    assert exec_words(exec_line("ExecStart", words).split("=", 1)[1]) == words


def test_the_log_is_rotated_past_its_size(tmp_path):
    log = tmp_path / "rebuild.log"
    log.write_text("small\n")
    rotate(log)
    assert log.read_text() == "small\n"
    for _night in range(LOG_BACKUPS + 2):
        log.write_bytes(b"x" * LOG_BYTES)
        rotate(log)
    assert not log.exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        f"rebuild.log.{number}" for number in range(1, LOG_BACKUPS + 1)]


def run_exec_start(service: Path) -> subprocess.CompletedProcess[str]:
    """The service's ExecStartPre and ExecStart, run as systemd would (its folder, its environment)."""
    unit = settings(service)
    env = {**os.environ, **dict([exec_words(unit["Environment"])[0].split("=", 1)])}
    subprocess.run(exec_words(unit["ExecStartPre"]), cwd=unit["WorkingDirectory"], env=env, check=True, timeout=60)
    return subprocess.run(exec_words(unit["ExecStart"]), cwd=unit["WorkingDirectory"], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_a_scheduled_build_run_by_its_exec_start_publishes_and_records(tmp_path, galleries: Galleries):
    corpus, out = galleries.copy(SMALL_GALLERY, tmp_path)
    service, _ = schedule(tmp_path, corpus, out)
    shutil.rmtree(corpus / "Zico")
    copy_lfw_people(corpus, {"Gerhard_Schroeder": 2})
    done = run_exec_start(service)
    assert done.returncode == 0, done.stderr
    outcome = last_outcome(out)
    assert outcome is not None and (outcome.exit_code, outcome.ok, outcome.result) == (0, True, "published")
    assert (outcome.faces_added, outcome.faces_removed, outcome.skipped, outcome.gallery_faces) == (2, 2, 0, 8)

    again = run_exec_start(service)
    assert again.returncode == 0 and "is up to date" in again.stdout
    assert [o.result for o in history(out)[-2:]] == ["published", "up to date"]
    assert last_outcome(out).faces_added == 0


def test_every_way_a_build_ends_is_recorded(tmp_path, galleries: Galleries, monkeypatch, capsys):
    corpus, out = galleries.copy({"Zico": 2}, tmp_path)
    command = ["build", str(corpus), "--out", str(out)]
    assert main(command) == 0
    assert main([*command, "--index-param", "nprobe=4"]) == 2
    with build_lock(out):
        assert main(command) == 3

    def interrupted(options):
        raise KeyboardInterrupt

    monkeypatch.setattr("index_builder.cli.build", interrupted)
    assert main(command) == 130

    def crashed(options):
        raise ZeroDivisionError("simulated")

    monkeypatch.setattr("index_builder.cli.build", crashed)
    with pytest.raises(ZeroDivisionError):
        main(command)
    capsys.readouterr()
    outcomes = history(out)
    assert [(o.exit_code, o.ok, o.result) for o in outcomes] == [
        (0, True, "up to date"), (2, False, "failed"), (3, True, "not run: another build held the lock"),
        (130, False, "interrupted"), (1, False, "crashed")]
    assert "--index-param" in outcomes[1].error and outcomes[4].error == "ZeroDivisionError: simulated"
    assert all(o.gallery_faces == 2 and o.faces_added == o.faces_removed == 0 for o in outcomes)
    assert outcomes[0].skipped == 0 and outcomes[1].skipped is None
    assert not [p.name for p in outcomes_path(out).parent.iterdir() if p.name.endswith(".tmp")]


def test_a_build_refused_before_the_lock_records_nothing(tmp_path, capsys):
    corpus = tmp_path / "gallery.d" / "photos"
    corpus.mkdir(parents=True)
    assert main(["build", str(corpus), "--out", str(tmp_path / "gallery")]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1
    assert not outcomes_path(tmp_path / "gallery").exists()


def an_outcome(code: int) -> BuildOutcome:
    return BuildOutcome("2026-01-01T03:00:00+08:00", code, "published", True, 1, 0, 0, 5, 1.5)


def test_the_history_is_bounded_and_a_damaged_one_starts_afresh(tmp_path):
    out = tmp_path / "gallery"
    (tmp_path / "gallery.d").mkdir()
    for code in range(HISTORY + 5):
        record(out, an_outcome(code))
    assert [o.exit_code for o in history(out)] == list(range(5, HISTORY + 5))
    outcomes_path(out).write_text("{not json")
    assert history(out) == [] and last_outcome(out) is None
    record(out, an_outcome(7))
    assert json.loads(outcomes_path(out).read_text())[0]["exit_code"] == 7
    assert "published (exit 7)" in an_outcome(7).summary()
