"""Variants: their recipes, which step of `embedkit.models.transforms` makes each (fp32, O1–O4, int8, int8-pc,
int8-static, fp16), the cache of made variants and their manifests.

Each variant lives in `models/exports/<model>/<variant>-<key16>/` with `model.onnx` and `manifest.json`;
key16 hashes the source checkpoint, the recipe and the exporting libraries' versions, so a variant is
never exported twice and a library upgrade produces a new one beside the old.
"""

from __future__ import annotations

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
from embedkit.models.onnx_files import MODEL_FILE, onnx_sha256, place_onnx
from embedkit.models.sources import materialize, pytorch_checkpoint, read_json, tree_sha256
from embedkit.models.specs import ModelSpec
from embedkit.models.transforms import (
    CALIBRATION_METHODS,
    export_fp32,
    jsonable,
    optimize,
    quantize_dynamic,
    quantize_static_int8,
    to_float16,
)
from embedkit.paths import child_path, models_dir
from embedkit.pipeline.session import token_embedding_output
from embedkit.system import file_sha256, package_versions, peak_rss_mb, utc_now

VARIANTS = ("fp32", "O1", "O2", "O3", "O4", "int8", "int8-pc", "fp16", "int8-static")
# Calibrated static int8 variants: activation scales fixed from a calibration set (embedkit.models.calibration).
STATIC_VARIANTS = ("int8-static",)
# The ops static int8 quantizes, and the producers whose outputs it keeps in float: a GELU's output (the
# FFN down-projection's input) has outliers that one fixed int8 scale cannot hold.
STATIC_OP_TYPES = ("MatMul",)
FLOAT_INPUT_PRODUCERS = ("Gelu", "BiasGelu", "FastGelu")
QUANTIZATION_ARCHS = ("avx512_vnni", "avx512", "avx2", "arm64")
EXPORT_LIBRARIES = ("optimum-onnx", "optimum", "onnx", "onnxruntime", "transformers", "torch")
MANIFEST = "manifest.json"
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


def recipe(
    variant: str,
    quantization_arch: str | None = None,
    quantize_from: str = "fp32",
    calibration_method: str = defaults.CALIBRATION_METHOD,
) -> dict[str, Any]:
    """What a variant is made of: the options that go in its manifest and its key."""
    if variant not in VARIANTS:
        raise UsageError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    base: dict[str, Any] = {"task": "feature-extraction", "library_name": "transformers", "opset": None}
    if variant in STATIC_VARIANTS:
        base["quantization"] = static_quantization(quantize_from, calibration_method)
    elif variant in ("O1", "O2", "O3", "O4"):
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


def static_quantization(quantize_from: str, calibration_method: str) -> dict[str, Any]:
    """QDQ int8 with per-channel symmetric weights and symmetric int8 activations, calibrated on the
    default calibration set; its identity (files, sha256, counts) is part of the recipe, so new data
    makes a new variant."""
    from embedkit.models.calibration import calibration_set

    if calibration_method not in CALIBRATION_METHODS:
        raise UsageError(
            f"unknown calibration method {calibration_method!r}; expected one of {list(CALIBRATION_METHODS)}"
        )
    return {
        "is_static": True,
        "format": "QDQ",
        "per_channel": True,
        "activation_type": "QInt8",
        "weight_type": "QInt8",
        # ONNX Runtime's advice for x86: symmetric activations (and weights) for its int8 kernels.
        "extra_options": {"ActivationSymmetric": True, "WeightSymmetric": True},
        "op_types": list(STATIC_OP_TYPES),
        "float_inputs_from": list(FLOAT_INPUT_PRODUCERS),
        "source_variant": quantize_from,
        "calibration": {
            "method": calibration_method,
            "batch_size": defaults.CALIBRATION_BATCH_SIZE,
            **calibration_set().identity,
        },
    }


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
    calibration_method: str = defaults.CALIBRATION_METHOD,
) -> Variant:
    """The variant's ONNX file, exporting it (and the variant it derives from) on first use.

    `directory`: the spec's files, when the caller has already resolved them (`materialize`);
    `calibration_method`: how a static int8 variant's activation ranges are taken from its calibration set.
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
    options = recipe(variant, quantization_arch, quantize_from, calibration_method)
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


# Which model types optimum's ORTOptimizer supports, per optimum version: asking imports optimum.onnxruntime
# and with it torch (~5 s), which every process opening an existing O-level or int8 variant would pay.
OPTIMIZER_SUPPORT = "optimizer-support.json"
OPTIMIZER_LIBRARIES = ("optimum-onnx", "optimum")


def optimizer_knows(checkpoint: Path) -> bool:
    """Whether optimum's ORTOptimizer (the O1–O4 variants) supports the checkpoint's architecture.

    The answer is kept in `models/exports/optimizer-support.json`, keyed by the optimum versions and the
    model type, so it is asked once per library upgrade."""
    model_type = _model_type(checkpoint)
    memo = models_dir() / "exports" / OPTIMIZER_SUPPORT
    key = json.dumps(package_versions(OPTIMIZER_LIBRARIES), sort_keys=True)
    known = _read_optimizer_support(memo)
    answers = known.get(key, {})
    if model_type not in answers:
        answers = {**answers, model_type: _ask_optimizer(model_type)}
        memo.parent.mkdir(parents=True, exist_ok=True)
        # Written whole and replaced, so that parallel sweep workers never read half a file.
        scratch = memo.with_name(f".{memo.name}.{os.getpid()}")
        scratch.write_text(json.dumps({**known, key: answers}, indent=2, sort_keys=True))
        os.replace(scratch, memo)
    return bool(answers[model_type])


def _read_optimizer_support(memo: Path) -> dict[str, dict[str, bool]]:
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _ask_optimizer(model_type: str) -> bool:
    from optimum.onnxruntime.configuration import AutoOptimizationConfig
    from optimum.onnxruntime.utils import ORTConfigManager

    try:
        ORTConfigManager.check_optimization_supported_model(model_type, AutoOptimizationConfig.O2())
    except NotImplementedError:
        return False
    return True


def _produce(
    spec: ModelSpec, variant: str, options: dict[str, Any], checkpoint: Path, source: Variant | None, work: Path
) -> Path:
    if variant == "fp32":
        return export_fp32(spec, checkpoint, work)
    assert source is not None
    # optimum's optimizer and quantizer read config.json beside the ONNX file.
    source_dir = work / source.name
    source_dir.mkdir()
    place_onnx(source.path, source_dir, shutil.copy)
    shutil.copy(checkpoint / "config.json", source_dir / "config.json")
    if "optimization_level" in options:
        return optimize(source_dir, variant, work)
    if options.get("quantization", {}).get("is_static"):
        return quantize_static_int8(spec, checkpoint, source_dir, options["quantization"], work)
    if "quantization" in options:
        return quantize_dynamic(source_dir, options["quantization"], work)
    return to_float16(source_dir / MODEL_FILE, work)


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
        "source": {"path": str(source), "sha256": source_sha, "spec_source": jsonable(spec.source)},
        "derived_from": None if derived_from is None else {"variant": derived_from.name, "sha256": derived_from.sha256},
        "options": jsonable(options),
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


# How a shipped ONNX file becomes its variant; part of the variant's key, so a change of recipe re-makes it.
PACKAGED_RECIPE = {"packaged": True, "graph": "per-token output only"}


def packaged_variant(spec: ModelSpec, variant: str, directory: Path) -> Variant:
    """The ONNX file a source ships, cut down to its per-token output when it has others (its own
    pooling: embedkit pools itself); made once, in a directory keyed by the file's sha256 and the recipe."""
    if variant != spec.packaged_variant:
        raise UsageError(
            f"{spec.name} ships only the {spec.packaged_variant!r} variant as ONNX; "
            f"other variants need a PyTorch checkpoint to export from"
        )
    shipped = directory / str(spec.onnx_file)
    if not shipped.is_file():
        raise ModelFileError(f"{spec.name}: ONNX file {shipped} not found")
    key = hashlib.sha256(json.dumps([file_sha256(shipped), PACKAGED_RECIPE], sort_keys=True).encode()).hexdigest()
    variant_dir = child_path(models_dir(), "exports", spec.name, f"{variant}-{key[:16]}")
    if not (variant_dir / MANIFEST).is_file():
        with tempfile.TemporaryDirectory(dir=_ensure_parent(variant_dir), prefix=".export-") as scratch:
            staging = Path(scratch) / "out"
            staging.mkdir()
            options = {**PACKAGED_RECIPE, "outputs": _keep_only_token_output(shipped, staging / MODEL_FILE)}
            graph = staging / MODEL_FILE if (staging / MODEL_FILE).is_file() else shipped
            manifest = _manifest(spec, variant, options, directory, tree_sha256(directory), graph, None)
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            shutil.rmtree(variant_dir, ignore_errors=True)
            os.replace(staging, variant_dir)
    # A cut-down graph lives in the variant's directory; a graph that had nothing to cut is the shipped file.
    model_path = variant_dir / MODEL_FILE if (variant_dir / MODEL_FILE).is_file() else shipped
    return Variant(variant, model_path, _read_manifest(variant_dir), variant_dir)


def _keep_only_token_output(model_path: Path, target: Path) -> list[str]:
    """Write to `target` the graph cut down to what its per-token output needs, when it has other
    outputs; returns the outputs the variant keeps.

    A packaged graph may carry its own pooling beside the per-token output: embedkit pools itself, and the
    OpenVINO EP cannot compile paraphrase-MiniLM-L3-v2's (its Expand mixes int64 and int32)."""
    import onnx.utils

    from embedkit.models.inspect import load_graph

    graph = load_graph(model_path).graph
    ranks = {o.name: len(o.type.tensor_type.shape.dim) for o in graph.output}
    token_output = token_embedding_output(ranks, model_path)
    if len(ranks) > 1:
        onnx.utils.extract_model(str(model_path), str(target), [i.name for i in graph.input], [token_output])
    return [token_output]
