"""Own the onnxruntime sessions: choose execution providers, then check what onnxruntime really applied.

onnxruntime silently falls back to the CPU when the CUDA provider is offered but its libraries fail
to load, so a session is only trusted after reading `session.get_providers()`.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np

# onnxruntime's telemetry stores a persistent device id and an event database under ~/.cache as
# soon as the library loads; only this variable, set before the first import, prevents that.
# This module is the first to import onnxruntime in every entry point (insightface, imported
# later, sets the same variable for the same reason).
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

import onnxruntime as ort

# Builds that ignore the variable still honour this: no events queued by the sessions made here.
ort.disable_telemetry_events()

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PREFERENCE = (CUDA, CPU)
DEVICES = ("auto", "cpu", "cuda")


class NodeArg(Protocol):
    """One input or output of a session's graph, as onnxruntime describes it."""

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> Sequence[int | str | None]: ...  # a str or None for a free axis


class Session(Protocol):
    """What this project uses of an onnxruntime.InferenceSession (onnxruntime ships no types)."""

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, np.ndarray]) -> list[np.ndarray]: ...

    def get_inputs(self) -> Sequence[NodeArg]: ...

    def get_outputs(self) -> Sequence[NodeArg]: ...

    def get_providers(self) -> Sequence[str]: ...


class DeviceError(RuntimeError):
    """The requested device cannot run here; the message says why and what to do."""


def runtime() -> tuple[str, list[str]]:
    """onnxruntime's version and the providers it offers (for reports), imported with telemetry off."""
    return ort.__version__, list(ort.get_available_providers())


def choose_providers(device: str, available: Sequence[str]) -> list[str]:
    """The providers to ask onnxruntime for, best first, for `device` in DEVICES."""
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
    if device == "cpu":
        return [CPU]
    if device == "cuda" and CUDA not in available:
        raise DeviceError(
            "--device cuda: this onnxruntime offers no CUDA provider "
            f"(it offers {', '.join(available)}); install the GPU variant with ./setup_kiosk.sh --gpu"
        )
    return [provider for provider in PREFERENCE if provider in available]


def create_session(
    model: bytes | str,
    device: str = "auto",
    threads: int = 0,
    spin: bool = True,
    available: Sequence[str] | None = None,
    session_factory: Callable[..., Session] = ort.InferenceSession,
) -> Session:
    """An onnxruntime session for `model` (serialized bytes or a path) on `device`.

    Raises DeviceError when `device` is "cuda" and CUDA did not really apply; with "auto" a failed
    CUDA provider is logged and the CPU session is returned. `threads` 0 lets onnxruntime decide.
    `spin` False keeps idle worker threads from spinning: where the process has other work (the
    kiosk's GUI on a 2-core machine), spinning threads take its core and one embed takes 46 ms, not 29.
    `available` and `session_factory` exist so tests can fake a machine with or without CUDA.
    """
    if available is None:
        available = ort.get_available_providers()
    requested = choose_providers(device, available)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # warnings about unused initializers etc. are noise for staff
    session = session_factory(model, sess_options=options, providers=requested)
    applied = list(session.get_providers())
    if CUDA in requested and CUDA not in applied:
        reason = (
            "onnxruntime offers CUDA but could not load it (are the CUDA 12 and cuDNN libraries "
            "installed and visible?), so it fell back to the CPU"
        )
        if device == "cuda":
            raise DeviceError(f"--device cuda: {reason}")
        log.warning("%s; running on the CPU", reason)
    log.debug("session providers: requested %s, applied %s", requested, applied)
    return session


def describe(providers: Sequence[str]) -> str:
    """'cuda' or 'cpu': the device a session whose applied providers are `providers` runs on."""
    return "cuda" if CUDA in providers else "cpu"
