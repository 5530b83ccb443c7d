"""`embedkit verify`: re-run a score record without the embedding cache and compare its main scores.

A re-run is refused when the variant file, the model spec or the data differ from what the record
scored, since the comparison would then measure the change, not reproducibility.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from embedkit import defaults
from embedkit.errors import RecordMismatchError, UsageError
from embedkit.models.export import get_variant
from embedkit.models.loading import embedder_for
from embedkit.models.onnx_files import onnx_sha256
from embedkit.models.specs import KNOWN_SPECS, ModelSpec, Weights, get_spec
from embedkit.models.twins import refuse_random
from embedkit.paths import data_dir
from embedkit.pipeline.embedder import Embedder
from embedkit.pipeline.session import OrtSession, SessionConfig
from embedkit.quality import mirror
from embedkit.quality.scoring import score
from embedkit.quality.tasks import get_task
from embedkit.results.files import read_record

VERIFY_TOLERANCE = 1e-6  # a re-run on the same machine and provider reproduces every main score


@dataclass(frozen=True)
class Verification:
    """A score record's main scores next to a fresh, uncached re-run of the same scoring."""

    record_path: str
    record_id: str
    recorded: dict[str, float]
    rescored: dict[str, float]
    tolerance: float = VERIFY_TOLERANCE

    @property
    def abs_deltas(self) -> dict[str, float]:
        return {task: abs(self.rescored[task] - value) for task, value in self.recorded.items()}

    @property
    def passed(self) -> bool:
        return all(delta <= self.tolerance for delta in self.abs_deltas.values())

    def to_dict(self) -> dict[str, Any]:
        deltas = self.abs_deltas
        return {
            "record": self.record_path,
            "record_id": self.record_id,
            "tasks": {
                task: {"recorded": value, "rescored": self.rescored[task], "abs_delta": deltas[task]}
                for task, value in self.recorded.items()
            },
            "max_abs_delta": max(deltas.values()),
            "tolerance": self.tolerance,
            "passed": self.passed,
        }


def verify_record(path: Path | str, *, tolerance: float = VERIFY_TOLERANCE) -> Verification:
    """Re-run a score record (same model, variant file, provider, options, batch size and tasks) without
    the embedding cache, and compare each main score with the recorded one.

    Refuses (RecordMismatchError) when the variant file on disk, the model spec or the data is not
    what the record scored: the comparison would then measure the change, not reproducibility.
    The re-run's mteb result files go to a scratch directory, leaving the record's own untouched.
    """
    record = read_record(path)
    if record["kind"] != "score":
        raise UsageError(f"{path} is a {record['kind']} record; verify takes score records")
    if record["model"].get("weights", {}).get("kind") == "random":
        refuse_random(_recorded_twin(record), "verify")
    tasks = list(record["scores"])
    _require_same_data(record, tasks)
    embedder = embedder_for_record(record)
    with tempfile.TemporaryDirectory(prefix="embedkit-verify-") as scratch:
        rescored = score(
            embedder,
            tasks,
            force=record["forced"],
            output_dir=Path(scratch),
            batch_size=record.get("scoring", {}).get("batch_size", defaults.BATCH_SIZE),
            use_cache=False,
        )
    return Verification(str(path), record["record_id"], dict(record["scores"]), rescored.scores, tolerance)


def embedder_for_record(record: Mapping[str, Any]) -> Embedder:
    """An embedder on the recorded model spec, variant file, provider and provider options.

    The variant is resolved as `embedkit.load` would resolve it here, and its ONNX file is hashed:
    a file that differs from the recorded sha256 is refused.
    """
    recorded_spec, recorded_variant = record["model"]["spec"], record["model"]["variant"]
    spec = get_spec(_spec_location(recorded_spec))
    current_spec = json.loads(json.dumps(asdict(spec), default=str))
    # Spec fields added after a record was written: compared only where the record has them.
    for key in _LATER_SPEC_FIELDS:
        if key not in recorded_spec:
            current_spec.pop(key, None)
    if current_spec != recorded_spec:
        changed = sorted(
            key for key in {*current_spec, *recorded_spec} if current_spec.get(key) != recorded_spec.get(key)
        )
        raise RecordMismatchError(
            f"the model spec of {spec.name} changed since record {record['record_id']}: {changed}"
        )
    variant = get_variant(spec, recorded_variant["name"])
    on_disk = onnx_sha256(variant.path)
    if on_disk != recorded_variant["sha256"]:
        raise RecordMismatchError(
            f"variant {spec.name}:{variant.name} on disk ({variant.path}) has sha256 {on_disk}, but record "
            f"{record['record_id']} scored {recorded_variant['sha256']}: the variant changed, so re-score it"
        )
    scoring = record.get("scoring", {})
    config = SessionConfig(
        record["provider"], scoring.get("provider_options", {}), intra_op_threads=scoring.get("intra_op_threads")
    )
    return embedder_for(spec, variant, OrtSession(variant.path, config))


# ModelSpec fields newer than some score records (their defaults are what those records scored).
_LATER_SPEC_FIELDS = ("weights", "tokenizer_source")


def _recorded_twin(record: Mapping[str, Any]) -> ModelSpec:
    """The recorded spec with its random weights: what `refuse_random` names in its refusal."""
    weights = record["model"]["weights"]
    spec = get_spec(_spec_location(record["model"]["spec"]))
    return replace(spec, weights=Weights("random", weights["seed"], weights["config_sha256"]))


def _spec_location(recorded_spec: Mapping[str, Any]) -> str:
    """What `get_spec` finds the recorded spec by: its name when known, else its local path or hub id."""
    source = recorded_spec.get("source", {})
    if recorded_spec["name"] in KNOWN_SPECS:
        return str(recorded_spec["name"])
    return str(source.get("path") or source.get("repo_id") or recorded_spec["name"])


def _require_same_data(record: Mapping[str, Any], tasks: Sequence[str]) -> None:
    """The data the record was scored on must be the data a re-run would read now."""
    hub = record.get("data_revision", {})
    if hub and data_dir() is not None:
        raise RecordMismatchError(
            f"record {record['record_id']} scored {sorted(hub)} from the hub, but EMBEDKIT_DATA names a local mirror"
            " that would replace that data: unset it"
        )
    for name, dataset in hub.items():
        pinned = get_task(name).metadata.dataset
        if (pinned["path"], pinned["revision"]) != (dataset["path"], dataset["revision"]):
            raise RecordMismatchError(
                f"{name} was scored on {dataset['path']}@{dataset['revision']}; this mteb pins "
                f"{pinned['path']}@{pinned['revision']}"
            )
    local_tasks = [name for name in tasks if name not in hub]
    if not local_tasks:
        return
    if data_dir() is None:
        raise RecordMismatchError(
            f"record {record['record_id']} scored {local_tasks} from a local data mirror: set EMBEDKIT_DATA to it"
        )
    current = {relative: digest for name in local_tasks for relative, digest in mirror.data_sha256(name).items()}
    if current != record["data_sha256"]:
        changed = sorted(
            key for key in {*current, *record["data_sha256"]} if current.get(key) != record["data_sha256"].get(key)
        )
        raise RecordMismatchError(f"data files differ from those record {record['record_id']} scored: {changed}")
