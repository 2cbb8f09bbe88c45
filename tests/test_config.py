"""The kiosk's config file and staff PIN: every setting checked with one line that says what is
wrong, the file kept private to its owner, and wrong PINs answered with a growing wait."""
from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiosk.cli import main as kiosk_main
from kiosk.config import (
    ConfigError,
    KioskConfig,
    PinGuard,
    check_pin,
    hash_pin,
    load_config,
    pin_hash_parts,
    save_config,
)

ROOT = Path(__file__).resolve().parents[1]
SLOW_HASH = "pbkdf2_sha256$10000000$" + "00" * 16 + "$" + "0" * 64  # checking it takes seconds

BAD_SETTINGS = [
    ('lookalikes = "five"', 'lookalikes must be an integer from 1 to 5, not "five"'),
    ("lookalikes = -3", "lookalikes must be an integer from 1 to 5, not -3"),
    ("lookalikes = 6", "lookalikes must be an integer from 1 to 5, not 6"),
    ("lookalikes = true", "lookalikes must be an integer from 1 to 5, not true"),
    ("idle_seconds = 0", "idle_seconds must be a positive number of seconds, not 0"),
    ('results_seconds = "30"', 'results_seconds must be a positive number of seconds, not "30"'),
    ("away_seconds = -8", "away_seconds must be a positive number of seconds, not -8"),
    ("countdown_seconds = nan", "countdown_seconds must be a positive number of seconds, not NaN"),
    ('lang = "fr"', 'lang must be one of zh, en, not "fr"'),
    ('device = "gpu"', 'device must be one of auto, cpu, cuda, not "gpu"'),
    ('fullscreen = "yes"', 'fullscreen must be true or false, not "yes"'),
    ("screen = 16", "screen must be a whole number from 0 (the primary screen) to 15, not 16"),
    ('screen = "1"', 'screen must be a whole number from 0 (the primary screen) to 15, not "1"'),
    ("screen = -1", "screen must be a whole number from 0 (the primary screen) to 15, not -1"),
    ("camera = 0", 'camera must be a string: a camera index in quotes ("0"), a video file or a folder, not 0'),
    ("gallery = [1, 2]", "gallery must be a string, not [1, 2]"),
    ('gallery = "' + "x" * 5000 + '"\nlang = "' + "y" * 5000 + '"', 'lang must be one of zh, en, not "yyyy'),
    ('kiosk = "x"', "unknown settings kiosk; known: away_seconds, camera"),
]
BAD_PIN_HASHES = [
    "2468",
    "pbkdf2_sha256$abc$00ff$" + "0" * 64,                    # iterations not a number
    "pbkdf2_sha256$1000$zz$" + "0" * 64,                     # salt not hex
    "pbkdf2_sha256$1000$0$" + "0" * 64,                      # odd hex
    "pbkdf2_sha256$99999999$00ff$" + "0" * 64,               # hours per check
    "pbkdf2_sha256$0$00ff$" + "0" * 64,
    "pbkdf2_sha256$1000$00ff$abc",                           # not a sha256 digest
    "pbkdf2_sha256$1000$00ff$" + "0" * 64 + "$more",
    "pbkdf2_sha256$١٠٠٠$00ff$" + "0" * 64,                   # digits, but not ASCII ones
    "md5$1000$00ff$" + "0" * 64,
]


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(text + "\n", encoding="utf-8")
    path.chmod(0o600)  # as the kiosk writes it: it may hold the PIN hash
    return path


@pytest.mark.parametrize("text, says", BAD_SETTINGS,
                         ids=[f"{i}-{says.split()[0]}" for i, (_, says) in enumerate(BAD_SETTINGS)])
def test_each_bad_setting_gets_one_line_naming_the_file_the_setting_and_what_is_expected(tmp_path, text, says):
    path = config_file(tmp_path, text)
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: ") and says in message and "\n" not in message
    assert len(message) < 400


@pytest.mark.parametrize("text", ["similarity_floor = -0.2\nsimilarity_ceiling = 0.6", "similarity_floor = 2"])
def test_the_retired_similarity_settings_load_with_one_warning_line_that_they_are_ignored(tmp_path, caplog, text):
    path = config_file(tmp_path, 'lang = "en"\n' + text)
    with caplog.at_level("WARNING"):
        config = load_config(path)
    assert config == KioskConfig(lang="en")
    warned = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(warned) == 1 and "\n" not in warned[0], warned
    assert warned[0].startswith(f"{path}: similarity_floor") and "ignored" in warned[0]
    assert "similarity" not in save_config(config, tmp_path / "saved.toml").read_text(), "saved without them"


@pytest.mark.parametrize("stored", BAD_PIN_HASHES)
def test_a_malformed_pin_hash_is_refused_on_load_and_never_matches(tmp_path, stored):
    assert check_pin("2468", stored) is False
    with pytest.raises(ConfigError, match=r"pin_hash must be a hash written by kiosk --set-pin"):
        load_config(config_file(tmp_path, f'pin_hash = "{stored}"'))


def test_a_toml_syntax_error_names_its_line(tmp_path):
    path = config_file(tmp_path, 'lang = "en"\nlookalikes = = 3')
    with pytest.raises(ConfigError, match=r"kiosk.toml: not a valid TOML file: .*line 2"):
        load_config(path)


def test_a_config_path_that_is_a_folder_or_not_text_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file: Is a directory"):
        load_config(tmp_path)
    (tmp_path / "latin1.toml").write_bytes('gallery = "Café"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not a valid TOML file: 'utf-8' codec"):
        load_config(tmp_path / "latin1.toml")


def test_good_settings_load_and_a_missing_file_gives_the_defaults(tmp_path):
    assert load_config(tmp_path / "absent.toml") == KioskConfig()
    pin_hash = hash_pin("2468")
    path = config_file(tmp_path, f'lookalikes = 3\nidle_seconds = 5\naway_seconds = 12\nlang = "en"\n'
                                 f'pin_hash = "{pin_hash}"')
    config = load_config(path)
    assert (config.lookalikes, config.idle_seconds, config.away_seconds, config.lang) == (3, 5, 12, "en")
    assert check_pin("2468", config.pin_hash) and not check_pin("2469", config.pin_hash)
    assert pin_hash_parts(pin_hash)[0] == 200_000


def test_the_saved_config_is_readable_by_its_owner_only(tmp_path):
    path = config_file(tmp_path, 'lang = "en"')
    path.chmod(0o644)
    stale = path.with_suffix(".tmp")
    stale.write_text("left by a crash")
    stale.chmod(0o666)
    save_config(KioskConfig(pin_hash=hash_pin("2468"), lookalikes=2), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_config(path).lookalikes == 2 and not stale.exists()


def set_pin(config: Path, typed: str) -> subprocess.CompletedProcess:
    """`kiosk --set-pin` in a child process without a terminal, its input piped."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "kiosk.cli", "--config", str(config), "--set-pin"], input=typed,
                          capture_output=True, text=True, timeout=120, env=env, start_new_session=True)


def set_pin_here(config: Path, typed: str, monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str]) -> subprocess.CompletedProcess:
    """What `set_pin` answers, from the kiosk's `main` in this process, `typed` as its piped input."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(typed))
    code = kiosk_main(["--config", str(config), "--set-pin"])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["kiosk"], code, out, err)


def test_set_pin_reads_piped_input_and_writes_a_private_file(tmp_path):
    path = tmp_path / "other-me" / "kiosk.toml"
    done = set_pin(path, "2468\n2468\n")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert check_pin("2468", load_config(path).pin_hash)


@pytest.mark.parametrize("typed, says", [("", "no PIN given (end of input); nothing changed"),
                                         ("2468\n", "no PIN given (end of input); nothing changed"),
                                         ("2468\n1357\n", "the two entries differ; nothing changed"),
                                         ("12\n12\n", "the PIN must be 4 to 12 digits (0-9)"),
                                         ("1234567890123\n", "the PIN must be 4 to 12 digits (0-9)")])
def test_set_pin_without_a_good_pin_changes_nothing(tmp_path, typed, says, monkeypatch, capsys):
    path = config_file(tmp_path, 'lang = "en"\npin_hash = "' + hash_pin("1111") + '"')
    before = path.read_bytes()
    done = set_pin_here(path, typed, monkeypatch, capsys)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"kiosk: {says}") and path.read_bytes() == before


def test_wrong_pins_earn_a_doubling_wait_up_to_a_cap():
    now = [0.0]
    guard = PinGuard(clock=lambda: now[0])
    good = hash_pin("2468")
    waits = []
    for _ in range(9):
        assert guard.attempt("1111", good) is False
        waits.append(guard.wait_left())
        now[0] += guard.wait_left()
    assert waits == [0, 0, 30, 60, 120, 240, 480, 900, 900]
    assert guard.attempt("2468", good) is True
    assert [guard.attempt("1111", good) for _ in range(3)] == [False] * 3 and guard.wait_left() == 30


def test_while_the_wait_runs_no_pin_is_even_checked():
    now = [0.0]
    guard = PinGuard(clock=lambda: now[0])
    good = hash_pin("2468")
    for _ in range(3):
        guard.attempt("1111", good)
    started = time.perf_counter()
    assert guard.attempt("2468", SLOW_HASH) is False
    assert time.perf_counter() - started < 1, "checking SLOW_HASH takes seconds"
    assert guard.failures == 3 and guard.wait_left() == 30
    now[0] += 29.5
    assert guard.wait_left() == 1 and guard.attempt("2468", good) is False
    now[0] += 0.5
    assert guard.attempt("2468", good) is True


def test_relative_paths_in_the_file_are_taken_from_its_own_folder(tmp_path, monkeypatch):
    path = config_file(tmp_path, 'gallery = "galleries/main"\ncamera = "clips/../clip.mp4"\n'
                                 'pack = "packs/mine"\nscreen = 1')
    monkeypatch.chdir(tmp_path.parent)  # wherever the kiosk is started from
    config = load_config(path)
    assert config.gallery == str(path.parent / "galleries" / "main")
    assert config.camera == str(path.parent / "clip.mp4") and config.pack == str(path.parent / "packs" / "mine")
    assert config.screen == 1


@pytest.mark.parametrize("camera", ["0", "12", "rtsp://camera.local/stream"])
def test_a_camera_index_a_url_and_a_packs_name_are_not_paths(tmp_path, camera):
    config = load_config(config_file(tmp_path, f'camera = "{camera}"\npack = "sface"\ngallery = "/abs/gallery"'))
    assert (config.camera, config.pack, config.gallery) == (camera, "sface", "/abs/gallery")


def test_settings_are_saved_with_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "elsewhere" / "kiosk.toml"
    save_config(KioskConfig(gallery="galleries/main", camera="clip.mp4"), path)
    text = path.read_text(encoding="utf-8")
    assert f'gallery = "{tmp_path / "galleries" / "main"}"' in text and f'camera = "{tmp_path / "clip.mp4"}"' in text
    assert load_config(path).gallery == str(tmp_path / "galleries" / "main"), "read back the same from anywhere"


def test_set_pin_takes_a_pin_file_and_refuses_a_bad_or_missing_one(tmp_path, monkeypatch, capsys):
    path = tmp_path / "kiosk.toml"
    pin_file = tmp_path / "pin"
    pin_file.write_text("13579\nignored\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # nothing is read from the input
    assert kiosk_main(["--config", str(path), "--set-pin", "--pin-file", str(pin_file)]) == 0
    assert check_pin("13579", load_config(path).pin_hash)
    before = path.read_bytes()
    pin_file.write_text("12ab\n")
    for given, says in ((pin_file, "kiosk: the PIN must be 4 to 12 digits (0-9)"),
                        (tmp_path / "absent", f"kiosk: cannot read {tmp_path / 'absent'}: No such file or directory")):
        capsys.readouterr()
        assert kiosk_main(["--config", str(path), "--set-pin", "--pin-file", str(given)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(says) and len(err.strip().splitlines()) == 1, err
        assert path.read_bytes() == before
