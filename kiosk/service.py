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

from models.folders import config_home

SERVICE = "other-me-kiosk.service"
AUTOSTART = "other-me-kiosk.desktop"
RESTART_SECONDS = 5  # a fixed pause: systemd 252 has no RestartSteps to lengthen it
WATCHDOG_SECONDS = 30  # the kiosk feeds it every second from the GUI thread (kiosk.systemd)
PLAIN_WORD = re.compile(r"[\w@%+=:,./-]+")  # a command-line word that needs no quotes (after escaping %)


def service_folder() -> Path:
    return config_home() / "systemd" / "user"


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


def unit_word(word: str, command: bool = True) -> str:
    """`word` as one word of a unit file's command line (systemd.syntax, systemd.service) or, not
    `command`, of an Environment= line: % doubled (and $ in a command), quoted when it holds more
    than plain characters."""
    refuse_line_breaks(word)
    word = word.replace("%", "%%").replace("$", "$$" if command else "$")
    return word if PLAIN_WORD.fullmatch(word) else '"' + re.sub(r'(["\\])', r"\\\1", word) + '"'


def desktop_word(word: str) -> str:
    """`word` as one argument of a desktop entry's Exec key (the Desktop Entry spec): quoted when it
    holds more than plain characters, then the string value's own escaping of backslashes."""
    refuse_line_breaks(word)
    word = word.replace("%", "%%")
    if PLAIN_WORD.fullmatch(word):
        return word
    return ('"' + re.sub(r'(["`$\\])', r"\\\1", word) + '"').replace("\\", "\\\\")


def refuse_line_breaks(word: str) -> None:
    if re.search(r"[\x00-\x1f]", word):
        raise ValueError(f"{word!r} holds a line break or another control character: use another path")


def service_unit(config_path: Path, environ: Mapping[str, str] = os.environ) -> str:
    """The systemd user unit that runs the kiosk, for `systemd-analyze verify` to find no fault with."""
    folder = os.path.abspath(config_path.parent)
    refuse_line_breaks(folder)
    environment = "".join(f"Environment={unit_word(f'{name}={value}', command=False)}\n"
                          for name, value in display_environment(environ).items())
    return f"""# Written by `kiosk --install-service`: the kiosk's settings live in its config file.
[Unit]
Description=Meet the other me (遇见另一个我), the lookalike kiosk
After=graphical-session.target
# retried for ever, RestartSec apart: at boot the display may come up after the service does
StartLimitIntervalSec=0

[Service]
Type=notify
ExecStart={" ".join(unit_word(word) for word in kiosk_command(config_path))}
WorkingDirectory={folder.replace("%", "%%")}
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
    """`text` as `folder`/`name`, whole or not at all."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder.absolute() / name
    temporary = path.with_name(f".{name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    return path


def write_service(config_path: Path, folder: Path | None = None) -> str:
    """The unit written (into the user's systemd folder unless `folder`); what to do next."""
    unit = write_file(folder or service_folder(), SERVICE, service_unit(config_path))
    config_path.parent.mkdir(parents=True, exist_ok=True)  # its working directory
    copy = "" if unit.parent == service_folder() else f"  cp {unit} {service_folder()}/\n"
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
