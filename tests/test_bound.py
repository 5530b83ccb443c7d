"""The physical bound: FLOPs and weight bytes read from an ONNX graph, and the bound that picks the max."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from embedkit.latency.bound import FP32, INT8, CallCost, CostModel, MachineRates, graph_cost
from embedkit.latency.breakdown import profile_breakdown

VOCAB, K, N = 50, 8, 6


def _embedding_then_matmul(path=None):
    """input_ids [B, S] → Gather from a VOCAB×K table → MatMul with a K×N weight: 2·B·S·K·N FLOPs."""
    rng = np.random.default_rng(0)
    table = numpy_helper.from_array(rng.standard_normal((VOCAB, K)).astype(np.float32), "table")
    weight = numpy_helper.from_array(rng.standard_normal((K, N)).astype(np.float32), "weight")
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "input_ids"], ["embedded"]),
            helper.make_node("MatMul", ["embedded", "weight"], ["out"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", "seq", N])],
        [table, weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    if path is not None:
        path.write_bytes(model.SerializeToString())
    return model


def test_a_matmul_counts_2mnk_and_an_embedding_table_only_its_looked_up_rows() -> None:
    cost = graph_cost(_embedding_then_matmul(), batch=3, seq=5)
    assert cost.flops == {FP32: 2 * 3 * 5 * K * N, INT8: 0.0}
    assert cost.weight_bytes == (3 * 5 * K + K * N) * 4  # 15 of the table's 50 rows, the whole weight
    assert cost.uncounted_nodes == 0


def test_the_cost_model_fitted_from_a_few_shapes_is_exact_at_any_other(tmp_path) -> None:
    model = _embedding_then_matmul(tmp_path / "tiny.onnx")
    fitted = CostModel.of(tmp_path / "tiny.onnx").at(4, 9)
    direct = graph_cost(model, 4, 9)
    assert fitted.flops[FP32] == pytest.approx(direct.flops[FP32]) and fitted.weight_bytes == pytest.approx(
        direct.weight_bytes
    )


def test_the_bound_is_the_larger_of_the_memory_time_and_the_compute_time() -> None:
    rates = MachineRates(bandwidth_gb_s=10.0, fp32_gflops=100.0, int8_gops=400.0)
    compute_bound = CallCost({FP32: 1e9, INT8: 4e9}, weight_bytes=1e6).bound(rates)  # 10 + 10 ms vs 0.1 ms
    assert compute_bound["bound_ms"] == pytest.approx(20.0) and compute_bound["limited_by"] == "compute"
    memory_bound = CallCost({FP32: 1e6, INT8: 0.0}, weight_bytes=1e9).bound(rates)  # 0.01 ms vs 100 ms
    assert memory_bound["bound_ms"] == pytest.approx(100.0) and memory_bound["limited_by"] == "memory"


def _event(name: str, ts: int, dur: int, op: str | None = None) -> dict:
    if op is None:
        return {"cat": "Session", "name": name, "ts": ts, "dur": dur}
    return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur,
            "args": {"op_name": op, "provider": "CPUExecutionProvider", "node_index": name}}  # fmt: skip


def test_the_batch1_breakdown_splits_a_run_into_kernels_overhead_and_top_ops() -> None:
    events = []
    for run in range(3):
        start = run * 1000
        events += [_event("model_run", start, 100), _event("mm", start + 10, 50, "MatMul"),
                   _event("add", start + 70, 4, "Add"), _event("mul", start + 80, 6, "Mul")]  # fmt: skip
    breakdown = profile_breakdown(events, dropped=1)
    assert breakdown["runs"] == 2 and breakdown["run_us"] == 100 and breakdown["kernel_us"] == 60
    assert breakdown["outside_kernels_us"] == 40 and breakdown["nodes_per_run"] == 3
    assert breakdown["median_small_node_us"] == 5 and breakdown["per_node_overhead_us"] == 15
    assert breakdown["top_ops"][0] == {"op_type": "MatMul", "kernel_share": pytest.approx(50 / 60), "us_per_run": 50}
