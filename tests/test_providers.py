"""Provider choice, tested on this CPU machine by faking what onnxruntime offers and applies."""
from __future__ import annotations

import logging

import pytest

from face_engine.providers import CPU, CUDA, DeviceError, choose_providers, create_session


class FakeSession:
    """Stands in for onnxruntime.InferenceSession: records the request, reports `applied`."""

    def __init__(self, applied: list[str] | None = None):
        self.applied = applied

    def __call__(self, model, sess_options=None, providers=()):
        self.requested, self.options = list(providers), sess_options
        return self

    def get_providers(self):
        return self.applied if self.applied is not None else self.requested


def test_auto_prefers_cuda_then_cpu_among_what_is_offered():
    assert choose_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers("auto", ["TensorrtExecutionProvider", CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers("auto", ["AzureExecutionProvider", CPU]) == [CPU]


def test_cpu_never_asks_for_cuda():
    assert choose_providers("cpu", [CUDA, CPU]) == [CPU]


def test_cuda_requested_where_onnxruntime_offers_none_is_an_error_naming_the_fix():
    with pytest.raises(DeviceError, match="setup_kiosk.sh --gpu"):
        choose_providers("cuda", [CPU])


def test_unknown_device_is_an_error():
    with pytest.raises(DeviceError, match="unknown device"):
        choose_providers("tpu", [CPU])


def test_a_query_session_does_not_spin_and_a_build_session_may():
    spinning = "session.intra_op.allow_spinning"
    factory = FakeSession()
    create_session(b"model", "cpu", spin=False, available=[CPU], session_factory=factory)
    assert factory.options.get_session_config_entry(spinning) == "0"
    create_session(b"model", "cpu", available=[CPU], session_factory=factory)
    with pytest.raises(RuntimeError, match="does not have configuration"):  # onnxruntime's default: spin
        factory.options.get_session_config_entry(spinning)


def test_cuda_present_and_working():
    factory = FakeSession()
    session = create_session(b"model", "cuda", available=[CUDA, CPU], session_factory=factory)
    assert factory.requested == [CUDA, CPU]
    assert session.get_providers()[0] == CUDA


def test_cuda_offered_but_failing_to_load_is_an_error_when_asked_for():
    failing = FakeSession(applied=[CPU])  # what onnxruntime reports after a silent fallback
    with pytest.raises(DeviceError, match="could not load it"):
        create_session(b"model", "cuda", available=[CUDA, CPU], session_factory=failing)


def test_cuda_failing_to_load_under_auto_runs_on_cpu_and_says_so(caplog):
    failing = FakeSession(applied=[CPU])
    with caplog.at_level(logging.WARNING):
        session = create_session(b"model", "auto", available=[CUDA, CPU], session_factory=failing)
    assert session.get_providers() == [CPU]
    assert "fell back to the CPU" in caplog.text


def test_cuda_absent_under_auto_runs_quietly_on_cpu(caplog):
    factory = FakeSession()
    with caplog.at_level(logging.WARNING):
        create_session(b"model", "auto", available=[CPU], session_factory=factory)
    assert factory.requested == [CPU]
    assert caplog.text == ""


def test_the_real_engine_refuses_cuda_on_this_cpu_only_install():
    import onnxruntime

    from face_engine.engine import FaceEngine
    from models.packs import resolve_pack

    if CUDA in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime offers CUDA")
    with pytest.raises(DeviceError):
        FaceEngine(resolve_pack("sface"), device="cuda")
