"""What an ONNX graph is (parameters, vocabulary, opset, ops) and where mobile accelerators could run it.

The CoreML report answers "will CoreML take this model?" on a machine without a Mac: ORT's own
usability checker predicts partitions by operator, and we add the CoreML EP rule the checker does not
know: any tensor dimension above 16,384 (weights included) is rejected, so the node using it runs on CPU.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.errors import ModelFileError

COREML_MAX_DIMENSION = 16_384


def _load(model_path: Path, with_weights: bool = False) -> Any:
    import onnx

    try:
        model = onnx.load(str(model_path), load_external_data=with_weights)
    except Exception as exc:  # DecodeError and friends from protobuf
        raise ModelFileError(f"cannot parse ONNX file {model_path}: {exc}") from exc
    # Protobuf parses an empty file, or one cut at a field boundary, as a model without nodes.
    if not model.graph.node:
        raise ModelFileError(f"ONNX file {model_path} has no graph nodes: it is empty or truncated")
    return model


def _initializer_sizes(graph: Any) -> dict[str, tuple[int, ...]]:
    return {init.name: tuple(int(d) for d in init.dims) for init in graph.initializer}


def _producers(graph: Any) -> dict[str, Any]:
    return {output: node for node in graph.node for output in node.output}


def _rows_feeding(graph: Any, input_name: str) -> int | None:
    """Rows of the table a Gather on `input_name` looks up (through Dequantize/Cast chains)."""
    sizes = _initializer_sizes(graph)
    producers = _producers(graph)
    for node in graph.node:
        if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] == input_name:
            table = node.input[0]
            while table not in sizes and table in producers:
                table = producers[table].input[0]
            if sizes.get(table):
                return sizes[table][0]
    return None


def _layer_count(graph: Any) -> int | None:
    indices = {int(m.group(1)) for init in graph.initializer if (m := re.search(r"layers?\.(\d+)\.", init.name))}
    indices |= {int(m.group(1)) for node in graph.node if (m := re.search(r"layers?\.(\d+)/", node.name))}
    return max(indices) + 1 if indices else None


def graph_facts(model_path: Path) -> dict[str, Any]:
    model = _load(model_path)
    graph = model.graph
    sizes = _initializer_sizes(graph)
    outputs = {o.name: [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim] for o in graph.output}
    hidden = next((shape[-1] for shape in outputs.values() if len(shape) == 3 and isinstance(shape[-1], int)), None)
    return {
        "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None),
        "inputs": [i.name for i in graph.input if i.name not in sizes],
        "outputs": outputs,
        "parameters": int(sum(int(np.prod(shape)) for shape in sizes.values())),
        "embedding_rows": _rows_feeding(graph, "input_ids"),
        "max_positions": _rows_feeding(graph, "position_ids") or _position_rows(sizes),
        "hidden_size": hidden,
        "layers": _layer_count(graph),
        "nodes": len(graph.node),
        "op_histogram": dict(Counter(node.op_type for node in graph.node).most_common()),
        "file_bytes": Path(model_path).stat().st_size,
        # Weights kept beside the graph (models over protobuf's 2 GB), by file name.
        "external_data_bytes": _external_data_bytes(model, Path(model_path).parent),
    }


def external_data_locations(model: Any) -> list[str]:
    """The external data files a model's tensors name (relative to the ONNX file), without reading them."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors

    return sorted(
        {
            entry.value
            for tensor in _get_all_tensors(model)
            if tensor.data_location == onnx.TensorProto.EXTERNAL
            for entry in tensor.external_data
            if entry.key == "location"
        }
    )


def _external_data_bytes(model: Any, directory: Path) -> dict[str, int]:
    return {name: (directory / name).stat().st_size for name in external_data_locations(model)}


def _position_rows(sizes: dict[str, tuple[int, ...]]) -> int | None:
    rows = [shape[0] for name, shape in sizes.items() if "position_embeddings" in name and len(shape) == 2]
    return rows[0] if rows else None


def oversized_tensors(model_path: Path, limit: int = COREML_MAX_DIMENSION) -> dict[str, tuple[int, ...]]:
    """Initializers with a dimension above `limit`: CoreML EP rejects the nodes that use them."""
    graph = _load(model_path).graph
    return {name: shape for name, shape in _initializer_sizes(graph).items() if any(d > limit for d in shape)}


def coreml_report(model_path: Path) -> dict[str, Any]:
    """Predicted CoreML (MLProgram and NeuralNetwork) and NNAPI partitions, with the >16384 rule applied."""
    import onnx
    from onnxruntime.tools.mobile_helpers import usability_checker as checker

    # Shapes come from the graph and the initializers' dims: the weights themselves (gigabytes of external
    # data for a large model, which ORT's ModelProtoWithShapeInfo would load and copy) are not read.
    model = onnx.shape_inference.infer_shapes(_load(model_path), strict_mode=True)
    oversized = {
        name for name, shape in _initializer_sizes(model.graph).items() if any(d > COREML_MAX_DIMENSION for d in shape)
    }
    ops_dir = Path(checker.__file__).parent
    report: dict[str, Any] = {"oversized_tensors": sorted(oversized), "max_dimension": COREML_MAX_DIMENSION}
    for label, ops_file, max_rank, dimension_rule in (
        ("CoreML MLProgram", "coreml_supported_mlprogram_ops.md", 5, True),
        ("CoreML NeuralNetwork", "coreml_supported_neuralnetwork_ops.md", 5, True),
        ("NNAPI", "nnapi_supported_ops.md", 999, False),
    ):
        supported_ops = checker._SupportedOpsChecker(ops_dir / ops_file)
        if dimension_rule:
            supported_ops = _DimensionLimitedOps(supported_ops, oversized)
        info = checker.check_partitioning(
            model.graph, supported_ops, require_fixed_input_sizes=False, max_rank=max_rank
        )
        report[label] = _partition_summary(info, supported_ops)
    return report


class _DimensionLimitedOps:
    """ORT's supported-ops checker, plus CoreML's rule that no input may have a dimension > 16384."""

    def __init__(self, inner: Any, oversized: set[str]) -> None:
        self._inner = inner
        self._oversized = oversized
        self.rejected_for_dimension: list[str] = []

    def is_op_supported(self, node: Any) -> bool:
        if any(name in self._oversized for name in node.input):
            self.rejected_for_dimension.append(f"{node.op_type}:{node.name}")
            return False
        return bool(self._inner.is_op_supported(node))

    def get_caveats(self) -> list[str]:
        return list(self._inner.get_caveats())


def _partition_summary(info: Any, supported_ops: Any) -> dict[str, Any]:
    return {
        "nodes": info.num_nodes,
        "supported_nodes": info.num_supported_nodes,
        "supported_share": info.num_supported_nodes / info.num_nodes if info.num_nodes else 0.0,
        "partitions": info.num_partitions,
        "unsupported_ops": sorted(info.unsupported_ops),
        "rejected_for_dimension": list(getattr(supported_ops, "rejected_for_dimension", [])),
        "verdict": info.suitability().name,
    }


def inspect_model(model_path: Path) -> dict[str, Any]:
    return {"path": str(model_path), **graph_facts(model_path), "mobile": coreml_report(model_path)}
