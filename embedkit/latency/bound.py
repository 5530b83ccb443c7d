"""The physical limit of one call: a lower bound on its time from this machine's rates and the graph's work.

The rates are measured here, when the bench runs: memory bandwidth from a parallel copy of an array
far beyond any cache (bytes read + written), the fp32 rate from a large ONNX Runtime MatMul and the
int8 rate from a large MatMulInteger (uint8 activations × int8 weights, as dynamic quantization
feeds it) — the same kernel library and thread pool the variants run on, best of a few runs each.

The work is read from the ONNX graph, with every tensor's shape at concrete inputs (one unoptimized
run: `runtime_shapes`): every matrix product counts 2·M·N·K (attention's QKᵀ and AV included, so the
sequence length enters squared), on the rate of its data type (int8 for integer kernels and for
products of two DequantizeLinear outputs, the QDQ form ORT fuses; fp32 otherwise, fp16 included);
the weight bytes are the initializers' sizes, except an embedding table read by Gather, of which
only the looked-up rows count. An encoder's FLOPs are B·(c0 + c1·S + c2·S²) and its weight bytes
w0 + g·B·S + h·S (token rows per text, position rows shared by the batch) for batch B and sequence
S, so a few measured shapes fix them exactly for every shape (`CostModel`).

bound = max(weight bytes / bandwidth, Σ FLOPs / rate of their type): no call can be faster.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedkit import defaults

FP32, INT8 = "fp32", "int8"
# Products of two matrices: (A input index, B input index); FusedMatMul may transpose A.
_MATMULS: dict[str, tuple[int, int]] = {
    "MatMul": (0, 1),
    "FusedMatMul": (0, 1),
    "MatMulInteger": (0, 1),
    "MatMulIntegerToFloat": (0, 1),
    "DynamicQuantizeMatMul": (0, 1),
    "QLinearMatMul": (0, 3),
}
_GEMMS = ("Gemm", "QGemm")
_ATTENTIONS = ("Attention", "QAttention")
_INTEGER_OPS = {
    "MatMulInteger",
    "MatMulIntegerToFloat",
    "DynamicQuantizeMatMul",
    "QLinearMatMul",
    "QAttention",
    "QGemm",
}
# Sequence lengths the cost polynomial is fitted at (batch 1): any three distinct values fix it.
_FIT_SEQUENCES = (8, 16, 32)


@dataclass(frozen=True)
class MachineRates:
    """This machine's measured memory bandwidth and peak arithmetic rates."""

    bandwidth_gb_s: float
    fp32_gflops: float
    int8_gops: float

    def rate(self, kind: str) -> float:
        """Operations per second for FP32 or INT8 products."""
        return (self.int8_gops if kind == INT8 else self.fp32_gflops) * 1e9

    def to_record(self) -> dict[str, float]:
        return {"bandwidth_gb_s": self.bandwidth_gb_s, "fp32_gflops": self.fp32_gflops, "int8_gops": self.int8_gops}


def _best_seconds(step: Callable[[], Any], repeats: int) -> float:
    step()  # the first run touches fresh pages and builds the kernel's packed weights
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best


def measure_bandwidth_gb_s(megabytes: int = defaults.BOUND_COPY_MB, repeats: int = defaults.BOUND_REPEATS) -> float:
    """GB/s of a copy split over every core (bytes read + bytes written)."""
    source = np.ones(megabytes * 2**20 // 8, dtype=np.float64)
    target = np.empty_like(source)
    edges = np.linspace(0, source.size, (os.cpu_count() or 1) + 1, dtype=np.int64)
    chunks = list(itertools.pairwise(edges))

    def copy(bounds: tuple[np.int64, np.int64]) -> None:
        np.copyto(target[bounds[0] : bounds[1]], source[bounds[0] : bounds[1]])  # numpy releases the GIL

    with ThreadPoolExecutor(len(chunks)) as pool:
        seconds = _best_seconds(lambda: list(pool.map(copy, chunks)), repeats)
    return 2 * source.nbytes / seconds / 1e9


def matmul_model(kind: str, size: int) -> Any:
    """A one-node ONNX graph: A (input, size×size) times B (initializer): MatMul for FP32, MatMulInteger for INT8."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights: np.ndarray
    if kind == INT8:
        weights = rng.integers(-128, 128, (size, size), dtype=np.int8)
        node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    else:
        weights = rng.standard_normal((size, size), dtype=np.float32)
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        a_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        f"{kind}-matmul",
        [helper.make_tensor_value_info("a", a_type, [size, size])],
        [helper.make_tensor_value_info("y", y_type, [size, size])],
        [numpy_helper.from_array(weights, "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def measure_peak_rate(
    kind: str, size: int = defaults.BOUND_MATMUL_SIZE, repeats: int = defaults.BOUND_REPEATS
) -> float:
    """G(FL)OP/s of ONNX Runtime's CPU kernel for a size³ product of `kind` (ORT's default threads)."""
    import onnxruntime as ort

    session = ort.InferenceSession(matmul_model(kind, size).SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    a = (
        rng.integers(0, 256, (size, size), dtype=np.uint8)
        if kind == INT8
        else rng.standard_normal((size, size), dtype=np.float32)
    )
    seconds = _best_seconds(lambda: session.run(None, {"a": a}), repeats)
    return 2 * size**3 / seconds / 1e9


def measure_rates() -> MachineRates:
    return MachineRates(measure_bandwidth_gb_s(), measure_peak_rate(FP32), measure_peak_rate(INT8))


# --- the graph's work ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CallCost:
    """The work of one call: FLOPs per rate class and weight bytes read."""

    flops: Mapping[str, float]
    weight_bytes: float
    uncounted_nodes: int = 0  # products whose shapes inference could not give (counted as zero)

    def bound(self, rates: MachineRates) -> dict[str, Any]:
        compute = sum(flops / rates.rate(kind) for kind, flops in self.flops.items())
        memory = self.weight_bytes / (rates.bandwidth_gb_s * 1e9)
        return {
            "compute_ms": compute * 1e3,
            "memory_ms": memory * 1e3,
            "bound_ms": max(compute, memory) * 1e3,
            "limited_by": "compute" if compute >= memory else "memory",
        }

    def to_record(self) -> dict[str, Any]:
        return {"flops": dict(self.flops), "weight_bytes": self.weight_bytes, "uncounted_nodes": self.uncounted_nodes}


def runtime_shapes(model: Any, batch: int, seq: int) -> dict[str, list[int]]:
    """The shape of every tensor of `model` on inputs of shape (batch, seq), from one ONNX Runtime run.

    Shape inference, ONNX's or ORT's symbolic one, leaves gaps in quantized graphs (it stops at
    DynamicQuantizeLinear beside contrib ops); running the graph unoptimized, with every node's
    output exposed, gives every shape exactly, whatever the ops.
    """
    import onnx
    import onnxruntime as ort

    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    outputs = {output.name for output in exposed.graph.output}
    for node in exposed.graph.node:
        for name in node.output:
            if name and name not in outputs:
                exposed.graph.output.append(onnx.ValueInfoProto(name=name))
                outputs.add(name)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(exposed.SerializeToString(), options, providers=["CPUExecutionProvider"])
    # Token ids, masks and segment ids of 1: valid for every vocabulary, and shapes do not depend on values.
    feeds = {graph_input.name: np.ones((batch, seq), dtype=np.int64) for graph_input in session.get_inputs()}
    names = [output.name for output in session.get_outputs()]
    shapes: dict[str, list[int]] = {
        name: list(value.shape) for name, value in zip(names, session.run(names, feeds), strict=True)
    }
    shapes.update({name: list(value.shape) for name, value in feeds.items()})
    shapes.update({initializer.name: list(initializer.dims) for initializer in model.graph.initializer})
    return shapes


Shapes = Mapping[str, list[int]]


def _attribute(node: Any, name: str, default: int = 0) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), default)


def _node_flops(node: Any, shapes: Shapes, producers: Mapping[str, Any]) -> list[tuple[str, float]] | None:
    """(rate class, FLOPs) of one node; [] for nodes that multiply no matrices; None when a shape is missing."""
    op = node.op_type
    out = shapes.get(node.output[0]) if node.output else None
    if op in _MATMULS or op in _GEMMS:
        a_index, b_index = _MATMULS.get(op, (0, 1))
        a = shapes.get(node.input[a_index])
        if a is None or out is None:
            return None
        k = a[-2] if _attribute(node, "transA") == 1 else a[-1]
        dequantized = all(
            getattr(producers.get(node.input[i]), "op_type", None) == "DequantizeLinear" for i in (a_index, b_index)
        )
        kind = INT8 if op in _INTEGER_OPS or dequantized else FP32
        return [(kind, 2.0 * math.prod(out) * k)]
    if op in _ATTENTIONS:
        x, w = shapes.get(node.input[0]), shapes.get(node.input[1])
        if x is None or w is None or out is None:
            return None
        batch, seq, hidden_in = x
        projection = 2.0 * batch * seq * hidden_in * w[1]
        core = 4.0 * batch * seq * seq * out[-1]  # QKᵀ and AV over all heads
        return [(INT8 if op in _INTEGER_OPS else FP32, projection), (FP32, core)]
    if op == "MultiHeadAttention":
        query = shapes.get(node.input[0])
        key = shapes.get(node.input[1]) if len(node.input) > 1 and node.input[1] else None
        if query is None or out is None:
            return None
        keys = key[1] if key is not None and len(key) == 3 else query[1]
        return [(FP32, 4.0 * query[0] * query[1] * keys * out[-1])]
    return []


def _gathered_rows(name: str, consumers: Mapping[str, list[tuple[Any, int]]], shapes: Shapes) -> int | None:
    """Rows of initializer `name` that Gather looks up (through a DequantizeLinear), or None if it is read whole."""
    uses = consumers.get(name, [])
    if len(uses) == 1 and uses[0][0].op_type == "DequantizeLinear" and uses[0][1] == 0:
        return _gathered_rows(uses[0][0].output[0], consumers, shapes)
    if not uses or any(node.op_type != "Gather" or index != 0 or _attribute(node, "axis") != 0 for node, index in uses):
        return None
    indices = [shapes.get(node.input[1]) for node, _ in uses]
    if any(shape is None for shape in indices):
        return None
    return sum(math.prod(shape) for shape in indices if shape is not None)


def _weight_bytes(model: Any, shapes: Shapes) -> float:
    from onnx import helper

    consumers: dict[str, list[tuple[Any, int]]] = {}
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, index))
    total = 0.0
    for initializer in model.graph.initializer:
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(initializer.data_type)).itemsize
        dims = list(initializer.dims)
        rows = _gathered_rows(initializer.name, consumers, shapes) if dims else None
        if rows is None:
            total += math.prod(dims) * itemsize
        else:
            total += min(rows, dims[0]) * math.prod(dims[1:]) * itemsize
    return total


def graph_cost(model: Any, batch: int, seq: int) -> CallCost:
    """The work of one call of `model` (an onnx ModelProto) on inputs of shape (batch, seq)."""
    shapes = runtime_shapes(model, batch, seq)
    producers = {output: node for node in model.graph.node for output in node.output}
    flops = {FP32: 0.0, INT8: 0.0}
    uncounted = 0
    for node in model.graph.node:
        counted = _node_flops(node, shapes, producers)
        if counted is None:
            uncounted += 1
            continue
        for kind, value in counted:
            flops[kind] += value
    return CallCost(flops, _weight_bytes(model, shapes), uncounted)


@dataclass(frozen=True)
class CostModel:
    """A graph's work for any (batch B, seq S): FLOPs B·(c0 + c1·S + c2·S²) per rate class, bytes w0 + g·B·S + h·S."""

    flop_coefficients: Mapping[str, tuple[float, float, float]]
    byte_coefficients: tuple[float, float, float]
    uncounted_nodes: int

    @classmethod
    def of(cls, model_path: Path) -> CostModel:
        import onnx

        model = onnx.load(str(model_path))
        points = [graph_cost(model, 1, seq) for seq in _FIT_SEQUENCES]
        powers = np.array([[1.0, seq, seq * seq] for seq in _FIT_SEQUENCES])
        flops = {kind: _solved(powers, [p.flops[kind] for p in points]) for kind in (FP32, INT8)}
        shapes = [(1, seq) for seq in _FIT_SEQUENCES[:2]] + [(2, _FIT_SEQUENCES[0])]
        byte_points = [*points[:2], graph_cost(model, *shapes[-1])]
        terms = np.array([[1.0, batch * seq, seq] for batch, seq in shapes])
        weight_bytes = _solved(terms, [p.weight_bytes for p in byte_points])
        return cls(flops, weight_bytes, max(p.uncounted_nodes for p in [*points, byte_points[-1]]))

    def at(self, batch: int, seq: int) -> CallCost:
        flops = {kind: batch * (c[0] + c[1] * seq + c[2] * seq * seq) for kind, c in self.flop_coefficients.items()}
        fixed, per_token, per_position = self.byte_coefficients
        return CallCost(flops, fixed + per_token * batch * seq + per_position * seq, self.uncounted_nodes)

    def bound_ms(self, shapes: Sequence[tuple[int, int]], rates: MachineRates) -> float:
        """The bound of a sequence of calls, one per (batch, seq) shape."""
        return sum(float(self.at(batch, seq).bound(rates)["bound_ms"]) for batch, seq in shapes)

    def to_record(self) -> dict[str, Any]:
        return {
            "flop_coefficients": {kind: list(c) for kind, c in self.flop_coefficients.items()},
            "byte_coefficients": list(self.byte_coefficients),
            "uncounted_nodes": self.uncounted_nodes,
        }


def _solved(terms: np.ndarray, values: Sequence[float]) -> tuple[float, float, float]:
    a, b, c = (float(x) for x in np.linalg.solve(terms, np.asarray(values, dtype=np.float64)))
    return a, b, c
