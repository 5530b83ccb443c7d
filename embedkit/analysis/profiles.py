"""Tables of profile records at one grid point, computed from a records frame: the p50 of each stage,
the raw latency samples, and where each graph's nodes ran. Each row keeps its record's id and machine,
and names its configuration the one way every table and figure names it (`config_label`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from embedkit import defaults
from embedkit.pipeline.embedder import STAGES
from embedkit.pipeline.providers import short_name
from embedkit.results.samples import decode_samples

_PLACEMENT_PREFIX = "placement.providers."


def point_name(model: str, variant: str, provider: str) -> str:
    """A (model, variant, provider) in one line: model:variant · provider's short name."""
    return f"{model}:{variant} · {short_name(provider)}"


def config_label(row: Mapping[str, Any] | pd.Series) -> str:
    """A profile record's configuration in one line: model:variant · provider · batch/seq · threads."""
    threads = row.get("grid.intra_op_threads")
    thread_part = "" if threads is None or pd.isna(threads) else f" · {int(threads)} thr"
    return (
        f"{point_name(row['model'], row['variant'], row['provider'])} · "
        f"b{int(row['grid.batch_size'])}/{row['grid.seq_bucket']}{thread_part}"
    )


def profile_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of `frame` that are profile records (none when it has no `kind` column)."""
    return frame[frame["kind"] == "profile"] if "kind" in frame else frame.iloc[0:0]


def profiles_at(frame: pd.DataFrame, batch_size: int | None, seq_bucket: str | None) -> pd.DataFrame:
    """Profile rows at the grid point; None matches every batch size or sequence bucket."""
    selected = profile_rows(frame)
    if selected.empty:
        return selected
    if batch_size is not None:
        selected = selected[selected["grid.batch_size"] == batch_size]
    if seq_bucket is not None:
        selected = selected[selected["grid.seq_bucket"] == seq_bucket]
    return selected


def stage_table(
    frame: pd.DataFrame,
    *,
    batch_size: int | None = defaults.DECISION_BATCH_SIZE,
    seq_bucket: str | None = defaults.DECISION_SEQ_BUCKET,
) -> pd.DataFrame:
    """p50 per stage (ms) of every profile record at the grid point: one row per record.

    Columns: machine_id, record_id, label, one column per stage other than total (tokenize,
    feeds, run, pool, and any later stage), total. The stage medians need not add up to the
    total's median: the median of a sum is not the sum of the medians.
    """
    profiles = profiles_at(frame, batch_size, seq_bucket)
    stage_names = _stage_names(profiles)
    rows = [
        {
            "machine_id": row["machine_id"],
            "record_id": row["record_id"],
            "label": config_label(row),
            **{stage: float(row[f"stages.{stage}.p50"]) for stage in stage_names},
            "total": float(row["stages.total.p50"]),
        }
        for _, row in profiles.iterrows()
    ]
    return pd.DataFrame(rows, columns=["machine_id", "record_id", "label", *stage_names, "total"])


def _stage_names(profiles: pd.DataFrame) -> list[str]:
    """The recorded stages other than total: the pipeline's four in order, then any others by name."""
    present = {
        column.split(".")[1]
        for column in profiles.columns
        if column.startswith("stages.") and column.endswith(".p50") and profiles[column].notna().any()
    }
    known = [stage for stage in STAGES if stage in present]
    return known + sorted(present - set(STAGES) - {"total"})


def latency_samples(
    loaded: Iterable[Mapping[str, Any]],
    *,
    batch_size: int | None = defaults.DECISION_BATCH_SIZE,
    seq_bucket: str | None = defaults.DECISION_SEQ_BUCKET,
    stage: str = "total",
) -> pd.DataFrame:
    """Raw latency samples (ms) of the profile records at the grid point, decoded from the records.

    `loaded`: records as from `embedkit.results.files.load_records`. One row per sample: machine_id, record_id,
    provider, variant, label, latency_ms.
    """
    parts = []
    for record in loaded:
        if record["kind"] != "profile":
            continue
        grid = record["grid"]
        if (batch_size is not None and grid["batch_size"] != batch_size) or (
            seq_bucket is not None and grid["seq_bucket"] != seq_bucket
        ):
            continue
        row = {
            "model": grid["model"],
            "variant": grid["variant"],
            "provider": grid["provider"],
            "grid.batch_size": grid["batch_size"],
            "grid.seq_bucket": grid["seq_bucket"],
            "grid.intra_op_threads": grid.get("intra_op_threads"),
        }
        samples = decode_samples(record["samples"][stage]).astype(float)
        parts.append(
            pd.DataFrame(
                {
                    "machine_id": record["machine_id"],
                    "record_id": record["record_id"],
                    "provider": grid["provider"],
                    "variant": grid["variant"],
                    "label": config_label(row),
                    "latency_ms": samples,
                }
            )
        )
    columns = ["machine_id", "record_id", "provider", "variant", "label", "latency_ms"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def placement_table(
    frame: pd.DataFrame,
    *,
    batch_size: int | None = defaults.DECISION_BATCH_SIZE,
    seq_bucket: str | None = defaults.DECISION_SEQ_BUCKET,
) -> pd.DataFrame:
    """Where each profile record's graph ran: one row per (record, executing provider).

    Columns: machine_id, record_id, label, requested (the provider asked for), provider (the one
    that ran the nodes), node_share, time_share, partitions.
    """
    profiles = profiles_at(frame, batch_size, seq_bucket)
    prefix = _PLACEMENT_PREFIX
    executing = sorted(
        {column[len(prefix) :].rsplit(".", 1)[0] for column in profiles.columns if column.startswith(prefix)}
    )
    rows = [
        {
            "machine_id": row["machine_id"],
            "record_id": row["record_id"],
            "label": config_label(row),
            "requested": row["provider"],
            "provider": provider,
            "node_share": float(row[f"{prefix}{provider}.node_share"]),
            "time_share": float(row[f"{prefix}{provider}.time_share"]),
            "partitions": int(row[f"{prefix}{provider}.partitions"]),
        }
        for _, row in profiles.iterrows()
        for provider in executing
        if pd.notna(row.get(f"{prefix}{provider}.node_share"))
    ]
    columns = ["machine_id", "record_id", "label", "requested", "provider", "node_share", "time_share", "partitions"]
    return pd.DataFrame(rows, columns=columns)
