"""One JSON record format for every measurement embedkit keeps.

A record is one JSON object in one file `<record_id>.record.json`. Every record carries
`schema_version`, `kind`, a `record_id` that embeds the machine id (so records from many machines
merge without clashing), `created_at`, `machine_id` and the full `provenance`. The rest depends
on the kind; `record_schema(kind)` is the authoritative description. A new kind is one more
entry in `_KIND_PROPERTIES` (plus its consistency check, if any).

Records are validated (JSON Schema plus cross-field checks) on write and on read, and written
atomically: a reader sees the old file or the new one, never a torn one. A file that is not JSON at
all when read back (torn by a tool that does not write atomically, a bad disk) is quarantined by the
loaders: renamed `<name>.corrupt-<UTC time>` beside where it was, warned about and listed in the load
result, so that one bad file neither stops a load nor disappears unnoticed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
import uuid
import warnings
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import numpy as np

from embedkit.results import provenance as provenance_module
from embedkit.analysis import stats
from embedkit.errors import (
    CorruptRecordError,
    CrossMachineError,
    InvalidRecordError,
    RecordClashError,
    RecordError,
    RecordVersionError,
)
from embedkit.paths import results_dir, safe_name

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 1
RECORD_SUFFIX = ".record.json"
STAGES: tuple[str, ...] = ("tokenize", "feeds", "run", "pool", "total")
# Raw samples: little-endian float32 milliseconds (7 significant digits: sub-microsecond at
# 10 ms), zlib-compressed, base64 text. Named in each blob so that a later encoding can coexist.
SAMPLE_ENCODING = "f32le+zlib+base64"














# --- schema -------------------------------------------------------------------------------------

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
# The five stages are required; a later stage (e.g. "copy") may be added without a version bump.
_STAGE_MAP = {"type": "object", "required": list(STAGES), "propertyNames": {"pattern": "^[a-z_]+$"}}

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
            "properties": dict.fromkeys(STAGES, _LATENCY_STATS),
        },
        "samples": {
            **_STAGE_MAP,
            "additionalProperties": _ENCODED_SAMPLES,
            "properties": dict.fromkeys(STAGES, _ENCODED_SAMPLES),
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
        raise ValueError(f"unknown record kind {kind!r}; known kinds: {', '.join(KINDS)}")
    schema = _object({**_ENVELOPE, "kind": {"const": kind}, **_KIND_PROPERTIES[kind]}, extra=False)
    schema["properties"].update(_KIND_OPTIONAL_PROPERTIES.get(kind, {}))
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


_VALIDATORS = {kind: jsonschema.Draft202012Validator(record_schema(kind)) for kind in KINDS}


# --- raw samples --------------------------------------------------------------------------------


def encode_samples(samples_ms: Iterable[float] | np.ndarray) -> dict[str, Any]:
    """Latency samples (ms) → {"encoding", "n", "data"} for a record's `samples` section."""
    array = np.asarray(samples_ms, dtype="<f4").ravel()
    data = base64.b64encode(zlib.compress(array.tobytes(), level=9)).decode("ascii")
    return {"encoding": SAMPLE_ENCODING, "n": int(array.size), "data": data}


def decode_samples(encoded: Mapping[str, Any]) -> np.ndarray:
    """The float32 milliseconds stored by `encode_samples`; ValueError when the blob is damaged."""
    if encoded.get("encoding") != SAMPLE_ENCODING:
        raise ValueError(f"unknown sample encoding {encoded.get('encoding')!r}; expected {SAMPLE_ENCODING!r}")
    try:
        raw = zlib.decompress(base64.b64decode(encoded["data"], validate=True))
    except (ValueError, zlib.error) as error:
        raise ValueError(f"sample data does not decode: {error}") from error
    if len(raw) % 4:
        raise ValueError(f"sample data holds {len(raw)} bytes, not a whole number of float32 values")
    samples = np.frombuffer(raw, dtype="<f4")
    if samples.size != encoded["n"]:
        raise ValueError(f"sample data holds {samples.size} values but n says {encoded['n']}")
    return samples


def latency_sections(stage_samples_ms: Mapping[str, np.ndarray], **summarize_options: Any) -> dict[str, Any]:
    """{"stages": statistics per stage, "samples": encoded raw samples per stage} for a profile record.

    The statistics are computed from the float32 values that get stored, so that anyone can
    recompute a record's statistics from its samples and get the same numbers.
    """
    stored = {stage: np.asarray(values, dtype="<f4") for stage, values in stage_samples_ms.items()}
    return {
        "stages": {stage: stats.summarize(values, **summarize_options).to_record() for stage, values in stored.items()},
        "samples": {stage: encode_samples(values) for stage, values in stored.items()},
    }


# --- building and validating --------------------------------------------------------------------


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
        return json.loads(json.dumps(record, default=_json_default, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise InvalidRecordError(f"not representable as strict JSON: {error}", path) from error


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
            except ValueError as error:
                problems.append(f"samples.{stage}: {error}")
                continue
            if stored != record["stages"][stage]["n"]:
                problems.append(f"stages.{stage}.n is {record['stages'][stage]['n']} but {stored} samples are stored")
    if record["kind"] == "score":
        problems.extend(_score_problems(record))
    return problems


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


def make_record_id(kind: str, machine_id: str, created_at: str) -> str:
    """kind-machine-UTC time-random: unique across machines and sortable by time per machine."""
    machine = re.sub(r"[^A-Za-z0-9._]+", "_", machine_id)
    moment = re.sub(r"[^0-9T]", "", created_at.split(".")[0]) + "Z"
    return f"{kind}-{machine}-{moment}-{uuid.uuid4().hex[:8]}"


def new_record(
    kind: str, body: Mapping[str, Any], *, provenance: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A complete, validated record of `kind` from its kind-specific `body`.

    `provenance` defaults to `provenance.collect()` in this process: call this in the process
    (and environment) that measured, so the record names the ONNX Runtime build that ran.
    """
    origin = dict(provenance) if provenance is not None else provenance_module.collect()
    created_at = provenance_module.utc_now()
    envelope = {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "record_id": make_record_id(kind, str(origin["machine_id"]), created_at),
        "created_at": created_at,
        "machine_id": origin["machine_id"],
        "provenance": origin,
    }
    clashing = sorted(set(envelope) & set(body))
    if clashing:
        raise ValueError(f"body must not set envelope fields {clashing}")
    return validate_record({**envelope, **body})


# --- files --------------------------------------------------------------------------------------


def default_records_dir() -> Path:
    return results_dir() / "records"


def write_text_atomically(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, os.replace, then fsync the directory entry."""
    handle = tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            handle.write(text)
        replace_atomically(Path(handle.name), path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def replace_atomically(written: Path, path: Path) -> None:
    """Publish the finished file `written` as `path` (same directory): fsync it, os.replace, fsync the
    directory entry. A reader, or a process killed at any moment, sees the old file or the new one."""
    with open(written, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(written, path)
    if os.name == "posix":
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def write_record(record: Mapping[str, Any], directory: Path | str | None = None) -> Path:
    """Validate and atomically write `record` as `<directory>/<record_id>.record.json`."""
    normalized = validate_record(record)
    target_dir = Path(directory) if directory is not None else default_records_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    path = record_file(target_dir, normalized)
    write_text_atomically(path, json.dumps(normalized, indent=1, sort_keys=True) + "\n")
    return path


def record_file(directory: Path, record: Mapping[str, Any]) -> Path:
    """Where `record` lives in `directory`: its record_id as a safe file name."""
    return directory / f"{safe_name(record['record_id'], max_length=200)}{RECORD_SUFFIX}"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_record(path: Path | str) -> dict[str, Any]:
    """Read and validate one record file; CorruptRecordError / InvalidRecordError /
    RecordVersionError name the file."""
    file = Path(path)
    raw = file.read_bytes()
    try:
        record = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise CorruptRecordError(f"not a JSON record: {error}", file) from error
    if not isinstance(record, dict):
        raise CorruptRecordError(f"expected a JSON object, found {type(record).__name__}", file)
    return validate_record(record, file)


def record_paths(*sources: Path | str) -> list[Path]:
    """Record files among `sources`: files as given, directories searched recursively."""
    paths: list[Path] = []
    for source in map(Path, sources):
        paths.extend(sorted(source.rglob(f"*{RECORD_SUFFIX}")) if source.is_dir() else [source])
    return paths


QUARANTINE_MARK = ".corrupt-"


class QuarantineWarning(UserWarning):
    """A corrupt file was found on read and moved aside."""


@dataclass(frozen=True)
class Quarantined:
    """A corrupt file found on read: where it was, where it went (None: it could not be moved), why."""

    path: str
    moved_to: str | None
    reason: str

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)


def quarantine(path: Path, reason: str) -> Quarantined:
    """Move the corrupt file `path` aside as `<name>.corrupt-<UTC time>`, out of every reader's way, and warn.

    A file that cannot be moved (a read-only copy of another machine's results) stays where it is;
    the warning and the returned entry say so, and the caller skips it all the same.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}{QUARANTINE_MARK}{stamp}")
    try:
        os.replace(path, target)
        moved_to: str | None = str(target)
    except OSError as error:
        moved_to, reason = None, f"{reason}; it could not be moved aside ({error})"
    warnings.warn(f"quarantined corrupt file {path}: {reason}" + (f"; moved to {target.name}" if moved_to else ""),
                  QuarantineWarning, stacklevel=2)
    return Quarantined(str(path), moved_to, reason)


def is_quarantined(path: Path) -> bool:
    return QUARANTINE_MARK in path.name


@dataclass
class RecordSet:
    """What a load found: each record once, with its file, and the corrupt files it quarantined."""

    records: list[dict[str, Any]] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)


def load_record_set(*sources: Path | str) -> RecordSet:
    """Read every record under `sources` once; the same record found twice (e.g. a copied results dir)
    is kept once; corrupt files are quarantined. Invalid or other-version records still raise."""
    loaded = RecordSet()
    first_seen: dict[str, int] = {}  # record_id -> index in loaded
    for path in record_paths(*sources):
        try:
            record = read_record(path)
        except CorruptRecordError as error:
            loaded.quarantined.append(quarantine(path, str(error.__cause__ or error)))
            continue
        index = first_seen.get(record["record_id"])
        if index is None:
            first_seen[record["record_id"]] = len(loaded.records)
            loaded.records.append(record)
            loaded.paths.append(path)
        elif loaded.records[index] != record:
            raise RecordClashError(
                f"record_id {record['record_id']} also names a different record in {loaded.paths[index]}", path
            )
    return loaded


def load_records(*sources: Path | str) -> list[dict[str, Any]]:
    """Validated records from files and directories (e.g. several machines' results dirs)."""
    return load_record_set(*sources).records


# --- tables and comparisons ---------------------------------------------------------------------

# Bulky or deeply nested parts that would explode into hundreds of columns; read the record for them.
_FRAME_EXCLUDED = ("samples", "tasks")


def _frame_row(record: Mapping[str, Any], path: Path | None) -> dict[str, Any]:
    provider = record["grid"]["provider"] if record["kind"] == "profile" else record.get("provider")
    lead = {
        "record_id": record["record_id"],
        "kind": record["kind"],
        "machine_id": record["machine_id"],
        "created_at": record["created_at"],
        "model": record.get("model", {}).get("spec", {}).get("name"),
        "variant": record.get("model", {}).get("variant", {}).get("name"),
        "provider": provider,
        "path": None if path is None else str(path),
    }
    rest = {key: value for key, value in record.items() if key not in _FRAME_EXCLUDED and key not in lead}
    if "model" in rest:
        variant = {key: value for key, value in rest["model"]["variant"].items() if key != "manifest"}
        rest["model"] = {**rest["model"], "variant": variant}
    return {**lead, **rest}


def records_frame(records: Iterable[Mapping[str, Any]], paths: Iterable[Path | None] | None = None) -> pd.DataFrame:
    """One row per record, nested fields flattened to dotted columns (`stages.total.p95`,
    `grid.batch_size`, `scores.STSBenchmark`, `provenance.onnxruntime.version`, …).

    Leading columns: record_id, kind, machine_id, created_at (UTC datetime), model, variant,
    provider, path. Raw samples, per-task details and variant manifests stay in the records.
    """
    import pandas as pd  # the notebooks' dependency; the profiler writes records without it

    record_list = list(records)
    path_list = list(paths) if paths is not None else [None] * len(record_list)
    frame = pd.json_normalize([_frame_row(record, path) for record, path in zip(record_list, path_list)])
    if not frame.empty:
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="ISO8601")
    return frame


def load_frame(*sources: Path | str) -> pd.DataFrame:
    """`records_frame` of every record under `sources`, with each record's file in `path`; the files
    quarantined on the way are listed in `frame.attrs["quarantined"]`."""
    loaded = load_record_set(*sources)
    frame = records_frame(loaded.records, loaded.paths)
    frame.attrs["quarantined"] = [entry.to_dict() for entry in loaded.quarantined]
    return frame


def require_single_machine(frame: pd.DataFrame) -> str:
    """The one machine id in `frame`; CrossMachineError when it mixes machines (or is empty)."""
    machines = sorted(frame["machine_id"].dropna().unique()) if "machine_id" in frame else []
    if len(machines) != 1:
        raise CrossMachineError(
            f"latency comparisons need records from exactly one machine, got {len(machines)}: {machines}; "
            "select one machine (e.g. frame[frame.machine_id == ID]) or compare within each machine"
        )
    return str(machines[0])


def compare_profiles(
    a: Mapping[str, Any], b: Mapping[str, Any], *, stage: str = "total", statistic: stats.Statistic = "median"
) -> stats.RatioEstimate:
    """Latency of profile record a over profile record b for one stage, with a bootstrap CI.

    Refuses records from different machines. The two records were measured at different times,
    so their samples are resampled independently; to claim a small difference, measure the two
    configurations interleaved and use `stats.ratio_with_ci(..., paired=True)`.
    """
    for name, record in (("a", a), ("b", b)):
        if record.get("kind") != "profile":
            raise ValueError(f"{name} is a {record.get('kind')!r} record, not a profile")
    if a["machine_id"] != b["machine_id"]:
        raise CrossMachineError(
            f"record {a['record_id']} is from machine {a['machine_id']} and {b['record_id']} from "
            f"{b['machine_id']}: latencies are comparable only within one machine"
        )
    return stats.ratio_with_ci(
        decode_samples(a["samples"][stage]), decode_samples(b["samples"][stage]), paired=False, statistic=statistic
    )


def merge_records(sources: Iterable[Path | str], into: Path | str) -> list[Path]:
    """Copy every record under `sources` into `into/<machine_id>/`, refusing clashing record ids.

    Records from many machines land in one tree and stay apart by machine; a record already there
    is not written again.
    """
    target = Path(into)
    written = []
    for record in load_records(*sources, *((target,) if target.is_dir() else ())):
        path = record_file(target / safe_name(record["machine_id"]), record)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomically(path, json.dumps(record, indent=1, sort_keys=True) + "\n")
            written.append(path)
    return written
