"""The steps that make a variant's graph: optimum-onnx's fp32 export, O-level optimisation, dynamic int8
quantisation, calibrated static int8 and fp16 conversion. `embedkit.models.export` chooses the step,
caches its output and writes the manifest."""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import Any

from embedkit.models.onnx_files import MODEL_FILE, onnx_files
from embedkit.models.specs import ModelSpec

# ONNX Runtime's calibration methods (onnxruntime.quantization.CalibrationMethod), by the name recorded.
# Only MinMax: onnxruntime 1.32's histogram calibrators (Entropy, Percentile) stack every batch into one
# array and fail on batches padded to their own longest text, which is how the embedder feeds the graph.
CALIBRATION_METHODS = {"minmax": "MinMax"}


def jsonable(value: Any) -> Any:
    """`value` as plain JSON: dataclasses as dicts, enums by name, anything else unknown as its str."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def export_fp32(spec: ModelSpec, checkpoint: Path, work: Path) -> Path:
    from optimum.exporters.onnx import main_export

    out = work / "export"
    # library_name="transformers" exports the bare encoder, whose output is last_hidden_state; pooling
    # stays in embedkit, where every variant shares it.
    main_export(
        str(checkpoint),
        out,
        task="feature-extraction",
        library_name="transformers",
        device="cpu",
        do_validation=False,
        trust_remote_code=spec.trust_remote_code,
    )
    return out / MODEL_FILE


def optimize(source_dir: Path, level: str, work: Path) -> Path:
    from optimum.onnxruntime import ORTOptimizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig

    config = AutoOptimizationConfig.with_optimization_level(level, for_gpu=level == "O4")
    out = work / "optimized"
    ORTOptimizer.from_pretrained(source_dir).optimize(config, out, file_suffix=None)
    return out / MODEL_FILE


def quantize_dynamic(source_dir: Path, quantization: dict[str, Any], work: Path) -> Path:
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    preset = getattr(AutoQuantizationConfig, quantization["arch"])
    config = preset(is_static=False, per_channel=quantization["per_channel"])
    external = len(onnx_files(source_dir / MODEL_FILE)) > 1
    if quantization["source_variant"] != "fp32":  # only fused graphs hold ops ONNX cannot type
        _infer_contrib_op_shapes(source_dir / MODEL_FILE)
    out = work / "quantized"
    # A graph too big for one protobuf (> 2 GB) is read and written with its weights in external data.
    quantizer = ORTQuantizer.from_pretrained(source_dir, file_name=MODEL_FILE)
    quantizer.quantize(config, out, file_suffix=None, use_external_data_format=external)
    quantization["config"] = jsonable(config)
    return out / MODEL_FILE


def quantize_static_int8(
    spec: ModelSpec, checkpoint: Path, source_dir: Path, quantization: dict[str, Any], work: Path
) -> Path:
    """ONNX Runtime's `quantize_static` on the source graph, fed the calibration set as the embedder feeds it."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from embedkit.models.calibration import CalibrationReader, calibration_set, calibration_tokenizer
    from embedkit.models.inspect import graph_facts

    model_path = source_dir / MODEL_FILE
    _infer_contrib_op_shapes(model_path)
    graph = graph_facts(model_path)
    calibration = quantization["calibration"]
    texts = calibration_set().texts
    reader = CalibrationReader(texts, calibration_tokenizer(spec, checkpoint, graph), graph["inputs"],
                               calibration["batch_size"])  # fmt: skip
    method = CALIBRATION_METHODS[calibration["method"]]
    # Not CalibMaxIntermediateOutputs: onnxruntime 1.32's MinMax calibrator drops the batches it holds when
    # that limit is reached instead of reducing them, so every batch's intermediate tensors stay in memory.
    extra_options = dict(quantization["extra_options"])
    excluded = _nodes_fed_by(model_path, quantization["op_types"], quantization["float_inputs_from"])
    quantization["excluded_nodes"] = excluded
    out = work / "static.onnx"
    quantize_static(
        model_path,
        out,
        reader,
        quant_format=QuantFormat.QDQ,
        per_channel=quantization["per_channel"],
        activation_type=getattr(QuantType, quantization["activation_type"]),
        weight_type=getattr(QuantType, quantization["weight_type"]),
        calibrate_method=getattr(CalibrationMethod, method),
        op_types_to_quantize=quantization["op_types"],
        nodes_to_exclude=excluded,
        extra_options=extra_options,
    )
    return out


def _nodes_fed_by(model_path: Path, op_types: list[str], producers: list[str]) -> list[str]:
    """Names of the `op_types` nodes whose first input is an output of a `producers` node."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    produced_by = {output: node.op_type for node in graph.node for output in node.output}
    return [
        node.name for node in graph.node if node.op_type in op_types and produced_by.get(node.input[0]) in producers
    ]


def _infer_contrib_op_shapes(model_path: Path) -> None:
    """Annotate the types ONNX's own shape inference cannot give to ORT's fused ops (Attention, ...).

    The quantizer needs every weight's input type; an optimized graph's com.microsoft ops leave them
    unknown unless ORT's symbolic shape inference, which knows those ops, fills them in first.
    """
    import onnx
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    model = SymbolicShapeInference.infer_shapes(onnx.load(str(model_path)), auto_merge=True)
    onnx.save(model, str(model_path))


def to_float16(model_path: Path, work: Path) -> Path:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # ONNX's shape inference serializes the whole model, which fails over protobuf's 2 GB: a model
    # with external data is converted without it, and saved with external data again.
    external = len(onnx_files(model_path)) > 1
    model = convert_float_to_float16(onnx.load(str(model_path)), keep_io_types=True, disable_shape_infer=external)
    out = work / "fp16.onnx"
    onnx.save(model, str(out), save_as_external_data=external, location="fp16.onnx_data")
    return out
