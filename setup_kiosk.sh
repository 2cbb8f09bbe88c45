#!/usr/bin/env bash
# One-command set-up of a kiosk or gallery-build machine. Safe to run again: a second run only verifies.
set -euo pipefail
cd "$(dirname "$0")"

usage() {
  cat <<'TXT'
Usage: ./setup_kiosk.sh [--cpu | --gpu] [--ray] [--python PYTHON] [--no-system]
                        [--service] [--autostart] [--pin-file FILE]

Creates .venv, installs the kiosk and index builder (CPU or GPU variant), checks the default
model files by SHA-256 and prints what it chose. Run it again at any time: when nothing changed
it only verifies.

  --cpu       install onnxruntime + faiss-cpu even where an NVIDIA GPU is present
  --gpu       install onnxruntime-gpu + faiss-gpu (needs an NVIDIA driver and CUDA 12 libraries)
  --ray       also install Ray, for `index-builder build --engine ray` (build machines)
  --python P  the interpreter to build .venv from (default: python3; 3.11 or newer)
  --no-system do not install the Debian/Ubuntu packages a real kiosk window needs
              (Qt's xcb libraries, a CJK font, Xvfb); without root they are only listed
  --service   also install the kiosk as a systemd user service: started at boot, restarted after
              a crash or a hang (`kiosk --install-service`; it says how to enable it)
  --autostart also start the kiosk fullscreen at login (an XDG autostart entry, for desktops
              without systemd)
  --pin-file F  with --service or --autostart: the staff PIN is the first line of F. Without it,
              and with no PIN set yet, the PIN is asked on the terminal; with no terminal the
              install stops (the touch screen never sets a PIN). A plain run asks nothing.
Without --cpu/--gpu the variant is auto-detected: GPU when `nvidia-smi -L` lists a GPU.
TXT
}

variant=""
python=python3
system=yes
autostart=no
service=no
pin_file=""
ray=no
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) variant=cpu ;;
    --gpu) variant=gpu ;;
    --python) python="$2"; shift ;;
    --ray) ray=yes ;;
    --no-system) system=no ;;
    --autostart) autostart=yes ;;
    --service) service=yes ;;
    --pin-file) pin_file="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "setup_kiosk.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

if [ -z "$variant" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    variant=gpu; why="nvidia-smi lists a GPU"
  else
    variant=cpu; why="no NVIDIA GPU found"
  fi
else
  why="asked for --$variant"
fi
echo "==> variant: $variant ($why)$([ "$ray" = yes ] && echo ', with Ray')"

if [ ! -x .venv/bin/python ]; then
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "setup_kiosk.sh: $python is older than 3.11" >&2; exit 1; }
  echo "==> creating .venv with $("$python" --version)"
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check)

# Reinstall only when the dependency list or the variant changed since the last good run.
stamp=".venv/.other-me-setup"
want="$variant ray=$ray $(sha256sum pyproject.toml | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  extras="test,sound"
  [ "$variant" = gpu ] && extras="$extras,gpu"
  [ "$ray" = yes ] && extras="$extras,ray"
  echo "==> installing the project and its dependencies ($extras)"
  "${pip[@]}" install --quiet --upgrade pip
  "${pip[@]}" install --quiet -e ".[$extras]"

  # Two distributions that install the same module overwrite each other's files: remove the
  # unwanted one, then reinstall the wanted one so its files are whole again.
  swap() {  # swap UNWANTED WANTED
    if "${pip[@]}" show "$1" >/dev/null 2>&1; then
      local version
      version=$("${pip[@]}" show "$2" | sed -n 's/^Version: //p')
      echo "==> replacing $1 with $2 $version"
      "${pip[@]}" uninstall --quiet -y "$1"
      "${pip[@]}" install --quiet --force-reinstall --no-deps "$2==$version"
    fi
  }
  swap opencv-python opencv-python-headless   # insightface declares the Qt 5 build
  if [ "$variant" = gpu ]; then
    swap onnxruntime onnxruntime-gpu
    swap faiss-cpu faiss-gpu
  fi
  echo "$want" > "$stamp"
else
  echo "==> .venv is up to date; verifying only"
fi

# What a real PySide6 window needs on Debian/Ubuntu (without them Qt aborts with "could not load
# the Qt platform plugin xcb"), a font that renders Chinese, Xvfb for screens without a display, and
# PulseAudio's client library, through which Qt Multimedia plays the countdown's sound cue.
window_packages=(libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 fonts-wqy-microhei xvfb libpulse0)
if [ "$system" = yes ] && command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for package in "${window_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "==> installing window packages: ${missing[*]}"
      # Offscreen use and the tests do not need these: a failure here only warns.
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } \
        || echo "==> WARNING: could not install ${missing[*]}; a real window may not start"
    else
      echo "==> for a real window, install: sudo apt-get install ${missing[*]}"
    fi
  fi
fi

echo "==> checking model files and runtime"
.venv/bin/index-builder doctor

# Only when told to install: a plain (unattended) run never asks for anything.
pin=()
[ -n "$pin_file" ] && pin=(--pin-file "$pin_file")
if [ "$service" = yes ]; then
  .venv/bin/kiosk --install-service ${pin[@]+"${pin[@]}"}
fi
if [ "$autostart" = yes ]; then
  .venv/bin/kiosk --install-autostart ${pin[@]+"${pin[@]}"}
fi
