"""Leaving the booth alone (issue 21, items 1, 4 and 6): the systemd user service and the autostart
entry (absolute paths, verified by systemd itself), the staff PIN an install needs (never set from
the touch screen), systemd's watchdog fed from the GUI thread, the monitor chosen for fullscreen,
the fullscreen locked down, the cameras found, and setup_kiosk.sh asking only when it installs."""
from __future__ import annotations

import io
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest

from conftest import FlakyCamera
from kiosk import camera as camera_module
from kiosk import lockdown, systemd
from kiosk.cli import main as kiosk_main
from kiosk.config import KioskConfig, check_pin, hash_pin, load_config, save_config
from kiosk.service import AUTOSTART, SERVICE, autostart_entry, display_environment, kiosk_command, service_unit
from kiosk.window import KioskWindow

ROOT = Path(__file__).resolve().parents[1]
NO_PIN = "no staff PIN set in"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user with no PIN yet, no terminal, nothing installed; the display :0."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    monkeypatch.setenv("DISPLAY", ":0")
    for name in ("WAYLAND_DISPLAY", "XAUTHORITY", "NOTIFY_SOCKET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    return tmp_path


def kiosk(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = kiosk_main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def pin_file(folder: Path, pin: str = "2468") -> Path:
    path = folder / "pin"
    path.write_text(pin + "\n")
    return path


def lines_of(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(key + "=")]


def command_words(line: str) -> list[str]:
    """A unit's ExecStart as systemd splits it (for these words: quotes, backslashes, %% and $$)."""
    return [word.replace("%%", "%") for word in shlex.split(line.replace("$$", "$"))]


def desktop_words(exec_value: str) -> list[str]:
    """A desktop entry's Exec as the Desktop Entry spec splits it: the string value's escapes, then
    the quoting (a backslash in quotes escapes ", `, $ and itself), then %% is %."""
    text = exec_value.replace("\\\\", "\\")
    words = re.findall(r'"((?:[^"\\]|\\.)*)"|(\S+)', text)
    return [(re.sub(r"\\(.)", r"\1", quoted) if quoted else plain).replace("%%", "%") for quoted, plain in words]


def verified(unit: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is absent: the unit is not verified here")
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


# the service and the autostart entry -----------------------------------------------------------
def test_install_service_writes_a_unit_systemd_verifies_and_says_how_to_enable_it(home, capsys, monkeypatch):
    monkeypatch.chdir(home)
    code, out, err = kiosk(capsys, "--config", "settings/kiosk.toml", "--install-service", "--unit-dir", "units",
                           "--pin-file", str(pin_file(home)))
    assert (code, err) == (0, ""), err
    unit_path = home / "units" / SERVICE
    unit = unit_path.read_text(encoding="utf-8")
    config = home / "settings" / "kiosk.toml"
    program, *rest = command_words(lines_of(unit, "ExecStart")[0])
    assert Path(program).is_absolute() and os.access(program, os.X_OK)
    assert rest == ["--config", str(config), "--fullscreen"]
    assert lines_of(unit, "WorkingDirectory") == [str(config.parent)] and config.parent.is_dir()
    assert lines_of(unit, "Environment") == ["DISPLAY=:0", "QT_QPA_PLATFORM=xcb", "XDG_RUNTIME_DIR=%t"]
    for setting in ("Type=notify", "Restart=always", "RestartSec=5", "StartLimitIntervalSec=0", "WatchdogSec=30",
                    "WantedBy=default.target"):
        assert setting in unit.splitlines(), setting
    assert "RestartSteps" not in unit, "systemd 252 knows no RestartSteps"
    for step in (f"systemctl --user enable --now {SERVICE}", "loginctl enable-linger", "systemctl --user daemon-reload",
                 f"cp {unit_path} {home / 'config-home' / 'systemd' / 'user'}/"):
        assert step in out, step
    assert check_pin("2468", load_config(config).pin_hash)
    verified(unit_path)


def test_without_unit_dir_the_unit_goes_to_the_users_systemd_folder(home, capsys):
    save_config(KioskConfig(gallery=str(home / "gallery"), pin_hash=hash_pin("2468")), home / "kiosk.toml")
    code, out, err = kiosk(capsys, "--config", str(home / "kiosk.toml"), "--install-service")
    assert (code, err) == (0, "")
    assert (home / "config-home" / "systemd" / "user" / SERVICE).is_file() and " cp " not in out
    assert "names no gallery" not in out


@pytest.mark.parametrize("environ, expected", [
    ({}, {"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}),
    ({"DISPLAY": ":1", "XAUTHORITY": "/run/user/1000/gdm/Xauthority"},
     {"DISPLAY": ":1", "XAUTHORITY": "/run/user/1000/gdm/Xauthority", "QT_QPA_PLATFORM": "xcb"}),
    ({"WAYLAND_DISPLAY": "wayland-0"}, {"WAYLAND_DISPLAY": "wayland-0", "QT_QPA_PLATFORM": "wayland"}),
    ({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"},
     {"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland;xcb"}),
])
def test_the_unit_takes_the_display_the_install_ran_on(environ, expected):
    assert display_environment(environ) == expected


def test_odd_paths_survive_the_unit_and_the_desktop_entry_and_still_verify(home):
    config = home / "a folder 100% $HOME \"quoted\" back\\slash" / "kiosk.toml"
    unit = service_unit(config, {"DISPLAY": ":0", "XAUTHORITY": "/tmp/x auth"})
    assert command_words(lines_of(unit, "ExecStart")[0]) == kiosk_command(config)
    assert lines_of(unit, "WorkingDirectory") == [str(config.parent).replace("%", "%%")]
    assert '"XAUTHORITY=/tmp/x auth"' in lines_of(unit, "Environment")
    (home / "units").mkdir()
    (home / "units" / SERVICE).write_text(unit, encoding="utf-8")
    verified(home / "units" / SERVICE)
    entry = autostart_entry(config)
    assert desktop_words(lines_of(entry, "Exec")[0]) == kiosk_command(config)
    assert lines_of(entry, "Path") == [str(config.parent).replace("\\", "\\\\")]
    with pytest.raises(ValueError, match="line break"):
        service_unit(home / "two\nlines" / "kiosk.toml")


def test_the_autostart_entry_stays_with_the_services_absolute_command(home, capsys, monkeypatch):
    monkeypatch.chdir(home)
    code, out, err = kiosk(capsys, "--config", "kiosk.toml", "--install-autostart", "--pin-file", str(pin_file(home)))
    assert (code, err) == (0, "")
    entry = (home / "config-home" / "autostart" / AUTOSTART).read_text(encoding="utf-8")
    assert desktop_words(lines_of(entry, "Exec")[0]) == kiosk_command(home / "kiosk.toml")
    assert kiosk_command(home / "kiosk.toml")[1:] == ["--config", str(home / "kiosk.toml"), "--fullscreen"]
    assert lines_of(entry, "Path") == [str(home)] and "Type=Application" in entry
    assert 'names no gallery yet: add gallery = "/path/to/gallery"' in out


# a PIN visitors cannot set -----------------------------------------------------------------------
@pytest.mark.parametrize("install", ["--install-service", "--install-autostart"])
def test_with_no_terminal_no_pin_file_and_no_pin_an_install_is_refused(home, capsys, install):
    code, out, err = kiosk(capsys, "--config", str(home / "kiosk.toml"), install, "--unit-dir", str(home / "units"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and out == "", err
    assert err.startswith(f"kiosk: {NO_PIN} {home / 'kiosk.toml'} and no terminal to ask for one: give --pin-file")
    assert not (home / "units").exists() and not (home / "kiosk.toml").exists()
    assert not (home / "config-home").exists()


def test_with_a_pin_set_already_an_install_asks_nothing(home, capsys):
    save_config(KioskConfig(pin_hash=hash_pin("1357")), home / "kiosk.toml")
    code, out, err = kiosk(capsys, "--config", str(home / "kiosk.toml"), "--install-service", "--install-autostart",
                           "--unit-dir", str(home / "units"))
    assert (code, err) == (0, "")
    assert {path.name for path in (home / "units").iterdir()} == {SERVICE, AUTOSTART}
    assert check_pin("1357", load_config(home / "kiosk.toml").pin_hash)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("typed, code", [(["2468", "2468"], 0), (["2468", "1357"], 2), (["12", "12"], 2)])
def test_on_a_terminal_an_install_asks_for_the_pin_twice(home, capsys, monkeypatch, typed, code):
    monkeypatch.setattr(sys, "stdin", Terminal())
    answers = iter(typed)
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    done, _, err = kiosk(capsys, "--config", str(home / "kiosk.toml"), "--install-service",
                         "--unit-dir", str(home / "units"))
    assert done == code and (home / "units" / SERVICE).exists() == (code == 0), err
    if code == 0:
        assert check_pin("2468", load_config(home / "kiosk.toml").pin_hash)
    else:
        assert len(err.strip().splitlines()) == 1 and not (home / "kiosk.toml").exists()


def test_a_bad_pin_file_installs_nothing(home, capsys):
    code, _, err = kiosk(capsys, "--config", str(home / "kiosk.toml"), "--install-service", "--unit-dir",
                         str(home / "units"), "--pin-file", str(pin_file(home, "abcd")))
    assert code == 2 and err.startswith("kiosk: the PIN must be 4 to 12 digits") and not (home / "units").exists()


# systemd's watchdog ------------------------------------------------------------------------------
@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A datagram socket standing in for systemd's, named in $NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield sock


def received(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


def test_sd_notify_without_systemd_does_nothing(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.sd_notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/notify")
    assert systemd.sd_notify("READY=1") is False


def test_the_watchdog_says_ready_then_is_fed_at_most_once_a_second(notify_socket):
    now = [100.0]
    watchdog = systemd.Watchdog(clock=lambda: now[0])
    for step in (0.0, 0.5, 0.4, 0.1, 0.2, 0.9):
        now[0] += step
        watchdog.feed()
    assert received(notify_socket) == ["READY=1", "WATCHDOG=1", "WATCHDOG=1"]


def test_an_abstract_notify_socket_is_reached(monkeypatch):
    name = f"other-me-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.sd_notify("WATCHDOG=1") and sock.recv(100) == b"WATCHDOG=1"


def booth(qtbot, tmp_path: Path, **settings) -> KioskWindow:
    folder = tmp_path / "room"
    folder.mkdir(exist_ok=True)
    cv2.imwrite(str(folder / "room.png"), np.full((120, 160, 3), 120, np.uint8))
    config = KioskConfig(gallery=str(tmp_path / "no-gallery"), **settings)
    window = KioskWindow(config, tmp_path / "kiosk.toml", FlakyCamera(str(folder), hold_seconds=3600, fps=30))
    qtbot.addWidget(window)
    return window


def test_the_window_feeds_the_watchdog_from_its_gui_thread_only(qtbot, tmp_path, notify_socket):
    window = booth(qtbot, tmp_path)
    window.show_windowed()
    qtbot.waitUntil(lambda: "READY=1" in received(notify_socket), timeout=2000)
    qtbot.waitUntil(lambda: "WATCHDOG=1" in received(notify_socket), timeout=3000)
    time.sleep(2.5)  # the GUI thread hangs: no other thread feeds the watchdog for it
    assert received(notify_socket) == []
    qtbot.waitUntil(lambda: "WATCHDOG=1" in received(notify_socket), timeout=3000)


def test_the_units_own_command_says_ready_and_feeds_the_watchdog(home, tmp_path):
    """The unit's ExecStart, in its WorkingDirectory with its environment (offscreen: no X here),
    run as systemd would: READY=1, then WATCHDOG=1 every second."""
    config = home / "settings" / "kiosk.toml"
    save_config(KioskConfig(gallery=str(home / "no-gallery"), camera=str(home / "no-camera"),
                            pin_hash=hash_pin("2468")), config)
    unit = service_unit(config, {"DISPLAY": ":0"})
    environment = dict(line.split("=", 1) for line in lines_of(unit, "Environment"))
    environment.update(QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(home))
    path = home / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(60)
        process = subprocess.Popen(command_words(lines_of(unit, "ExecStart")[0]),
                                   cwd=lines_of(unit, "WorkingDirectory")[0],
                                   env={**os.environ, **environment, "NOTIFY_SOCKET": str(path)},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            messages = [sock.recv(100).decode() for _ in range(3)]
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
    assert messages == ["READY=1", "WATCHDOG=1", "WATCHDOG=1"]


# screens, input and lockdown ---------------------------------------------------------------------
class KeySpy(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.keys: list[int] = []

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.KeyPress:
            self.keys.append(event.key())  # type: ignore[attr-defined]
        return False


def test_fullscreen_hides_the_pointer_and_ignores_keys_closing_and_leaving_until_staff_quit(qtbot, tmp_path, caplog):
    window = booth(qtbot, tmp_path, pin_hash=hash_pin("2468"))
    window.show_fullscreen()
    qtbot.waitExposed(window)
    assert window.isFullScreen() and QGuiApplication.overrideCursor().shape() == Qt.CursorShape.BlankCursor
    spy = KeySpy()
    window.attract.installEventFilter(spy)
    window.attract.setFocus()
    plain, alt, control = (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.AltModifier,
                           Qt.KeyboardModifier.ControlModifier)
    for key, modifier in ((Qt.Key.Key_Escape, plain), (Qt.Key.Key_F4, alt), (Qt.Key.Key_Q, control),
                          (Qt.Key.Key_F11, plain), (Qt.Key.Key_Space, plain)):
        QTest.keyClick(window.attract, key, modifier)
    assert spy.keys == []
    with caplog.at_level(logging.INFO, logger="kiosk.lockdown"):
        assert window.close() is False
    assert window.isVisible() and "quit from the staff panel" in caplog.text
    window.showNormal()  # the window manager's way out of fullscreen
    qtbot.waitUntil(window.isFullScreen, timeout=2000)
    window.staff_panel.open()
    for key in "2468✓":
        window.pin.press(key)
    window.staff.setFocus()
    QTest.keyClick(window.staff, Qt.Key.Key_A)
    window.staff.installEventFilter(spy)
    QTest.keyClick(window.staff, Qt.Key.Key_B)
    assert spy.keys == [Qt.Key.Key_B], "the staff panel takes keys"
    window.staff.quit.emit()  # the hold-to-quit button
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=2000)
    assert QGuiApplication.overrideCursor() is None


def test_a_missing_screen_gives_one_warning_and_the_primary_one(qtbot, tmp_path, caplog):
    window = booth(qtbot, tmp_path, screen=3)
    with caplog.at_level(logging.WARNING, logger="kiosk.lockdown"):
        window.show_fullscreen()
    warnings = [record.getMessage() for record in caplog.records if record.name == "kiosk.lockdown"]
    assert len(warnings) == 1 and warnings[0].startswith("screen 3 not found (1 found: 0: ")
    assert window.screen() is QGuiApplication.primaryScreen() and window.isFullScreen()
    window.lockdown.quit()


SCREENS = """{"screens": [
  {"name": "left", "x": 0, "y": 0, "width": 800, "height": 600, "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1},
  {"name": "right", "x": 800, "y": 0, "width": 1024, "height": 768, "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}
]}"""
ON_TWO_SCREENS = """
import logging, sys
from PySide6.QtWidgets import QApplication, QMainWindow
from kiosk.lockdown import Lockdown
logging.basicConfig(level=logging.WARNING, format="%(message)s")
app = QApplication([])
for wanted in (1, 0, 2):
    window = QMainWindow()
    lockdown = Lockdown(window, lambda: False)
    lockdown.show_fullscreen(wanted)
    app.processEvents()
    geometry = window.geometry()
    print(wanted, window.screen().name(), geometry.x(), geometry.width(), window.isFullScreen())
    lockdown.quit()
"""


def test_screen_n_fills_that_monitor(tmp_path):
    """Two monitors (Qt's offscreen platform, configured): screen 1 is the right one; screen 2 is none."""
    (tmp_path / "screens.json").write_text(SCREENS)
    done = subprocess.run([sys.executable, "-c", ON_TWO_SCREENS], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT),
                               "QT_QPA_PLATFORM": f"offscreen:configfile={tmp_path / 'screens.json'}"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["1 right 800 1024 True", "0 left 0 800 True", "2 left 0 800 True"]
    assert done.stderr.splitlines() == ["screen 2 not found (2 found: 0: left 800x600, 1: right 1024x768): "
                                        "fullscreen on the primary screen"]


def test_screen_comes_from_the_command_line_bounded(home, capsys, monkeypatch):
    seen = []
    monkeypatch.setattr("kiosk.cli.run_window", lambda config, path, prepare=None: seen.append(config.screen) or 0)
    assert kiosk(capsys, "--config", str(home / "kiosk.toml"), "--gallery", "g", "--screen", "1")[0] == 0
    with pytest.raises(SystemExit) as refused:
        kiosk_main(["--config", str(home / "kiosk.toml"), "--gallery", "g", "--screen", "16"])
    err = capsys.readouterr().err
    assert seen == [1] and refused.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith("kiosk: argument --screen: must be a whole number from 0 to 15, not '16'")


# the cameras found -------------------------------------------------------------------------------
def test_only_video_nodes_that_capture_are_cameras(tmp_path, monkeypatch):
    for name in ("video0", "video1", "video10", "video2", "videox", "null"):
        (tmp_path / name).write_text("")
    assert camera_module.found_cameras(tmp_path) == [], "plain files answer no V4L2 question"
    assert camera_module.capture_card(Path("/dev/null")) is None, "nor does a device that is not a camera"
    cards = {"video0": "HD Webcam", "video1": None, "video10": "Capture card", "video2": "USB camera"}
    monkeypatch.setattr(camera_module, "capture_card", lambda node: cards.get(node.name))
    assert camera_module.found_cameras(tmp_path) == [("0", "HD Webcam"), ("2", "USB camera"), ("10", "Capture card")]


def test_the_staff_panel_lists_the_cameras_found_to_pick_by_touch(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr("kiosk.staff.found_cameras", lambda: [("0", "HD Webcam"), ("2", "USB camera")])
    window = booth(qtbot, tmp_path, pin_hash=hash_pin("2468"), camera=str(tmp_path / "room"))
    window.show_windowed()
    window.staff_panel.open()
    for key in "2468✓":
        window.pin.press(key)
    combo = window.staff.camera
    assert [combo.itemText(i) for i in range(combo.count())] == [str(tmp_path / "room"), "0: HD Webcam",
                                                                 "2: USB camera"]
    combo.setCurrentIndex(2)
    assert window.staff.chosen_camera() == "2"
    combo.setEditText("clip.mp4")
    assert window.staff.chosen_camera() == "clip.mp4"


# setup_kiosk.sh ----------------------------------------------------------------------------------
FAKE_TOOL = '#!/bin/sh\necho "$(basename "$0") $*" >> "$(dirname "$0")/../calls"\n'


def fake_checkout(tmp_path: Path) -> Path:
    """setup_kiosk.sh beside a .venv already set up (so it only verifies), whose tools log their calls."""
    folder = tmp_path / "checkout"
    (folder / ".venv" / "bin").mkdir(parents=True)
    for name in ("setup_kiosk.sh", "pyproject.toml"):
        shutil.copy(ROOT / name, folder / name)
    for tool in ("python", "index-builder", "kiosk"):
        path = folder / ".venv" / "bin" / tool
        path.write_text(FAKE_TOOL)
        path.chmod(stat.S_IRWXU)
    digest = subprocess.run(["sha256sum", "pyproject.toml"], cwd=folder, capture_output=True, text=True).stdout[:16]
    (folder / ".venv" / ".other-me-setup").write_text(f"cpu ray=yes {digest}\n")
    return folder


@pytest.mark.parametrize("options, installs", [
    ([], []),
    (["--service", "--pin-file", "/srv/pin"], ["kiosk --install-service --pin-file /srv/pin"]),
    (["--autostart", "--service"], ["kiosk --install-service", "kiosk --install-autostart"]),
])
def test_setup_installs_and_asks_only_when_told_to(tmp_path, options, installs):
    folder = fake_checkout(tmp_path)
    done = subprocess.run(["./setup_kiosk.sh", "--cpu", "--ray", "--no-system", *options], cwd=folder,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    calls = (folder / ".venv" / "calls").read_text().splitlines()
    assert calls == ["index-builder doctor", *installs]


XSET_Q = """Screen Saver:
  prefer blanking:  yes    allow exposures:  yes
  timeout:  600    cycle:  600
DPMS (Energy Star):
  DPMS is Enabled
"""


def test_the_display_is_kept_awake_with_xset_and_put_back_as_it_was(monkeypatch):
    calls: list[list[str]] = []

    def run(command: list[str], **_: object) -> subprocess.CompletedProcess:
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, XSET_Q if command == ["xset", "q"] else "", "")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name)
    restore = lockdown.x_blanking_off(run)
    assert calls == [["xset", "q"], ["xset", "s", "off", "s", "noblank", "-dpms"]]
    restore()
    assert calls[-1] == ["xset", "s", "600", "s", "blank", "+dpms"]
    monkeypatch.delenv("DISPLAY")
    calls.clear()
    assert lockdown.x_blanking_off(run) is lockdown.nothing and calls == [], "no X display: nothing to do"
