"""Starting the kiosk without anyone there: a systemd user service (started at boot with lingering,
restarted after a crash and, through its watchdog, when the window hangs) or, for desktops without
systemd, an XDG autostart entry. Both run the same absolute command with the same config file, in
the config file's folder, so nothing depends on where they were installed from.
"""
from __future__ import annotations

import getpass
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from index_builder.schedule import PLAIN_WORD, default_unit_dir, exec_line, refuse_line_breaks, unit_value
from models.folders import config_home, write_atomically

SERVICE = "other-me-kiosk.service"
AUTOSTART = "other-me-kiosk.desktop"
RESTART_SECONDS = 5  # a fixed pause: systemd 252 has no RestartSteps to lengthen it
WATCHDOG_SECONDS = 30  # the kiosk feeds it every second from the GUI thread (kiosk.systemd)


def autostart_folder() -> Path:
    return config_home() / "autostart"


def kiosk_command(config_path: Path) -> list[str]:
    """The kiosk, fullscreen, with `config_path`: every path absolute."""
    script = Path(os.path.abspath(sys.executable)).parent / "kiosk"
    program = [str(script)] if script.exists() else [os.path.abspath(sys.executable), "-m", "kiosk.cli"]
    return [*program, "--config", os.path.abspath(config_path), "--fullscreen"]


def display_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What Qt needs to reach the screen from a service, which starts with none of a session's
    variables: the display this install ran on (X's :0 when it ran on none) and X's authority file."""
    keep = {name: environ[name] for name in ("WAYLAND_DISPLAY", "DISPLAY", "XAUTHORITY") if environ.get(name)}
    if "WAYLAND_DISPLAY" in keep:
        return {**keep, "QT_QPA_PLATFORM": "wayland;xcb" if "DISPLAY" in keep else "wayland"}
    return {"DISPLAY": ":0", **keep, "QT_QPA_PLATFORM": "xcb"}


def desktop_word(word: str) -> str:
    """`word` as one argument of a desktop entry's Exec key (the Desktop Entry spec): quoted when it
    holds more than plain characters, then the string value's own escaping of backslashes."""
    refuse_line_breaks(word)
    word = word.replace("%", "%%")
    if PLAIN_WORD.fullmatch(word):
        return word
    return ('"' + re.sub(r'(["`$\\])', r"\\\1", word) + '"').replace("\\", "\\\\")


def service_unit(config_path: Path, environ: Mapping[str, str] = os.environ) -> str:
    """The systemd user unit that runs the kiosk, for `systemd-analyze verify` to find no fault with."""
    environment = "".join(exec_line("Environment", [f"{name}={value}"]) + "\n"
                          for name, value in display_environment(environ).items())
    return f"""# Written by `kiosk --install-service`: the kiosk's settings live in its config file.
[Unit]
Description=Meet the other me (遇见另一个我), the lookalike kiosk
After=graphical-session.target
# retried for ever, RestartSec apart: at boot the display may come up after the service does
StartLimitIntervalSec=0

[Service]
Type=notify
{exec_line("ExecStart", kiosk_command(config_path))}
WorkingDirectory={unit_value(os.path.abspath(config_path.parent))}
{environment}Environment=XDG_RUNTIME_DIR=%t
Restart=always
RestartSec={RESTART_SECONDS}
# the staff panel's quit (exit 0) is staff's choice: it stays quit until the service is started again
RestartPreventExitStatus=0
# the kiosk says WATCHDOG=1 every second from its GUI thread: a hung window is restarted too
WatchdogSec={WATCHDOG_SECONDS}

[Install]
WantedBy=default.target
"""


def autostart_entry(config_path: Path) -> str:
    """The XDG autostart entry: the same command as the service's, in the same folder."""
    folder = os.path.abspath(config_path.parent)
    refuse_line_breaks(folder)
    return ("[Desktop Entry]\nType=Application\nName=Meet the other me\nName[zh_CN]=遇见另一个我\n"
            f"Exec={' '.join(desktop_word(word) for word in kiosk_command(config_path))}\n"
            f"Path={folder.replace(chr(92), chr(92) * 2)}\nX-GNOME-Autostart-enabled=true\n")


def write_file(folder: Path, name: str, text: str) -> Path:
    path = folder.absolute() / name
    write_atomically(path, text)
    return path


def write_service(config_path: Path, folder: Path | None = None) -> str:
    """The unit written (into the user's systemd folder unless `folder`); what to do next."""
    unit = write_file(folder or default_unit_dir(), SERVICE, service_unit(config_path))
    config_path.parent.mkdir(parents=True, exist_ok=True)  # its working directory
    copy = "" if unit.parent == default_unit_dir() else f"  cp {unit} {default_unit_dir()}/\n"
    return (f"kiosk service written: {unit}\n  runs: {' '.join(kiosk_command(config_path))}\n"
            f"  on: {', '.join(f'{k}={v}' for k, v in display_environment(os.environ).items())}\n"
            f"to start it now, at every boot and after every crash or hang:\n{copy}"
            f"  systemctl --user daemon-reload\n  systemctl --user enable --now {SERVICE}\n"
            f"  sudo loginctl enable-linger {getpass.getuser()}   # start at boot, before anyone logs in\n"
            f"then: systemctl --user status {SERVICE}; journalctl --user -u {SERVICE}")


def write_autostart(config_path: Path, folder: Path | None = None) -> str:
    """The autostart entry written (into the user's autostart folder unless `folder`); what it runs."""
    entry = write_file(folder or autostart_folder(), AUTOSTART, autostart_entry(config_path))
    return f"autostart entry written: {entry}\n  runs: {' '.join(kiosk_command(config_path))}"
