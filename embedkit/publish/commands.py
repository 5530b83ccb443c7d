"""The commands that re-measure a record: `embedkit profile …` for a profile record's grid point and
`embedkit score …` for a score record, as the report prints them beside every point.

The profile command's grid options come from embedkit.latency.grid.AXES (each axis's CLI flag), so a
new axis appears in the re-run commands without a change here.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from embedkit import defaults
from embedkit.latency.grid import AXES, Axis
from embedkit.pipeline.providers import short_name

_PROVIDER_OPTION_PREFIX = "grid.provider_options."
# How long a profile samples: the measurement of the point, not an axis of the grid.
_SAMPLING_FLAGS = {
    "--samples": "grid.sampling.min_samples",
    "--min-seconds": "grid.sampling.min_seconds",
    "--max-seconds": "grid.sampling.max_seconds",
}


def _option(name: str, value: Any) -> list[str]:
    return [name, shlex.quote(str(value))]


def _missing(value: Any) -> bool:
    return value is None or bool(pd.isna(value))


def _takes_none(axis: Axis) -> bool:
    """Whether None is a value of `axis` (threads: ONNX Runtime's default): its text parses back to None."""
    try:
        return axis.parse(axis.as_text(None)) is None
    except (TypeError, ValueError):
        return False


def _axis_options(profile: Mapping[str, Any]) -> list[str]:
    """Every grid axis's flag with the record's value on it."""
    parts: list[str] = []
    for axis in AXES:
        value: Any = profile.get(f"grid.{axis.field}")
        if _missing(value):
            if not _takes_none(axis) or axis.default == (None,):
                # A record made before this axis existed does not say; when None is the axis's default
                # (max_seq_length: the model's own), the command's default repeats it.
                continue
            value = None
        elif isinstance(value, float | np.floating) and float(value).is_integer():
            value = int(value)  # a frame column with gaps holds its integers as floats
        parts += _option(axis.flag, axis.as_text(value))
    return parts


def profile_command(profile: Mapping[str, Any]) -> str:
    """The `embedkit profile` command that re-measures one profile record's grid point.

    `profile`: a row of `tables.load_frame` for a profile record (flattened `grid.*` fields).
    """
    parts = ["embedkit", "profile", shlex.quote(f"{profile['grid.model']}:{profile['grid.variant']}")]
    parts += _option("--provider", short_name(profile["grid.provider"]))
    options = {
        column.removeprefix(_PROVIDER_OPTION_PREFIX): value
        for column, value in profile.items()
        if column.startswith(_PROVIDER_OPTION_PREFIX) and not _missing(value)
    }
    for key, value in sorted(options.items()):
        parts += _option("--provider-option", f"{key}={value}")
    parts += _axis_options(profile)
    for flag, column in _SAMPLING_FLAGS.items():
        sampling: Any = profile.get(column)
        if not _missing(sampling):
            parts += _option(flag, int(sampling) if flag == "--samples" else f"{float(sampling):g}")
    return " ".join(parts)


def score_command(score: Mapping[str, Any], tasks: Sequence[str]) -> str:
    """The `embedkit score` command that re-scores one score record's model on `tasks`."""
    parts = ["embedkit", "score", shlex.quote(f"{score['model']}:{score['variant']}")]
    parts += _option("--provider", short_name(score["provider"]))
    parts += ["--tasks", *map(shlex.quote, tasks)]
    batch_size: Any = score.get("scoring.batch_size")
    if not _missing(batch_size) and int(batch_size) != defaults.BATCH_SIZE:
        # Batch-dependent variants (dynamic int8) score differently under another batch size.
        parts += _option("--batch-size", int(batch_size))
    if bool(score.get("forced")):
        parts.append("--force")
    return " ".join(parts)


def published_command(published: Mapping[str, Any], tasks: Sequence[str]) -> str:
    """The `embedkit published` command that reads one published record's model again on `tasks`."""
    return " ".join(["embedkit", "published", shlex.quote(str(published["model"])), "--tasks",
                     *map(shlex.quote, tasks), "--record"])  # fmt: skip
