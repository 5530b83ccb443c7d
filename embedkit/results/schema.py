"""The record format: its JSON Schema per kind, and the validation every record passes on write and read.

A record is one JSON object. Every record carries `schema_version`, `kind`, a `record_id` that embeds
the machine id (so records from many machines merge without clashing), `created_at`, `machine_id` and
the full `provenance`. The rest depends on the kind; `record_schema(kind)` is the authoritative
description. A new kind is one more entry in `_KIND_PROPERTIES` (plus its consistency check, if any).

Validation is JSON Schema plus the cross-field checks JSON Schema cannot state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np

from embedkit import stats
from embedkit.errors import InvalidRecordError, RecordVersionError, UnknownNameError
from embedkit.pipeline.embedder import STAGES
from embedkit.results.samples import SAMPLE_ENCODING, decode_samples

SCHEMA_VERSION = 1
# What a profile record times: the embedder's stages, and "total", the whole batch call that latency
# sampling times around them.
_RECORDED_STAGES: tuple[str, ...] = (*STAGES, "total")

# --- the schema -------------------------------------------------------------------------------------

_NONNEGATIVE = {"type": "number", "minimum": 0}
_COUNT = {"type": "integer", "minimum": 0}
_NAME = {"type": "string", "minLength": 1}
_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_TIMESTAMP = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"}
# Providers are stored under ONNX Runtime's full name so that records join across kinds.
_PROVIDER = {"type": "string", "pattern": "^[A-Za-z0-9]+ExecutionProvider$"}
_SHARE = {"type": "number", "minimum": 0, "maximum": 1}


def _object(properties: Mapping[str, Any], *, extra: bool) -> dict[str, Any]:
    """An object schema whose listed properties are all required."""
    return {
        "type": "object",
        "properties": dict(properties),
        "required": list(properties),
        "additionalProperties": extra,
    }


_CI = {"type": "array", "items": _NONNEGATIVE, "minItems": 2, "maxItems": 2}
_LATENCY_STATS = _object(
    {
        **{f"p{q}": _NONNEGATIVE for q in stats.PERCENTILES},
        "mean": _NONNEGATIVE,
        "stdev": _NONNEGATIVE,
        "min": _NONNEGATIVE,
        "max": _NONNEGATIVE,
        "n": {"type": "integer", "minimum": 2},
        **{f"p{q}_ci": _CI for q in stats.PERCENTILES},
        "noisy": {"type": "boolean"},
    },
    extra=False,
)
_ENCODED_SAMPLES = _object(
    {"encoding": {"const": SAMPLE_ENCODING}, "n": _COUNT, "data": {"type": "string"}}, extra=False
)
# The recorded stages are required; a later stage (e.g. "copy") may be added without a version bump.
_STAGE_MAP = {"type": "object", "required": list(_RECORDED_STAGES), "propertyNames": {"pattern": "^[a-z_]+$"}}

_PROVENANCE = _object(
    {
        "embedkit": _object(
            {
                "version": {"type": ["string", "null"]},
                "commit": {"type": ["string", "null"]},
                "dirty": {"type": ["boolean", "null"]},
            },
            extra=True,
        ),
        "python": _object({"version": _NAME}, extra=True),
        "packages": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
        "onnxruntime": _object(
            {"version": {"type": ["string", "null"]}, "available_providers": {"type": "array", "items": _NAME}},
            extra=True,
        ),
        "cpu": _object(
            {
                "model": _NAME,
                "physical_cores": {"type": ["integer", "null"], "minimum": 1},
                "logical_cores": {"type": ["integer", "null"], "minimum": 1},
            },
            extra=True,
        ),
        "os": _object({"system": _NAME}, extra=True),
        "machine_id": _NAME,
        "collected_at": _TIMESTAMP,
    },
    extra=True,
)

_MODEL = _object(
    {
        "spec": _object({"name": _NAME}, extra=True),
        "variant": _object({"name": _NAME, "sha256": _SHA256, "manifest": {"type": "object"}}, extra=True),
    },
    extra=False,
)
# Optional (records written before them stay valid; a missing `weights` reads as checkpoint): where the
# weight values came from, and what produced the input ids.
_MODEL["properties"]["weights"] = {
    "oneOf": [
        _object({"kind": {"const": "checkpoint"}}, extra=False),
        _object({"kind": {"const": "random"}, "seed": {"type": "integer"}, "config_sha256": _SHA256}, extra=False),
    ]
}
_MODEL["properties"]["tokenizer"] = {
    "type": "object",
    "properties": {"source": _NAME, "sha256": _SHA256},
    "required": ["source"],
    "additionalProperties": False,
}

_MAYBE_NUMBER = {"type": ["number", "null"]}
_TUNE_CANDIDATE = _object(
    {
        "model": _NAME,
        "variant": _NAME,
        "provider": _PROVIDER,
        "threads": {"type": ["integer", "null"], "minimum": 1},
        "spinning": _NAME,
        "max_seq_length": {"type": ["integer", "null"], "minimum": 2},
        "p95_ms": _MAYBE_NUMBER,
        "mean_score": _MAYBE_NUMBER,
        "status": {"enum": ["fits", "misses", "chosen", "skipped"]},
        "reason": {"type": "string"},
    },
    extra=True,
)

_ENVELOPE = {
    "schema_version": {"const": SCHEMA_VERSION},
    "record_id": {"type": "string", "pattern": r"^[A-Za-z0-9._-]+$"},
    "created_at": _TIMESTAMP,
    "machine_id": _NAME,
    "provenance": _PROVENANCE,
}

_KIND_PROPERTIES: dict[str, dict[str, Any]] = {
    "profile": {
        "model": _MODEL,
        "grid": _object(
            {
                "model": _NAME,
                "variant": _NAME,
                "provider": _PROVIDER,
                "provider_options": {"type": "object"},
                "batch_size": {"type": "integer", "minimum": 1},
                "seq_bucket": _NAME,
                # null: ONNX Runtime's default thread count.
                "intra_op_threads": {"type": ["integer", "null"], "minimum": 1},
            },
            extra=True,
        ),
        "stages": {
            **_STAGE_MAP,
            "additionalProperties": _LATENCY_STATS,
            "properties": dict.fromkeys(_RECORDED_STAGES, _LATENCY_STATS),
        },
        "samples": {
            **_STAGE_MAP,
            "additionalProperties": _ENCODED_SAMPLES,
            "properties": dict.fromkeys(_RECORDED_STAGES, _ENCODED_SAMPLES),
        },
        "throughput": _object({"texts_per_s": _NONNEGATIVE, "tokens_per_s": _NONNEGATIVE}, extra=True),
        "peak_rss_mb": _NONNEGATIVE,
        "cold_start": _object({"session_create_ms": _NONNEGATIVE, "first_run_ms": _NONNEGATIVE}, extra=True),
        "warmup": _object({"runs": _COUNT, "stable": {"type": "boolean"}}, extra=True),
        "placement": _object(
            {
                "requested_providers": {"type": "array", "items": _PROVIDER, "minItems": 1},
                "runs": _COUNT,
                "providers": {
                    "type": "object",
                    "propertyNames": _PROVIDER,
                    "additionalProperties": _object(
                        {
                            "nodes": _COUNT,
                            "node_share": _SHARE,
                            "time_us": _NONNEGATIVE,
                            "time_share": _SHARE,
                            "partitions": _COUNT,
                        },
                        extra=False,
                    ),
                },
                "fallback_nodes": {
                    "type": "array",
                    "items": _object(
                        {"name": {"type": "string"}, "op_type": _NAME, "reason": {"type": ["string", "null"]}},
                        extra=False,
                    ),
                },
            },
            extra=True,
        ),
    },
    "score": {
        "model": _MODEL,
        "provider": _PROVIDER,
        # MTEB main score per task, on mteb's 0-1 scale.
        "scores": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "number"}},
        # Per-task details (e.g. mteb's TaskResult), one entry per scored task.
        "tasks": {"type": "object", "additionalProperties": {"type": "object"}},
        # True when the variant failed its parity gate and was scored anyway.
        "forced": {"type": "boolean"},
        # sha256 of each local data file the scores were computed from, keyed by its path in the
        # mirror (or by task). Empty when every task loaded from the hub: see `data_revision`.
        "data_sha256": {"type": "object", "additionalProperties": _SHA256},
    },
    # `embedkit tune`: the question, every candidate with what was measured of it or why it was skipped,
    # and the choice (null when nothing meets the goal).
    "tune": {
        "question": _object(
            {
                "model": _NAME,
                "tasks": {"type": "array", "items": _NAME, "minItems": 1},
                "mode": {"enum": ["p95", "throughput"]},
            },
            extra=True,
        ),
        "best": {"type": ["object", "null"]},
        "candidates": {"type": "array", "minItems": 1, "items": _TUNE_CANDIDATE},
        "counts": _object({"candidates": _COUNT, "measured": _COUNT, "skipped": _COUNT}, extra=False),
        "seconds": _NONNEGATIVE,
    },
    # Published MTEB quality (embedkit.quality.published): scores read from the MTEB results repository for
    # a model whose quality is not measured here. It belongs to the original model's weights, never to
    # an export variant, so it names no variant.
    "published": {
        "model": _object(
            {
                "spec": _object({"name": _NAME}, extra=True),
                "hub": _object({"repo_id": _NAME, "revision": {"type": ["string", "null"]}}, extra=False),
            },
            extra=False,
        ),
        # Main score of the split named in each source, on mteb's 0-1 scale.
        "scores": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "number"}},
        "sources": {
            "type": "object",
            "additionalProperties": _object(
                {
                    "file": _NAME,
                    "revision": _NAME,
                    "split": _NAME,
                    "subsets": {"type": "array", "items": _NAME, "minItems": 1},
                    "mteb_version": {"type": ["string", "null"]},
                    "dataset_revision": {"type": ["string", "null"]},
                },
                extra=False,
            ),
        },
        "results": _object(
            {"repository": _NAME, "results_dir": _NAME, "commit": {"type": ["string", "null"]}}, extra=False
        ),
    },
    # `embedkit bench` (issue 11): contenders with their parity, the three workloads, the ratios beside
    # their goals, this machine's measured rates and each ONNX contender's physical bound.
    "bench": {
        "bench": _object(
            {
                "model": _NAME,
                "contenders": {"type": "object", "minProperties": 1},
                "single_text": {"type": "object"},
                "batch32_texts_per_s": {"type": "object", "additionalProperties": _NONNEGATIVE},
                "long_texts_per_s": {"type": "object", "additionalProperties": _NONNEGATIVE},
                "ratios": {"type": "object"},
                "rates": _object(
                    {"bandwidth_gb_s": _NONNEGATIVE, "fp32_gflops": _NONNEGATIVE, "int8_gops": _NONNEGATIVE},
                    extra=False,
                ),
                "bound": {"type": "object"},
            },
            extra=True,
        ),
    },
}

# Properties a kind may carry but need not: later additions, so that records written before them
# stay valid without a schema version bump.
_KIND_OPTIONAL_PROPERTIES: dict[str, dict[str, Any]] = {
    "score": {
        # Tasks loaded from the HF hub, which has no local files to hash: the dataset and the commit
        # mteb pins for it, per task.
        "data_revision": {
            "type": "object",
            "additionalProperties": _object({"path": _NAME, "revision": _NAME}, extra=False),
        },
        # How the scores were computed, so that `embedkit verify` can repeat it exactly.
        "scoring": _object(
            {
                "batch_size": {"type": "integer", "minimum": 1},
                "provider_options": {"type": "object", "additionalProperties": {"type": "string"}},
                "providers": {"type": "array", "items": _PROVIDER, "minItems": 1},
            },
            extra=True,
        ),
    },
}

KINDS: tuple[str, ...] = tuple(_KIND_PROPERTIES)


def record_schema(kind: str) -> dict[str, Any]:
    """The complete JSON Schema (draft 2020-12) of one record kind."""
    if kind not in _KIND_PROPERTIES:
        raise UnknownNameError(f"unknown record kind {kind!r}; known kinds: {', '.join(KINDS)}")
    schema = _object({**_ENVELOPE, "kind": {"const": kind}, **_KIND_PROPERTIES[kind]}, extra=False)
    schema["properties"].update(_KIND_OPTIONAL_PROPERTIES.get(kind, {}))
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


_VALIDATORS = {kind: jsonschema.Draft202012Validator(record_schema(kind)) for kind in KINDS}


# --- validation --------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _to_json_types(record: Mapping[str, Any], path: Path | None) -> dict[str, Any]:
    """A deep copy holding only JSON types; NaN and infinity are refused (they are not JSON)."""
    try:
        copied: dict[str, Any] = json.loads(json.dumps(record, default=_json_default, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise InvalidRecordError(f"not representable as strict JSON: {error}", path) from error
    return copied


def _consistency_problems(record: Mapping[str, Any]) -> list[str]:
    """Cross-field rules that JSON Schema cannot state."""
    problems = []
    if record["machine_id"] != record["provenance"]["machine_id"]:
        problems.append(
            f"machine_id {record['machine_id']!r} differs from provenance.machine_id "
            f"{record['provenance']['machine_id']!r}"
        )
    if record["kind"] == "profile":
        model, grid = record["model"], record["grid"]
        if (grid["model"], grid["variant"]) != (model["spec"]["name"], model["variant"]["name"]):
            problems.append(
                f"grid names {grid['model']}:{grid['variant']} but model block names "
                f"{model['spec']['name']}:{model['variant']['name']}"
            )
        if set(record["stages"]) != set(record["samples"]):
            problems.append(f"stages {sorted(record['stages'])} but samples {sorted(record['samples'])}")
        for stage in set(record["stages"]) & set(record["samples"]):
            try:
                stored = decode_samples(record["samples"][stage]).size
            except InvalidRecordError as error:
                problems.append(f"samples.{stage}: {error}")
                continue
            if stored != record["stages"][stage]["n"]:
                problems.append(f"stages.{stage}.n is {record['stages'][stage]['n']} but {stored} samples are stored")
    if record["kind"] == "score":
        problems.extend(_score_problems(record))
    if record["kind"] == "tune":
        problems.extend(_tune_problems(record))
    if record["kind"] == "published" and set(record["scores"]) != set(record["sources"]):
        problems.append(f"scores for {sorted(record['scores'])} but sources for {sorted(record['sources'])}")
    return problems


def _tune_problems(record: Mapping[str, Any]) -> list[str]:
    chosen = [c for c in record["candidates"] if c["status"] == "chosen"]
    if record["best"] is None:
        return [f"no best but {len(chosen)} candidate(s) marked chosen"] if chosen else []
    if len(chosen) != 1:
        return [f"a best configuration but {len(chosen)} candidates marked chosen"]
    keys = ("model", "variant", "provider", "threads", "spinning", "max_seq_length")
    if any(record["best"].get(key) != chosen[0][key] for key in keys):
        return ["best differs from the candidate marked chosen"]
    return []


def _score_problems(record: Mapping[str, Any]) -> list[str]:
    problems = []
    scored = set(record["scores"])
    if scored != set(record["tasks"]):
        problems.append(f"scores for {sorted(scored)} but task details for {sorted(record['tasks'])}")
    hub_tasks = set(record.get("data_revision", {}))
    if hub_tasks - scored:
        problems.append(f"data_revision names {sorted(hub_tasks - scored)}, which have no score")
    # Every score must say which data it came from: local files by hash, hub data by revision.
    if not record["data_sha256"] and hub_tasks != scored:
        problems.append(f"no data_sha256 and no data_revision for {sorted(scored - hub_tasks)}")
    return problems


def validate_record(record: Mapping[str, Any], path: Path | None = None) -> dict[str, Any]:
    """Check a record; return it as plain JSON types. Raises a RecordError subclass naming `path`."""
    normalized = _to_json_types(record, path)
    version = normalized.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise InvalidRecordError(f"schema_version must be an integer, got {version!r}", path)
    if version != SCHEMA_VERSION:
        direction = "newer" if version > SCHEMA_VERSION else "older"
        raise RecordVersionError(
            f"record schema_version {version} is {direction} than the version this embedkit reads "
            f"({SCHEMA_VERSION}); read it with an embedkit whose records are version {version}, "
            "or re-run the measurement",
            path,
        )
    kind = normalized.get("kind")
    if kind not in _VALIDATORS:
        raise InvalidRecordError(f"unknown record kind {kind!r}; known kinds: {', '.join(KINDS)}", path)
    error = jsonschema.exceptions.best_match(_VALIDATORS[kind].iter_errors(normalized))
    if error is not None:
        raise InvalidRecordError(f"{error.json_path}: {error.message}", path)
    problems = _consistency_problems(normalized)
    if problems:
        raise InvalidRecordError("; ".join(problems), path)
    return normalized
