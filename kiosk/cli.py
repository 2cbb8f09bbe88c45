"""`kiosk`: the fullscreen lookalike kiosk, its headless query path, and staff set-up commands."""
from __future__ import annotations

import argparse
import getpass
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import NoReturn

from face_engine.fairness import POLICIES
from face_engine.providers import DEVICES, DeviceError
from kiosk.config import (
    MAX_FAIRNESS,
    MAX_PIN_DIGITS,
    MAX_SCREEN,
    MIN_PIN_DIGITS,
    ConfigError,
    KioskConfig,
    default_config_path,
    hash_pin,
    load_config,
    save_config,
)
from kiosk.i18n import LANGUAGES
from kiosk.log import log_path, setup_logging
from kiosk.service import write_autostart, write_service
from models.packs import PackError

EPILOG = f"""\
examples:
  kiosk --demo                                 a small built-in gallery; the camera, or sample photos
  kiosk --gallery galleries/main --fullscreen  the exhibition: camera 0, fullscreen
  kiosk --gallery galleries/main --camera clip.mp4 --lang en
  kiosk --headless --gallery galleries/main --image visitor.jpg --json
  kiosk --set-pin                              choose the staff PIN (stored hashed in the config file)
  kiosk --status --json                        from another room: exit 0 healthy, 1 degraded, 2 not running
  kiosk --install-service                      a systemd user service: at boot, restarted after a crash or hang
  kiosk --install-autostart                    start fullscreen after every login (desktops without systemd)

Staff panel: press and hold the top-left corner of the screen for 3 seconds, then enter the PIN.
The touch screen never sets the PIN: without one the panel stays closed; set it with --set-pin,
or when installing (on a terminal, or --pin-file FILE). The log: {log_path()}.
Settings come from the config file (default {default_config_path()}), then from these options.
"""
MAX_K = 100


class OneLineParser(argparse.ArgumentParser):
    """A bad option gets one line on stderr, not argparse's usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from `low` to `high`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}, not {text!r}")
        return value
    return parse


def fairness(text: str) -> float:
    """An argparse type: λ from 0 to MAX_FAIRNESS."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_FAIRNESS:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to {MAX_FAIRNESS:g}, not {text[:40]!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="kiosk", description="Meet the other me (遇见另一个我): show "
                           "visitors the people in a gallery who look most like them.",
                           epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None, help="settings file (TOML)")
    parser.add_argument("--gallery", help="gallery built by `index-builder build` (the path given as --out)")
    parser.add_argument("--camera", help="camera index (0, 1...), a video file, or a folder of photos")
    parser.add_argument("--pack", help="model pack (default: the one that built the gallery)")
    parser.add_argument("--device", choices=DEVICES, help="auto (default), cpu or cuda")
    parser.add_argument("--fullscreen", action="store_true", default=None, help="fill the screen")
    parser.add_argument("--screen", type=whole_number(0, MAX_SCREEN),
                        help="the monitor to fill: 0 (default) the primary one, 1, 2... the others")
    parser.add_argument("--lang", choices=LANGUAGES, help="first language on screen (default zh)")
    parser.add_argument("--demo", action="store_true", help="use a small gallery made from photos shipped "
                        "in the installed packages (built on first use)")
    parser.add_argument("--headless", action="store_true", help="no window: query one --image and print the result")
    parser.add_argument("--image", help="with --headless: the photo to query")
    parser.add_argument("--json", action="store_true", help="with --headless: the JSON of `index-builder search`; "
                        "with --status: one JSON object")
    parser.add_argument("--status", action="store_true", help="how the running kiosk is (its heartbeat) and its "
                        "gallery's last build; exit 0 healthy, 1 degraded, 2 no kiosk running")
    parser.add_argument("--k", type=whole_number(1, MAX_K),
                        help="with --headless: number of lookalikes (default: the config's)")
    parser.add_argument("--policy", choices=POLICIES, help="fair (default): spread attention over the gallery; "
                        "exact: plain nearest neighbours")
    parser.add_argument("--fairness", type=fairness,
                        help='the fair policy\'s λ (default "gallery": its build\'s choice)')
    parser.add_argument("--set-pin", action="store_true", help="set the staff PIN, then exit")
    parser.add_argument("--install-service", action="store_true", help="write a systemd user service that runs "
                        "the kiosk fullscreen, restarted after a crash or a hang; say how to enable it; then exit")
    parser.add_argument("--install-autostart", action="store_true",
                        help="start the kiosk fullscreen at login (an XDG autostart entry), then exit")
    parser.add_argument("--unit-dir", type=Path, help="with --install-*: write the file into this folder "
                        "instead (to review it)")
    parser.add_argument("--pin-file", type=Path, help="with --set-pin or --install-*: the staff PIN is this file's "
                        "first line (unattended installs); otherwise asked on a terminal")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    config_path = args.config or default_config_path()
    try:
        config = load_config(config_path)
    except ConfigError as error:
        print(f"kiosk: {error}", file=sys.stderr)
        return 2
    if args.status:  # the gallery named here or in the config: its last build counts too
        from kiosk.heartbeat import status

        return status(args.gallery or config.gallery, args.json)
    overrides = {name: getattr(args, name) for name in ("gallery", "camera", "pack", "device", "fullscreen", "screen",
                                                          "lang", "policy", "fairness")
                 if getattr(args, name) is not None}
    if args.set_pin:  # settings given beside it are saved with the PIN (`--install-service --gallery G` runs G)
        return set_pin(replace(config, **overrides), config_path, args.pin_file)
    if args.install_service or args.install_autostart:
        return install(args, replace(config, **overrides), config_path)
    prepare = None
    if args.demo:
        from kiosk.demo import demo_settings

        if args.headless:
            overrides = {**demo_settings(), **overrides}
        else:  # the window shows the splash at once while the demo gallery is built
            prepare = partial(demo_settings, keep=overrides)
    config = replace(config, **overrides)
    if not config.gallery and prepare is None:
        print("kiosk: no gallery: give --gallery (see `index-builder build --help`) or try --demo", file=sys.stderr)
        return 2
    try:
        if args.headless:
            return headless(config, args)
        return run_window(config, config_path, prepare)
    except (PackError, DeviceError, RuntimeError) as error:
        print(f"kiosk: {error}", file=sys.stderr)
        return 2


def headless(config: KioskConfig, args: argparse.Namespace) -> int:
    """The kiosk's query path with no window; the same JSON as `index-builder search`."""
    from face_engine.imaging import ImageError
    from face_engine.query import open_for_query, search_photo

    if not args.image:
        print("kiosk: --headless needs --image", file=sys.stderr)
        return 2
    gallery, engine = open_for_query(config.gallery, config.pack, config.device)
    try:
        result = search_photo(engine, gallery, args.image, args.k or config.lookalikes, policy=config.match_policy())
    except ImageError as error:
        print(f"error: {args.image}: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        for match in result["matches"]:
            print(f"{match['rank']}. {match['likeness']}% alike  {match['name']}  {match['image']}")
        if not result["matches"]:
            print("no face found")
    return 0


def run_window(config: KioskConfig, config_path: Path, prepare: Callable[[], dict[str, str]] | None = None) -> int:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")):
        print("kiosk: no screen here (DISPLAY is not set). On a machine without a display run it on a "
              "virtual one: xvfb-run -a kiosk ...; or query without a window: kiosk --headless --image X",
              file=sys.stderr)
        return 2
    from PySide6.QtWidgets import QApplication

    from kiosk.window import KioskWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = KioskWindow(config, config_path, prepare=prepare)
    if config.fullscreen:
        window.show_fullscreen()
    else:
        window.show_windowed()
    return app.exec()


def set_pin(config: KioskConfig, config_path: Path, pin_file: Path | None = None) -> int:
    """The staff PIN typed twice (on a terminal, or piped), or `pin_file`'s first line; saved hashed."""
    try:
        pin = read_pin_file(pin_file) if pin_file is not None else read_secret("new staff PIN (digits): ")
        if not (pin.isascii() and pin.isdigit() and MIN_PIN_DIGITS <= len(pin) <= MAX_PIN_DIGITS):
            print(f"kiosk: the PIN must be {MIN_PIN_DIGITS} to {MAX_PIN_DIGITS} digits (0-9), as on the staff "
                  "keypad; nothing changed", file=sys.stderr)
            return 2
        again = pin if pin_file is not None else read_secret("again: ")
    except EOFError:
        print("kiosk: no PIN given (end of input); nothing changed", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"kiosk: cannot read {pin_file}: {error.strerror}; nothing changed", file=sys.stderr)
        return 2
    if again != pin:
        print("kiosk: the two entries differ; nothing changed", file=sys.stderr)
        return 2
    if not saved(replace(config, pin_hash=hash_pin(pin)), config_path):
        return 2
    print(f"staff PIN saved (hashed) in {config_path}")
    return 0


def saved(config: KioskConfig, config_path: Path) -> bool:
    """`config` written to `config_path`; False, said in one line, when it cannot be."""
    try:
        save_config(config, config_path)
    except OSError as error:
        print(f"kiosk: cannot write {config_path}: {error.strerror}; nothing changed", file=sys.stderr)
        return False
    return True


def read_secret(prompt: str) -> str:
    """One line typed unseen at a terminal, or read from piped input (set-up scripts). Raises
    EOFError at the end of input."""
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    line = sys.stdin.readline()  # getpass would read /dev/tty instead, or warn that it cannot hide the input
    if not line:
        raise EOFError
    return line.rstrip("\r\n")


def read_pin_file(path: Path) -> str:
    """The first line of `path` (a PIN for unattended installs), at most a line's worth read."""
    with open(path, "rb") as file:
        return file.read(MAX_PIN_DIGITS * 8).split(b"\n")[0].decode("utf-8", "replace").strip()


def install(args: argparse.Namespace, config: KioskConfig, config_path: Path) -> int:
    """--install-service, --install-autostart: a staff PIN first (set already, from --pin-file, or
    typed now on a terminal: the touch screen never sets one), then the files."""
    if args.pin_file is not None or (not config.pin_hash and sys.stdin.isatty()):
        if set_pin(config, config_path, args.pin_file):
            return 2
    elif not config.pin_hash:
        print(f"kiosk: no staff PIN set in {config_path} and no terminal to ask for one: give --pin-file FILE "
              "(its first line, 4 to 12 digits) or run kiosk --set-pin first; nothing installed", file=sys.stderr)
        return 2
    elif not saved(config, config_path):  # the settings given beside --install-*, which the service will run
        return 2
    if not config.gallery:
        print(f"note: {config_path} names no gallery yet: add gallery = \"/path/to/gallery\" before starting it")
    writers = [write for wanted, write in ((args.install_service, install_service),
                                           (args.install_autostart, install_autostart)) if wanted]
    try:
        for write in writers:
            if write(config_path, args.unit_dir):
                return 2
    except ValueError as error:
        print(f"kiosk: {error}; nothing installed", file=sys.stderr)
        return 2
    return 0


def install_service(config_path: Path, folder: Path | None = None) -> int:
    return write_with(write_service, config_path, folder)


def install_autostart(config_path: Path, folder: Path | None = None) -> int:
    return write_with(write_autostart, config_path, folder)


def write_with(writer: Callable[[Path, Path | None], str], config_path: Path, folder: Path | None) -> int:
    """`writer`'s file written, and what it says printed; one line on stderr when it cannot be."""
    try:
        print(writer(config_path, folder))
    except OSError as error:
        print(f"kiosk: cannot write {error.filename}: {error.strerror}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
