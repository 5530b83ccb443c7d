"""Execution providers by name: short names (`CPU`, `CoreML`, `OpenVINO`, `CUDA`) and ORT's full names,
and provider options as ONNX Runtime takes them (strings), checked where ORT checks only late."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

import onnxruntime as ort

from embedkit.errors import ProviderUnavailableError, UsageError

SUFFIX = "ExecutionProvider"
CPU = "CPUExecutionProvider"
PROVIDER_NAMES = {
    "cpu": CPU,
    "coreml": "CoreMLExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "directml": "DmlExecutionProvider",
    "rocm": "ROCMExecutionProvider",
}
FULL_NAMES = frozenset(PROVIDER_NAMES.values())

# Option values ORT validates only when the provider is created; checking them here gives the same
# error on a machine without the hardware (a Linux box preparing a CoreML grid, for instance).
ALLOWED_OPTION_VALUES: dict[str, dict[str, tuple[str, ...]]] = {
    "CoreMLExecutionProvider": {
        "ModelFormat": ("MLProgram", "NeuralNetwork"),
        "MLComputeUnits": ("ALL", "CPUOnly", "CPUAndGPU", "CPUAndNeuralEngine"),
        "RequireStaticInputShapes": ("0", "1"),
        "EnableOnSubgraphs": ("0", "1"),
        "SpecializationStrategy": ("Default", "FastPrediction"),
        "AllowLowPrecisionAccumulationOnGPU": ("0", "1"),
    },
    "OpenVINOExecutionProvider": {
        "precision": ("FP32", "FP16", "ACCURACY"),
    },
    "CUDAExecutionProvider": {
        "arena_extend_strategy": ("kNextPowerOfTwo", "kSameAsRequested"),
        "cudnn_conv_algo_search": ("EXHAUSTIVE", "HEURISTIC", "DEFAULT"),
    },
}


def resolve_provider(name: str) -> str:
    """ORT's full provider name for a short or full name."""
    if name in FULL_NAMES:
        return name
    full = PROVIDER_NAMES.get(name.lower().removesuffix(SUFFIX.lower()))
    if full is None:
        known = ", ".join(sorted({*FULL_NAMES, *ort.get_available_providers()}))
        raise ProviderUnavailableError(f"unknown execution provider {name!r}; known: {known}")
    return full


def short_name(provider: str) -> str:
    """ORT's full provider name without its "ExecutionProvider" suffix: CPU, CoreML, OpenVINO, …"""
    return provider.removesuffix(SUFFIX)


def build_provider_options(provider: str, options: Mapping[str, Any]) -> dict[str, str]:
    """Provider options as ORT takes them (strings), with known enumerations checked."""
    provider = resolve_provider(provider)
    allowed = ALLOWED_OPTION_VALUES.get(provider, {})
    built: dict[str, str] = {}
    for key, value in options.items():
        text = str(int(value)) if isinstance(value, bool) else str(value)
        if key in allowed and text not in allowed[key]:
            raise UsageError(f"{provider} option {key}={text!r} is not one of {allowed[key]}")
        built[key] = text
    return built


def parse_option_values(pairs: Iterable[str]) -> dict[str, list[str]]:
    """`KEY=VALUE` strings -> every value given per key, in order; a pair without '=' is a UsageError."""
    values: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"a provider option is KEY=VALUE, got {pair!r}")
        values.setdefault(key, []).append(value)
    return values


def parse_options(pairs: Iterable[str]) -> dict[str, str]:
    """`KEY=VALUE` strings -> one value per key; a key given twice is a UsageError."""
    values = parse_option_values(pairs)
    repeated = sorted(key for key, given in values.items() if len(given) > 1)
    if repeated:
        raise UsageError(f"provider option(s) {', '.join(repeated)} given more than once; give each once here")
    return {key: given[0] for key, given in values.items()}


def option_combinations(pairs: Iterable[str]) -> list[dict[str, str]]:
    """`KEY=VALUE` strings -> every combination of the values given per key (a repeated key is a grid axis)."""
    values = parse_option_values(pairs)
    return [dict(zip(values, combination, strict=True)) for combination in itertools.product(*values.values())]
