"""Placement audit on real ONNX Runtime profiles, and on the log formats of providers absent here."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from embedkit.latency import placement
from embedkit.results.schema import record_schema

NODE_NAMES = ["matmul", "add", "relu", "softmax", "mean"]
RUNS = 5


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h1"], name="matmul"),
        helper.make_node("Add", ["h1", "B"], ["h2"], name="add"),
        helper.make_node("Relu", ["h2"], ["h3"], name="relu"),
        helper.make_node("Softmax", ["h3"], ["h4"], name="softmax", axis=-1),
        helper.make_node("ReduceMean", ["h4"], ["y"], name="mean", axes=[1], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch"])],
        [
            numpy_helper.from_array(rng.random((8, 4), dtype=np.float32), "W"),
            numpy_helper.from_array(rng.random(4, dtype=np.float32), "B"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    onnx.save(model, path)
    return path


def _profiled_session(model: Path, providers: list[str], prefix: Path, log_severity: int = 3) -> str:
    """Run the model RUNS times with profiling on; return the profile JSON's path."""
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.log_severity_level = log_severity
    options.profile_file_prefix = str(prefix)
    # Keep the graph as built, so the audit can be checked node by node.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(model), options, providers=providers)
    feed = {"x": np.random.default_rng(1).random((3, 8), dtype=np.float32)}
    for _ in range(RUNS):
        session.run(None, feed)
    return session.end_profiling()


def _placement_schema() -> dict:
    return record_schema("profile")["properties"]["placement"]


def test_cpu_provider_runs_every_node(tiny_model: Path, tmp_path: Path) -> None:
    profile = _profiled_session(tiny_model, ["CPUExecutionProvider"], tmp_path / "cpu")
    audit = placement.audit_profile(profile, ["CPUExecutionProvider"])
    assert audit.runs == RUNS
    assert list(audit.providers) == ["CPUExecutionProvider"]
    cpu = audit.providers["CPUExecutionProvider"]
    assert (cpu.nodes, cpu.node_share, cpu.time_share, cpu.partitions) == (len(NODE_NAMES), 1.0, 1.0, 1)
    assert cpu.time_us > 0
    assert audit.fallback_nodes == ()
    jsonschema.validate(audit.to_record(), _placement_schema())


def test_profile_runs_are_separated_and_can_be_skipped(tiny_model: Path, tmp_path: Path) -> None:
    profile = _profiled_session(tiny_model, ["CPUExecutionProvider"], tmp_path / "cpu")
    runs = placement.node_runs_per_session_run(placement.load_profile_events(profile))
    assert len(runs) == RUNS
    assert all([node.name for node in run] == NODE_NAMES for run in runs)  # execution order
    assert placement.audit_profile(profile, ["CPUExecutionProvider"], skip_runs=1).runs == RUNS - 1
    with pytest.raises(placement.PlacementError, match="no node executions"):
        placement.audit_profile(profile, ["CPUExecutionProvider"], skip_runs=RUNS)


def test_chrome_trace_wrapper_is_accepted(tiny_model: Path, tmp_path: Path) -> None:
    events = json.loads(Path(_profiled_session(tiny_model, ["CPUExecutionProvider"], tmp_path / "cpu")).read_text())
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"traceEvents": events}))
    assert (
        placement.audit_profile(wrapped, ["CPUExecutionProvider"]).to_record()
        == placement.audit_profile(events, ["CPUExecutionProvider"]).to_record()
    )


@pytest.mark.skipif(
    "AzureExecutionProvider" not in ort.get_available_providers(), reason="needs a second provider in this ORT build"
)
def test_requested_provider_that_takes_nothing_leaves_every_node_as_cpu_fallback(
    tiny_model: Path, tmp_path: Path
) -> None:
    # The Azure provider only runs remote-inference custom ops, so it declines every node here:
    # a real "non-CPU provider requested, CPU ran the graph" session on this machine.
    requested = ["AzureExecutionProvider", "CPUExecutionProvider"]
    with placement.capture_native_stderr() as log:  # the verbose session log, as the profile worker takes it
        profile = _profiled_session(tiny_model, requested, tmp_path / "azure", log_severity=0)
    assert "CPUExecutionProvider" in log[0]
    audit = placement.audit_profile(profile, requested, session_log=log[0])
    assert audit.providers["CPUExecutionProvider"].node_share == 1.0
    assert sorted(node.name for node in audit.fallback_nodes) == sorted(NODE_NAMES)
    assert {node.op_type for node in audit.fallback_nodes} == {"MatMul", "Add", "Relu", "Softmax", "ReduceMean"}
    jsonschema.validate(audit.to_record(), _placement_schema())


def test_native_stderr_is_captured_and_restored() -> None:
    with placement.capture_native_stderr() as captured:
        os.write(2, b"from native code\n")
    assert captured == ["from native code\n"]
    os.fstat(2)  # descriptor 2 is open again


# --- providers that are not on this machine: ORT's formats, reproduced ---------------------------


def _kernel(name: str, op_type: str, provider: str, index: int, ts: int, dur: int) -> dict:
    return {
        "cat": "Node",
        "name": f"{name}_kernel_time",
        "ts": ts,
        "dur": dur,
        "ph": "X",
        "args": {"op_name": op_type, "provider": provider, "node_index": str(index)},
    }


def _split_graph_profile(runs: int) -> list[dict]:
    """CPU → fused CoreML partition → CPU → fused CoreML partition → CPU, as ORT profiles it."""
    layout = [
        ("/embeddings/Gather", "Gather", "CPUExecutionProvider", 10),
        ("CoreMLExecutionProvider_CoreML_1_0_0", "CoreML_1_0", "CoreMLExecutionProvider", 600),
        ("/encoder/layer.0/Erf", "Erf", "CPUExecutionProvider", 40),
        ("CoreMLExecutionProvider_CoreML_1_1_0", "CoreML_1_1", "CoreMLExecutionProvider", 300),
        ("/pool/ReduceMean", "ReduceMean", "CPUExecutionProvider", 50),
    ]
    events = []
    for run in range(runs):
        start = 10_000 * (run + 1)
        events.append({"cat": "Session", "name": "model_run", "ts": start, "dur": 5_000, "ph": "X", "args": {}})
        ts = start + 10
        for index, (name, op_type, provider, dur) in enumerate(layout):
            events.append(_kernel(name, op_type, provider, index, ts, dur))
            ts += dur + 5
    return events


def _log(function: str, message: str, severity: str = "V") -> str:
    return f"2026-11-23 23:39:29.963251435 [{severity}:onnxruntime:, session_state.cc:1601 {function}] {message}"


SPLIT_GRAPH_LOG = "\n".join(
    [
        _log("GetSupportedNodes", "Operator type: [Gather] index: [0] name: [/embeddings/Gather] supported: [0]"),
        _log("GetSupportedNodes", "Operator type: [MatMul] index: [1] name: [/encoder/MatMul] supported: [1]"),
        _log("IsOpSupportedImpl", "Operator [Erf] is not supported for input type float16", "I"),
        _log("GetCapability", "CoreMLExecutionProvider::GetCapability, number of partitions supported by CoreML: 2"),
        _log("VerifyEachNodeIsAssignedToAnEp", "Node placements"),
        _log("VerifyEachNodeIsAssignedToAnEp", " Node(s) placed on [CoreMLExecutionProvider]. Number of nodes: 2"),
        _log("VerifyEachNodeIsAssignedToAnEp", "  CoreML_1_0 (CoreMLExecutionProvider_CoreML_1_0_0)"),
        _log("VerifyEachNodeIsAssignedToAnEp", "  CoreML_1_1 (CoreMLExecutionProvider_CoreML_1_1_0)"),
        _log("VerifyEachNodeIsAssignedToAnEp", " Node(s) placed on [CPUExecutionProvider]. Number of nodes: 3"),
        _log("VerifyEachNodeIsAssignedToAnEp", "  Gather (/embeddings/Gather)"),
        _log("VerifyEachNodeIsAssignedToAnEp", "  Erf (/encoder/layer.0/Erf)"),
        _log("VerifyEachNodeIsAssignedToAnEp", "  ReduceMean (/pool/ReduceMean)"),
        _log("VerifyEachNodeIsAssignedToAnEp", "Some nodes were not assigned to the preferred providers", "W"),
        _log("operator()", "Session successfully initialized.", "I"),
    ]
)


def test_split_graph_shares_partitions_and_fallback_reasons() -> None:
    requested = ["CoreMLExecutionProvider", "CPUExecutionProvider"]
    audit = placement.audit_profile(_split_graph_profile(runs=3), requested, session_log=SPLIT_GRAPH_LOG)
    coreml, cpu = audit.providers["CoreMLExecutionProvider"], audit.providers["CPUExecutionProvider"]
    assert (coreml.nodes, cpu.nodes) == (2, 3)
    assert coreml.node_share == pytest.approx(0.4) and cpu.node_share == pytest.approx(0.6)
    assert coreml.time_us == 3 * 900 and cpu.time_us == 3 * 100
    assert coreml.time_share == pytest.approx(0.9)
    assert (coreml.partitions, cpu.partitions) == (2, 3)
    reasons = {node.name: node.reason for node in audit.fallback_nodes}
    assert reasons == {
        "/embeddings/Gather": "Operator type: [Gather] index: [0] name: [/embeddings/Gather] supported: [0]",
        "/encoder/layer.0/Erf": "Operator [Erf] is not supported for input type float16",
        "/pool/ReduceMean": None,  # ORT logged no reason for it
    }
    jsonschema.validate(audit.to_record(), _placement_schema())


def test_kernel_registry_refusals_name_the_node() -> None:
    log = _log("GetCapability", "CUDA kernel not found in registries for Op type: Erf node name: /encoder/layer.0/Erf")
    node = placement.NodeRun("/encoder/layer.0/Erf", "Erf", "CPUExecutionProvider", "2", 0, 1)
    assert placement.fallback_reasons(log, [node]) == {node.key: log.split("] ", 1)[1]}


def test_a_graph_level_refusal_explains_a_provider_that_took_nothing() -> None:
    log = _log("IsInputSupported", "Dynamic shape is not supported for now, for input:input_ids", "W")
    nodes = [
        placement.NodeRun("n0", "Add", "CPUExecutionProvider", "0", 0, 1),
        placement.NodeRun("n1", "Erf", "CPUExecutionProvider", "1", 1, 1),
    ]
    assert set(placement.fallback_reasons(log, nodes, whole_graph_refused=True).values()) == {
        "Dynamic shape is not supported for now, for input:input_ids"
    }
    # When the provider did take part of the graph, a reason naming no node or op is not attributed.
    assert placement.fallback_reasons(log, nodes, whole_graph_refused=False) == {}
