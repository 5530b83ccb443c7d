"""Records as pandas frames: one row per record, nested fields flattened to dotted columns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedkit.results.files import load_record_set

if TYPE_CHECKING:
    import pandas as pd

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
        # A record written before weights were recorded measured a checkpoint.
        "weights": record.get("model", {}).get("weights", {}).get("kind", "checkpoint"),
        "weights_seed": record.get("model", {}).get("weights", {}).get("seed"),
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
    provider, path, weights ("checkpoint", or "random": an architecture twin), weights_seed. Raw samples, per-task details and variant manifests stay in the records.
    """
    import pandas as pd  # the notebooks' dependency; the profiler writes records without it

    record_list = list(records)
    path_list = list(paths) if paths is not None else [None] * len(record_list)
    frame = pd.json_normalize([_frame_row(record, path) for record, path in zip(record_list, path_list, strict=True)])
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
