import re

import numpy as np
import onnxruntime as ort
import pytest

from embedkit.errors import ModelFileError, ProviderUnavailableError
from embedkit.pipeline.providers import build_provider_options, resolve_provider
from embedkit.pipeline.session import OrtSession, SessionConfig


@pytest.mark.parametrize(
    "name, full",
    [
        ("CPU", "CPUExecutionProvider"),
        ("coreml", "CoreMLExecutionProvider"),
        ("OpenVINO", "OpenVINOExecutionProvider"),
        ("CUDA", "CUDAExecutionProvider"),
        ("CUDAExecutionProvider", "CUDAExecutionProvider"),
    ],
)
def test_short_and_full_provider_names(name, full):
    assert resolve_provider(name) == full


def test_unknown_provider_name_lists_known_ones():
    with pytest.raises(ProviderUnavailableError, match=r"unknown execution provider 'TPU'.*CPUExecutionProvider"):
        resolve_provider("TPU")


def test_coreml_options_are_built_and_checked_without_a_mac():
    options = build_provider_options(
        "CoreML",
        {
            "ModelFormat": "MLProgram",
            "MLComputeUnits": "CPUAndNeuralEngine",
            "ModelCacheDirectory": "/tmp/coreml-cache",
            "RequireStaticInputShapes": False,
        },
    )
    assert options == {
        "ModelFormat": "MLProgram",
        "MLComputeUnits": "CPUAndNeuralEngine",
        "ModelCacheDirectory": "/tmp/coreml-cache",
        "RequireStaticInputShapes": "0",
    }
    with pytest.raises(ValueError, match="MLComputeUnits='GPUOnly'"):
        build_provider_options("CoreML", {"MLComputeUnits": "GPUOnly"})


def test_openvino_and_cuda_options():
    assert build_provider_options("OpenVINO", {"device_type": "CPU", "precision": "FP16", "num_of_threads": 2}) == {
        "device_type": "CPU",
        "precision": "FP16",
        "num_of_threads": "2",
    }
    assert build_provider_options("CUDA", {"device_id": 0})["device_id"] == "0"
    with pytest.raises(ValueError, match="precision"):
        build_provider_options("OpenVINO", {"precision": "INT4"})


@pytest.mark.parametrize("spinning, allow, force_stop", [("always", "1", ""), ("in-run", "1", "1"), ("never", "0", "")])
def test_spinning_modes_set_ort_session_entries(spinning, allow, force_stop):
    options = SessionConfig(spinning=spinning).session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == allow
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == allow
    if force_stop:
        assert options.get_session_config_entry("session.force_spinning_stop") == force_stop
    else:
        with pytest.raises(RuntimeError):  # ORT's answer for an entry that was never set
            options.get_session_config_entry("session.force_spinning_stop")


def test_an_unknown_spinning_mode_is_an_error():
    with pytest.raises(ValueError, match=r"spinning must be one of .* got 'sometimes'"):
        SessionConfig(spinning="sometimes").session_options()


def test_missing_provider_is_an_error_naming_what_is_available(tiny_embedder):
    missing = next(
        p for p in ("CoreML", "CUDA", "OpenVINO") if resolve_provider(p) not in ort.get_available_providers()
    )
    with pytest.raises(ProviderUnavailableError, match=r"available: .*CPUExecutionProvider"):
        OrtSession(tiny_embedder.variant.path, SessionConfig(provider=missing))


def test_explicit_fallback_is_used_and_recorded(tiny_embedder):
    session = (
        OrtSession(tiny_embedder.variant.path, SessionConfig(provider="CoreML", fallback="CPU"))
        if "CoreMLExecutionProvider" not in ort.get_available_providers()
        else None
    )
    if session is None:
        pytest.skip("CoreML is available here: nothing to fall back from")
    assert session.active_providers == ["CPUExecutionProvider"]
    assert session.requested_providers == ["CoreMLExecutionProvider"]
    assert "fell back to CPUExecutionProvider" in session.fallback_note


def test_graph_facts_and_run(tiny_embedder):
    session = OrtSession(tiny_embedder.variant.path, SessionConfig(intra_op_threads=1, graph_optimization="basic"))
    assert session.input_names == ["input_ids", "attention_mask", "token_type_ids"]
    assert session.output_name == "last_hidden_state" and session.dim == 32
    feeds = {name: np.ones((2, 5), dtype=np.int64) for name in session.input_names}
    assert session.run(feeds).shape == (2, 5, 32)


def test_corrupt_and_missing_onnx_name_the_file(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        OrtSession(tmp_path / "absent.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 100)
    with pytest.raises(ModelFileError, match=re.escape("corrupt.onnx")):
        OrtSession(corrupt)


def test_bad_graph_optimization_level(tiny_embedder):
    with pytest.raises(ValueError, match="graph_optimization"):
        OrtSession(tiny_embedder.variant.path, SessionConfig(graph_optimization="max"))
