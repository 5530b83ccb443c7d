"""Export variants with optimum-onnx: fp32, O1–O4 graph optimisations, int8 dynamic quantisation, fp16.

Each variant lives in `models/exports/<model>/<variant>-<key16>/` with `model.onnx` and `manifest.json`;
key16 hashes the source checkpoint, the recipe and the exporting libraries' versions, so a variant is
never exported twice and a library upgrade produces a new one beside the old.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedkit import defaults
from embedkit.errors import ModelFileError, UsageError, VariantUnavailableError
from embedkit.models.inspect import external_data_locations
from embedkit.models.sources import materialize, pytorch_checkpoint, read_json, tree_sha256
from embedkit.models.specs import ModelSpec
from embedkit.paths import child_path, models_dir
from embedkit.system import file_sha256, package_versions, peak_rss_mb, utc_now

VARIANTS = ("fp32", "O1", "O2", "O3", "O4", "int8", "int8-pc", "fp16")
QUANTIZATION_ARCHS = ("avx512_vnni", "avx512", "avx2", "arm64")
EXPORT_LIBRARIES = ("optimum-onnx", "optimum", "onnx", "onnxruntime", "transformers", "torch")
MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
PARITY = "parity.json"


@dataclass(frozen=True)
class Variant:
    """One exported (or packaged) ONNX file of a model, with its manifest."""

    name: str
    path: Path  # the ONNX file
    manifest: dict[str, Any]
    directory: Path  # where the manifest and the parity result live

    @property
    def sha256(self) -> str:
        return str(self.manifest["model_sha256"])

    @property
    def parity(self) -> dict[str, Any] | None:
        """The stored parity-gate result, or None when the gate has not run."""
        parity_file = self.directory / PARITY
        return read_json(parity_file, "parity result") if parity_file.is_file() else None


def detect_quantization_arch() -> str:
    """The best optimum quantisation preset this CPU supports."""
    import platform

    if platform.machine().lower() in ("arm64", "aarch64"):
        return "arm64"
    flags = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        flags = next((line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), "")
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


def recipe(variant: str, quantization_arch: str | None = None, quantize_from: str = "fp32") -> dict[str, Any]:
    """What a variant is made of: the options that go in its manifest and its key."""
    if variant not in VARIANTS:
        raise UsageError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    base: dict[str, Any] = {"task": "feature-extraction", "library_name": "transformers", "opset": None}
    if variant in ("O1", "O2", "O3", "O4"):
        base["optimization_level"] = variant
    elif variant.startswith("int8"):
        base["quantization"] = {
            "arch": quantization_arch or detect_quantization_arch(),
            "is_static": False,
            "per_channel": variant == "int8-pc",
            "source_variant": quantize_from,
        }
    elif variant == "fp16":
        base["float16"] = {"keep_io_types": True}
    return base


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _variant_dir(spec: ModelSpec, variant: str, checkpoint_sha: str, options: dict[str, Any]) -> Path:
    key = json.dumps(
        {
            "checkpoint": checkpoint_sha,
            "variant": variant,
            "options": options,
            "libraries": package_versions(EXPORT_LIBRARIES),
        },
        sort_keys=True,
    )
    return child_path(models_dir(), "exports", spec.name, f"{variant}-{hashlib.sha256(key.encode()).hexdigest()[:16]}")


def get_variant(
    spec: ModelSpec,
    variant: str = defaults.DEFAULT_VARIANT,
    quantization_arch: str | None = None,
    *,
    directory: Path | None = None,
) -> Variant:
    """The variant's ONNX file, exporting it (and the variant it derives from) on first use.

    `directory`: the spec's files, when the caller has already resolved them (`materialize`).
    """
    directory = directory or materialize(spec)
    if spec.is_onnx_only:
        return packaged_variant(spec, variant, directory)
    checkpoint = pytorch_checkpoint(spec, directory)
    checkpoint_sha = tree_sha256(checkpoint)
    if variant in ("O1", "O2", "O3", "O4") and not optimizer_knows(checkpoint):
        raise VariantUnavailableError(
            f"{spec.name}:{variant} cannot be produced: optimum's ORTOptimizer does not know model_type "
            f"{_model_type(checkpoint)!r}; its fp32, fp16 and int8 variants (quantized from fp32) exist"
        )
    quantize_from = quantization_source(checkpoint) if variant.startswith("int8") else "fp32"
    options = recipe(variant, quantization_arch, quantize_from)
    target = _variant_dir(spec, variant, checkpoint_sha, options)
    if (target / MANIFEST).is_file():
        return _read_variant(variant, target)
    source = None if variant == "fp32" else get_variant(spec, quantize_from, directory=checkpoint)
    with tempfile.TemporaryDirectory(dir=_ensure_parent(target), prefix=".export-") as scratch:
        work = Path(scratch)
        produced = _produce(spec, variant, options, checkpoint, source, work)
        staging = work / "out"
        staging.mkdir()
        place_onnx(produced, staging, shutil.move)
        manifest = _manifest(spec, variant, options, checkpoint, checkpoint_sha, staging / MODEL_FILE, source)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    return _read_variant(variant, target)


def onnx_files(model_path: Path) -> list[Path]:
    """The ONNX file and the external data files it names (a model over protobuf's 2 GB keeps its
    weights beside the graph, e.g. `model.onnx_data`)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return [Path(model_path), *(Path(model_path).parent / location for location in external_data_locations(model))]


def onnx_sha256(model_path: Path) -> str:
    """The ONNX file's sha256; for a model with external data, the sha256 of its files' names and hashes."""
    files = onnx_files(model_path)
    if len(files) == 1:
        return file_sha256(model_path)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(bytes.fromhex(file_sha256(path)))
    return digest.hexdigest()


def place_onnx(model_path: Path, directory: Path, transfer: Any) -> None:
    """`model_path` to `directory/model.onnx`, its external data files beside it (names kept: the graph
    names them); `transfer` is shutil.move or shutil.copy."""
    model_file, *data_files = onnx_files(model_path)
    for data_file in data_files:
        transfer(str(data_file), directory / data_file.name)
    transfer(str(model_file), directory / MODEL_FILE)


def _ensure_parent(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.parent


def quantization_source(checkpoint: Path) -> str:
    """The variant int8 variants quantize: O2 where ONNX Runtime's transformer optimizer knows the model.

    ONNX Runtime's advice is to optimize before quantizing: O2 fuses each layer's attention into one
    Attention node, which the quantizer turns into QAttention (one int8 QKV product) instead of three
    MatMulInteger chains around an unfused float attention.
    """
    return "O2" if optimizer_knows(checkpoint) else "fp32"


def _model_type(checkpoint: Path) -> str:
    return str(read_json(checkpoint / "config.json", "model config").get("model_type", ""))


def optimizer_knows(checkpoint: Path) -> bool:
    """Whether optimum's ORTOptimizer (the O1–O4 variants) supports the checkpoint's architecture."""
    from optimum.onnxruntime.configuration import AutoOptimizationConfig
    from optimum.onnxruntime.utils import ORTConfigManager

    try:
        ORTConfigManager.check_optimization_supported_model(_model_type(checkpoint), AutoOptimizationConfig.O2())
    except NotImplementedError:
        return False
    return True


def _produce(
    spec: ModelSpec, variant: str, options: dict[str, Any], checkpoint: Path, source: Variant | None, work: Path
) -> Path:
    if variant == "fp32":
        return _export_fp32(spec, checkpoint, work)
    assert source is not None
    # optimum's optimizer and quantizer read config.json beside the ONNX file.
    source_dir = work / source.name
    source_dir.mkdir()
    place_onnx(source.path, source_dir, shutil.copy)
    shutil.copy(checkpoint / "config.json", source_dir / "config.json")
    if "optimization_level" in options:
        return _optimize(source_dir, variant, work)
    if "quantization" in options:
        return _quantize(source_dir, options["quantization"], work)
    return _to_float16(source_dir / MODEL_FILE, work)


def _export_fp32(spec: ModelSpec, checkpoint: Path, work: Path) -> Path:
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


def _optimize(source_dir: Path, level: str, work: Path) -> Path:
    from optimum.onnxruntime import ORTOptimizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig

    config = AutoOptimizationConfig.with_optimization_level(level, for_gpu=level == "O4")
    out = work / "optimized"
    ORTOptimizer.from_pretrained(source_dir).optimize(config, out, file_suffix=None)
    return out / MODEL_FILE


def _quantize(source_dir: Path, quantization: dict[str, Any], work: Path) -> Path:
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
    quantization["config"] = _jsonable(config)
    return out / MODEL_FILE


def _infer_contrib_op_shapes(model_path: Path) -> None:
    """Annotate the types ONNX's own shape inference cannot give to ORT's fused ops (Attention, ...).

    The quantizer needs every weight's input type; an optimized graph's com.microsoft ops leave them
    unknown unless ORT's symbolic shape inference, which knows those ops, fills them in first.
    """
    import onnx
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    model = SymbolicShapeInference.infer_shapes(onnx.load(str(model_path)), auto_merge=True)
    onnx.save(model, str(model_path))


def _to_float16(model_path: Path, work: Path) -> Path:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # ONNX's shape inference serializes the whole model, which fails over protobuf's 2 GB: a model
    # with external data is converted without it, and saved with external data again.
    external = len(onnx_files(model_path)) > 1
    model = convert_float_to_float16(onnx.load(str(model_path)), keep_io_types=True, disable_shape_infer=external)
    out = work / "fp16.onnx"
    onnx.save(model, str(out), save_as_external_data=external, location="fp16.onnx_data")
    return out


def _manifest(
    spec: ModelSpec,
    variant: str,
    options: dict[str, Any],
    source: Path,
    source_sha: str,
    model_path: Path,
    derived_from: Variant | None,
) -> dict[str, Any]:
    from embedkit.models.inspect import graph_facts

    return {
        "model": spec.name,
        "variant": variant,
        "source": {"path": str(source), "sha256": source_sha, "spec_source": _jsonable(spec.source)},
        "derived_from": None if derived_from is None else {"variant": derived_from.name, "sha256": derived_from.sha256},
        "options": _jsonable(options),
        "libraries": package_versions(EXPORT_LIBRARIES),
        "model_sha256": onnx_sha256(model_path),
        "graph": graph_facts(model_path),
        # Of the exporting process, up to here: what producing the variant took (a 0.6B model needs GBs).
        "peak_rss_mb": peak_rss_mb(),
        "created_at": utc_now(),
    }


def _read_manifest(directory: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = read_json(directory / MANIFEST, "variant manifest")
    return manifest


def _read_variant(variant: str, directory: Path) -> Variant:
    manifest = _read_manifest(directory)
    return Variant(variant, directory / MODEL_FILE, manifest, directory)


def read_variant(name: str, path: Path, directory: Path) -> Variant:
    """A variant found earlier by `get_variant`, reopened from its files.

    Another environment (e.g. the OpenVINO venv, whose onnxruntime differs) computes a different
    export key, so a profiler worker there reopens the variant its parent resolved instead.
    """
    if not Path(path).is_file():
        raise ModelFileError(f"variant {name}: ONNX file {path} not found")
    return Variant(name, Path(path), _read_manifest(Path(directory)), Path(directory))


def packaged_variant(spec: ModelSpec, variant: str, directory: Path) -> Variant:
    """The ONNX file a source ships; its manifest is written once beside the content-addressed copy."""
    if variant != spec.packaged_variant:
        raise UsageError(
            f"{spec.name} ships only the {spec.packaged_variant!r} variant as ONNX; "
            f"other variants need a PyTorch checkpoint to export from"
        )
    model_path = directory / str(spec.onnx_file)
    if not model_path.is_file():
        raise ModelFileError(f"{spec.name}: ONNX file {model_path} not found")
    variant_dir = child_path(models_dir(), "exports", spec.name, f"{variant}-{file_sha256(model_path)[:16]}")
    if (variant_dir / MANIFEST).is_file():
        return Variant(variant, model_path, _read_manifest(variant_dir), variant_dir)
    manifest = _manifest(spec, variant, {"packaged": True}, directory, tree_sha256(directory), model_path, None)
    variant_dir.mkdir(parents=True, exist_ok=True)
    (variant_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return Variant(variant, model_path, manifest, variant_dir)
