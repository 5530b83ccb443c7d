"""Figures from records: the speed/quality Pareto plot, per-stage latency, latency CDFs, placement.

Data flows one way: package → records → tables (`records.load_frame`) → the plot-ready tables
built here → figures. Nothing here measures: every number drawn is read from a record, and every
point keeps the ids of the records behind it. Latency is compared within one machine only, so
every latency figure has one panel per machine and the Pareto frontier is computed per machine.

Figures are `matplotlib.figure.Figure` objects made without pyplot: nothing global to close, and a
notebook shows a figure exactly when it displays it.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from embedkit.results import records
from embedkit.analysis import stats
from embedkit.analysis.decision import DecisionPolicy, decision_card

Metric = Literal["latency", "throughput"]
METRICS: tuple[str, ...] = ("latency", "throughput")
FIGURE_FORMATS: tuple[str, ...] = ("png", "svg")
PNG_DPI = 150

# Fixed colours per provider, so that a provider looks the same in every figure and every report.
_PROVIDER_COLOURS = {
    "CPUExecutionProvider": "tab:blue",
    "CoreMLExecutionProvider": "tab:orange",
    "OpenVINOExecutionProvider": "tab:green",
    "CUDAExecutionProvider": "tab:red",
    "TensorrtExecutionProvider": "tab:purple",
    "DmlExecutionProvider": "tab:brown",
    "ROCMExecutionProvider": "tab:pink",
    "QNNExecutionProvider": "tab:olive",
    "NnapiExecutionProvider": "tab:cyan",
}
_OTHER_PROVIDER_COLOUR = "tab:gray"
# Fixed markers for embedkit's own variants; other variant names take the spare markers in name order.
_VARIANT_MARKERS = {"fp32": "o", "O1": "s", "O2": "D", "O3": "P", "O4": "X", "fp16": "v", "int8": "^", "int8-pc": "<"}
_SPARE_MARKERS = (">", "p", "h", "*", "d", "8", "H")
_STAGE_COLOURS = {"tokenize": "#8dd3c7", "feeds": "#ffffb3", "run": "#80b1d3", "pool": "#fb8072"}
_FRONTIER_STYLE = {"color": "black", "linestyle": "--", "linewidth": 1.2, "alpha": 0.7}


def provider_label(provider: str) -> str:
    """ORT's full provider name without the "ExecutionProvider" suffix: CPU, CoreML, OpenVINO, …"""
    return provider.removesuffix("ExecutionProvider")


def provider_colour(provider: str) -> str:
    return _PROVIDER_COLOURS.get(provider, _OTHER_PROVIDER_COLOUR)


def variant_markers(variants: Iterable[str]) -> dict[str, str]:
    """A marker per variant name: embedkit's variants keep theirs, others share the spares in name order."""
    others = sorted({variant for variant in variants if variant not in _VARIANT_MARKERS})
    spare = {variant: _SPARE_MARKERS[i % len(_SPARE_MARKERS)] for i, variant in enumerate(others)}
    return {**_VARIANT_MARKERS, **spare}


def point_name(model: str, variant: str, provider: str) -> str:
    return f"{model}:{variant} · {provider_label(provider)}"


# --- the Pareto frontier ------------------------------------------------------------------------


def pareto_frontier(frame: pd.DataFrame, x: str, y: str, minimize_x: bool = True) -> pd.Series:
    """True for the rows of `frame` that no other row dominates; a boolean Series on frame's index.

    Higher `y` is better; lower `x` is better when `minimize_x` (latency), higher otherwise
    (throughput). A row dominates another when it is at least as good on both axes and strictly
    better on one, so identical points do not dominate each other: both stay on the frontier.
    Rows with a missing x or y are never on it. A frame holding several machines is refused
    (records.CrossMachineError): their latencies compare the machines, not the configurations.
    """
    if "machine_id" in frame and frame["machine_id"].nunique() > 1:
        raise records.CrossMachineError(
            f"a Pareto frontier needs points from one machine, got {sorted(frame['machine_id'].unique())}: "
            "compute one frontier per machine"
        )
    xs = frame[x].to_numpy(dtype=float) * (1.0 if minimize_x else -1.0)
    ys = frame[y].to_numpy(dtype=float)
    valid = ~(np.isnan(xs) | np.isnan(ys))
    # Element [j, i] says whether row j dominates row i.
    no_worse = (xs[:, None] <= xs[None, :]) & (ys[:, None] >= ys[None, :])
    strictly_better = (xs[:, None] < xs[None, :]) | (ys[:, None] > ys[None, :])
    dominated = (no_worse & strictly_better & valid[:, None]).any(axis=0)
    return pd.Series(valid & ~dominated, index=frame.index, name="on_frontier")


# --- the tradeoff table -------------------------------------------------------------------------


@dataclass(frozen=True)
class Tradeoff:
    """The points of a Pareto plot and how they were chosen.

    `points` has one row per (machine_id, model, variant, provider) with a profile at the grid
    point and a score over `tasks`: x, x_low, x_high (P95 ms or texts/s with their 95 % CI),
    quality, quality_low, quality_high, on_frontier (within its machine), name, cpu, verdict,
    intra_op_threads, profile_record_id, score_record_id, quality_provider (where the score record was
    scored: a provider whose environment cannot score, e.g. OpenVINO's venv without mteb, borrows the
    same variant's score from another provider). `policy` is the decision card's policy
    with the same grid point and tasks, so that the plot and the card judge the same records.
    """

    points: pd.DataFrame
    metric: Metric
    policy: DecisionPolicy

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.policy.quality_tasks or ()

    @property
    def minimize_x(self) -> bool:
        return self.metric == "latency"

    @property
    def x_label(self) -> str:
        where = f"batch {self.policy.batch_size}, {self.policy.seq_bucket} texts"
        if self.metric == "latency":
            return f"P95 latency, {where} (ms)"
        return f"throughput, {where} (texts/s)"

    @property
    def y_label(self) -> str:
        count = len(self.tasks)
        return f"mean MTEB main score over {count} task{'' if count == 1 else 's'}"

    def frontier(self) -> dict[str, list[str]]:
        """The frontier's point names per machine, cheapest first (lowest latency, highest throughput)."""
        on = self.points[self.points["on_frontier"].astype(bool)]
        return {
            str(machine): group.sort_values("x", ascending=self.minimize_x)["name"].tolist()
            for machine, group in on.groupby("machine_id")
        }

    @property
    def borrowed_quality(self) -> pd.Series:
        """Per point: its quality was scored on another provider than the one it was timed on."""
        return self.points["quality_provider"] != self.points["provider"]

    @property
    def error_bar_note(self) -> str:
        x_source = (
            "the record's bootstrap CI of the P95"
            if self.metric == "latency"
            else "the record's bootstrap CI of the median latency, as texts/s"
        )
        note = (
            f"Error bars: 95 % CIs. x: {x_source}. y: bootstrap over tasks of the mean score with the "
            "task effect removed (Cousineau-Morey), for comparing points with each other."
        )
        if self.borrowed_quality.any():
            note += f" {BORROWED_QUALITY_NOTE}."
        return note


BORROWED_QUALITY_NOTE = "Hollow markers: quality scored on another provider (named in the decision card)"


def common_tasks(frame: pd.DataFrame) -> tuple[str, ...]:
    """Tasks scored by every score record in `frame`, sorted; () when there are no score records."""
    task_sets = [
        {column.removeprefix("scores.") for column, value in row.items() if column.startswith("scores.") and pd.notna(value)}
        for _, row in _of_kind(frame, "score").iterrows()
    ]
    return tuple(sorted(set.intersection(*task_sets))) if task_sets else ()


def build_tradeoff(
    frame: pd.DataFrame,
    *,
    metric: Metric = "latency",
    tasks: Sequence[str] | None = None,
    batch_size: int | None = None,
    policy: DecisionPolicy | None = None,
) -> Tradeoff:
    """The Pareto plot's points from a frame of profile and score records (`records.load_frame`).

    Each point is one decision-card row (`decision.decision_card`): the configuration with the
    lowest P95 at the grid point (batch size, `policy.seq_bucket`), and the score record the card
    picks for its model and variant. `tasks`: the tasks to average; default: those every score
    record has, so that all points average the same tasks. `batch_size`: default
    `policy.batch_size` (1) for latency, the largest profiled batch for throughput.
    Groups without a profile at the grid point or without a score over the tasks are left out
    (the decision card lists them).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    base = policy or DecisionPolicy()
    chosen_tasks = tuple(tasks) if tasks else common_tasks(frame)
    if not chosen_tasks and not _of_kind(frame, "score").empty:
        raise ValueError("the score records share no task: name the tasks to average")
    grid_batch = batch_size or (base.batch_size if metric == "latency" else _largest_batch(frame, base.seq_bucket))
    chosen = replace(base, batch_size=grid_batch, quality_tasks=chosen_tasks or None)
    card = decision_card(frame, chosen)
    complete = card[card["profile_record_id"].notna() & card["score_record_id"].notna()]
    if complete.empty:
        return Tradeoff(points=pd.DataFrame(columns=_POINT_COLUMNS), metric=metric, policy=chosen)
    by_id = frame.set_index("record_id")
    points = pd.DataFrame(
        [_point_row(row, by_id.loc[row["profile_record_id"]], metric, chosen) for _, row in complete.iterrows()],
        columns=_POINT_COLUMNS,
    )
    task_scores = by_id.loc[points["score_record_id"].unique(), [f"scores.{task}" for task in chosen_tasks]]
    intervals = between_point_intervals(task_scores)
    points["quality_low"] = points["score_record_id"].map(intervals["low"])
    points["quality_high"] = points["score_record_id"].map(intervals["high"])
    points["on_frontier"] = pd.concat(
        [pareto_frontier(group, "x", "quality", minimize_x=metric == "latency") for _, group in points.groupby("machine_id")]
    )
    return Tradeoff(points=points, metric=metric, policy=chosen)


_POINT_COLUMNS = [
    "machine_id", "cpu", "model", "variant", "provider", "name",
    "x", "x_low", "x_high", "quality", "quality_low", "quality_high", "quality_provider", "on_frontier",
    "verdict", "intra_op_threads", "profile_record_id", "score_record_id",
]  # fmt: skip


def _of_kind(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    return frame[frame["kind"] == kind] if "kind" in frame else frame.iloc[0:0]


def _largest_batch(frame: pd.DataFrame, seq_bucket: str) -> int:
    profiles = _profiles_at(frame, None, seq_bucket)
    return int(profiles["grid.batch_size"].max()) if not profiles.empty else 1


def _point_row(card_row: pd.Series, profile: pd.Series, metric: Metric, policy: DecisionPolicy) -> dict[str, Any]:
    stage = f"stages.{policy.stage}"
    if metric == "latency":
        x = float(profile[f"{stage}.p95"])
        x_low, x_high = map(float, profile[f"{stage}.p95_ci"])
    else:
        # Records hold no CI of the throughput; throughput scales as 1 / latency, so the median
        # latency's CI carries over (an inverse: its upper bound gives the lower rate).
        x = float(profile["throughput.texts_per_s"])
        median = float(profile[f"{stage}.p50"])
        median_low, median_high = map(float, profile[f"{stage}.p50_ci"])
        x_low, x_high = x * median / median_high, x * median / median_low
    return {
        **{key: card_row[key] for key in ("machine_id", "model", "variant", "provider", "verdict")},
        "cpu": profile["provenance.cpu.model"],
        "name": point_name(card_row["model"], card_row["variant"], card_row["provider"]),
        "x": x,
        "x_low": x_low,
        "x_high": x_high,
        "quality": float(card_row["quality"]),
        "quality_low": math.nan,
        "quality_high": math.nan,
        "quality_provider": card_row["quality_provider"],
        "on_frontier": False,
        "intra_op_threads": card_row["intra_op_threads"],
        "profile_record_id": card_row["profile_record_id"],
        "score_record_id": card_row["score_record_id"],
    }


def between_point_intervals(
    task_scores: pd.DataFrame,
    *,
    resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = stats.DEFAULT_SEED,
    confidence: float = stats.CONFIDENCE,
) -> pd.DataFrame:
    """95 % bootstrap CI of each row's mean score over tasks, for comparing rows with each other.

    `task_scores`: one row per score record, one column per task. Tasks differ far more from each
    other (SciFact vs STS) than variants of one model differ on a task, and every point averages
    the same tasks; a plain CI over tasks would show that shared spread and hide consistent
    differences. So the task effect is removed first (each task's mean over rows subtracted, the
    grand mean added back), with Morey's sqrt(M / (M - 1)) correction for M rows, and the tasks are
    then resampled with replacement. The rows' means are unchanged; with one row the CI has zero
    width (nothing to compare). Columns: low, high.
    """
    values = task_scores.to_numpy(dtype=float)
    n_rows, n_tasks = values.shape
    normalized = values - values.mean(axis=0) + values.mean()
    row_means = normalized.mean(axis=1, keepdims=True)
    correction = math.sqrt(n_rows / (n_rows - 1)) if n_rows > 1 else 0.0
    adjusted = row_means + (normalized - row_means) * correction
    picks = np.random.default_rng(seed).integers(0, n_tasks, size=(resamples, n_tasks))
    replicates = adjusted[:, picks].mean(axis=2)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [alpha, 1.0 - alpha], axis=1)
    return pd.DataFrame({"low": low, "high": high}, index=task_scores.index)


# --- per-record tables --------------------------------------------------------------------------


def _profiles_at(frame: pd.DataFrame, batch_size: int | None, seq_bucket: str | None) -> pd.DataFrame:
    """Profile rows at the grid point; None matches every batch size or sequence bucket."""
    selected = _of_kind(frame, "profile")
    if selected.empty:
        return selected
    if batch_size is not None:
        selected = selected[selected["grid.batch_size"] == batch_size]
    if seq_bucket is not None:
        selected = selected[selected["grid.seq_bucket"] == seq_bucket]
    return selected


def _config_label(row: Mapping[str, Any]) -> str:
    """A profile record's configuration in one line: model:variant · provider · batch/seq · threads."""
    threads = row.get("grid.intra_op_threads")
    thread_part = "" if threads is None or pd.isna(threads) else f" · {int(threads)} thr"
    return (
        f"{point_name(row['model'], row['variant'], row['provider'])} · "
        f"b{int(row['grid.batch_size'])}/{row['grid.seq_bucket']}{thread_part}"
    )


def stage_table(frame: pd.DataFrame, *, batch_size: int | None = 1, seq_bucket: str | None = "short") -> pd.DataFrame:
    """p50 per stage (ms) of every profile record at the grid point: one row per record.

    Columns: machine_id, record_id, label, one column per stage other than total (tokenize,
    feeds, run, pool, and any later stage), total. The stage medians need not add up to the
    total's median: the median of a sum is not the sum of the medians.
    """
    profiles = _profiles_at(frame, batch_size, seq_bucket)
    stage_names = _stage_names(profiles)
    rows = [
        {
            "machine_id": row["machine_id"],
            "record_id": row["record_id"],
            "label": _config_label(row),
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
    known = [stage for stage in records.STAGES if stage in present and stage != "total"]
    return known + sorted(present - set(records.STAGES))


def latency_samples(
    loaded: Iterable[Mapping[str, Any]],
    *,
    batch_size: int | None = 1,
    seq_bucket: str | None = "short",
    stage: str = "total",
) -> pd.DataFrame:
    """Raw latency samples (ms) of the profile records at the grid point, decoded from the records.

    `loaded`: records as from `records.load_records`. One row per sample: machine_id, record_id,
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
        samples = records.decode_samples(record["samples"][stage]).astype(float)
        parts.append(
            pd.DataFrame(
                {
                    "machine_id": record["machine_id"],
                    "record_id": record["record_id"],
                    "provider": grid["provider"],
                    "variant": grid["variant"],
                    "label": _config_label(row),
                    "latency_ms": samples,
                }
            )
        )
    columns = ["machine_id", "record_id", "provider", "variant", "label", "latency_ms"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def placement_table(frame: pd.DataFrame, *, batch_size: int | None = 1, seq_bucket: str | None = "short") -> pd.DataFrame:
    """Where each profile record's graph ran: one row per (record, executing provider).

    Columns: machine_id, record_id, label, requested (the provider asked for), provider (the one
    that ran the nodes), node_share, time_share, partitions.
    """
    profiles = _profiles_at(frame, batch_size, seq_bucket)
    prefix = "placement.providers."
    executing = sorted(
        {column[len(prefix) :].rsplit(".", 1)[0] for column in profiles.columns if column.startswith(prefix)}
    )
    rows = [
        {
            "machine_id": row["machine_id"],
            "record_id": row["record_id"],
            "label": _config_label(row),
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


# --- figures ------------------------------------------------------------------------------------


def _machine_columns(machines: Sequence[str], panel_size: tuple[float, float], sharey: bool) -> tuple[Figure, list[Axes]]:
    """One panel per machine, side by side."""
    width, height = panel_size
    figure = Figure(figsize=(width * len(machines), height), layout="constrained")
    axes = figure.subplots(1, len(machines), sharey=sharey, squeeze=False)[0]
    return figure, list(axes)


def _require_rows(table: pd.DataFrame, what: str) -> list[str]:
    """The machines in `table`, sorted; ValueError when there is nothing to draw."""
    if table.empty:
        raise ValueError(f"nothing to plot: no {what}")
    return sorted(table["machine_id"].unique())


def _machine_title(machine: str, cpu: str | None = None) -> str:
    return f"machine {machine}" + (f"\n{cpu}" if cpu else "")


def plot_pareto(tradeoff: Tradeoff) -> Figure:
    """Quality against latency (or throughput), one panel per machine.

    Colour = provider, marker = variant, one marker per point with its x and y 95 % CIs as error
    bars; the frontier of each machine is drawn as a staircase (the best quality reachable within
    a latency budget) and its points are labelled in bold; the decision card's latency tiers are
    drawn as dotted lines where they fall inside the axis. Each marker's gid is the point's
    profile record id, so the figure (and its SVG) says which record every marker comes from.
    """
    points = tradeoff.points
    machines = _require_rows(points, "points with both a profile at the grid point and a score")
    markers = variant_markers(points["variant"])
    figure, axes = _machine_columns(machines, (6.4, 4.8), sharey=True)
    for ax, machine in zip(axes, machines):
        here = points[points["machine_id"] == machine]
        for point, borrowed in zip(here.itertuples(), tradeoff.borrowed_quality[here.index]):
            _draw_point(ax, point, markers[point.variant], hollow=borrowed)
        _draw_frontier(ax, here[here["on_frontier"]], tradeoff.minimize_x)
        ax.margins(x=0.12, y=0.12)
        if tradeoff.metric == "latency":
            _draw_latency_tiers(ax, tradeoff.policy)
        _label_points(ax, here, tradeoff.minimize_x)
        ax.set_title(_machine_title(machine, here["cpu"].iloc[0]), fontsize=9)
        ax.set_xlabel(tradeoff.x_label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(tradeoff.y_label)
    legend = figure.legend(handles=_pareto_legend(points, markers), loc="outside right upper", fontsize=8)
    for text in legend.get_texts():
        if text.get_text() in _LEGEND_HEADINGS:
            text.set_fontweight("bold")
    characters_per_line = int(figure.get_figwidth() * 72 / (7 * 0.55))
    figure.supxlabel(textwrap.fill(tradeoff.error_bar_note, characters_per_line), fontsize=7, color="0.35")
    return figure


def _draw_point(ax: Axes, point: Any, marker: str, hollow: bool) -> None:
    colour = provider_colour(point.provider)
    xerr = [[max(point.x - point.x_low, 0.0)], [max(point.x_high - point.x, 0.0)]]
    yerr = [[max(point.quality - point.quality_low, 0.0)], [max(point.quality_high - point.quality, 0.0)]]
    container = ax.errorbar(
        [point.x], [point.quality], xerr=xerr, yerr=yerr, fmt=marker, color=colour, markersize=8,
        markeredgecolor="black" if point.on_frontier else colour, markerfacecolor="white" if hollow else colour,
        capsize=3, elinewidth=1, zorder=3,
    )  # fmt: skip
    container.lines[0].set_gid(point.profile_record_id)


_LABEL_FONT_SIZE = 7.5
_LABEL_GAP = 6.0  # points between a marker's centre and its label
_MARKER_HALF = 5.0  # half a marker's size, in points
Box = tuple[float, float, float, float]  # left, right, bottom, top in points


def _overlaps(box: Box, others: Sequence[Box]) -> bool:
    left, right, bottom, top = box
    return any(left < x1 and x0 < right and bottom < y1 and y0 < top for x0, x1, y0, y1 in others)


def _drawn_boxes(
    points: pd.DataFrame, at: Callable[[float, float], tuple[float, float]], minimize_x: bool
) -> list[Box]:
    """What labels must not cover, in points: markers, error bars, and the frontier's staircase."""
    boxes: list[Box] = []
    for row in points.itertuples():
        x, y = at(row.x, row.quality)
        (x_low, y_low), (x_high, y_high) = at(row.x_low, row.quality_low), at(row.x_high, row.quality_high)
        boxes += [
            (x - _MARKER_HALF, x + _MARKER_HALF, y - _MARKER_HALF, y + _MARKER_HALF),
            (min(x_low, x_high), max(x_low, x_high), y - 1.0, y + 1.0),
            (x - 1.0, x + 1.0, y_low, y_high),
        ]
    frontier = [at(x, y) for x, y in points[points["on_frontier"]].sort_values("x")[["x", "quality"]].to_numpy()]
    for (x0, y0), (x1, y1) in zip(frontier, frontier[1:]):
        # The step's corner: (x1, y0) for "post" (latency), (x0, y1) for "pre" (throughput).
        corner_x, level = (x1, y0) if minimize_x else (x0, y1)
        boxes += [(x0, x1, level - 1.0, level + 1.0), (corner_x - 1.0, corner_x + 1.0, min(y0, y1), max(y0, y1))]
    return boxes


def _label_points(ax: Axes, points: pd.DataFrame, minimize_x: bool) -> None:
    """Name every point: bold for frontier points, grey for the others.

    Each label takes the first free place among: right of its point, left of it, then one line
    lower or higher on either side, and so on; "free" means clear of the markers, error bars and
    frontier and of the labels already placed, and inside the axes horizontally. A label moved off its point's line
    gets a leader line. Text widths are estimated from the character count (DejaVu Sans).
    """
    ax.autoscale_view()
    to_points = 72.0 / ax.figure.dpi
    axes_left, axes_right = ax.bbox.x0 * to_points, ax.bbox.x1 * to_points
    line_height = _LABEL_FONT_SIZE * 1.35
    def at(x: float, y: float) -> tuple[float, float]:
        return tuple(ax.transData.transform((x, y)) * to_points)

    centres = {index: at(row.x, row.quality) for index, row in points.iterrows()}
    obstacles = _drawn_boxes(points, at, minimize_x)
    shifts = [0.0] + [sign * step * line_height for step in range(1, 6) for sign in (-1, 1)]
    for index, point in points.sort_values(["quality", "x"], ascending=[False, True]).iterrows():
        px, py = centres[index]
        width = len(point["name"]) * _LABEL_FONT_SIZE * (0.64 if point["on_frontier"] else 0.58)
        candidates = [
            (left, py + 1.0 + shift)  # just above the point's line, where the frontier's step runs
            for shift in shifts
            for left in (px + _LABEL_GAP, px - _LABEL_GAP - width)
            if axes_left <= left and left + width <= axes_right
        ]
        boxes = [(left, left + width, bottom, bottom + line_height) for left, bottom in candidates]
        box = next((box for box in boxes if not _overlaps(box, obstacles)), boxes[0] if boxes else None)
        if box is None:  # wider than the axes: start at the point and let it run over the edge
            box = (px + _LABEL_GAP, px + _LABEL_GAP + width, py + 1.0, py + 1.0 + line_height)
        obstacles.append(box)
        moved = box[2] != py + 1.0
        ax.annotate(
            point["name"],
            (point["x"], point["quality"]),
            xytext=(box[0] - px, box[2] + line_height * 0.2 - py),
            textcoords="offset points",
            fontsize=_LABEL_FONT_SIZE,
            fontweight="bold" if point["on_frontier"] else "normal",
            color="black" if point["on_frontier"] else "0.4",
            arrowprops={"arrowstyle": "-", "color": "0.6", "linewidth": 0.5, "shrinkA": 0} if moved else None,
        )


def _draw_frontier(ax: Axes, frontier: pd.DataFrame, minimize_x: bool) -> None:
    ordered = frontier.sort_values("x")
    # Between two frontier points the best reachable quality is that of the cheaper one: a staircase.
    ax.step(ordered["x"], ordered["quality"], where="post" if minimize_x else "pre", zorder=2, **_FRONTIER_STYLE)


def _draw_latency_tiers(ax: Axes, policy: DecisionPolicy) -> None:
    """The decision card's latency bounds, where they fall inside the current x range."""
    low, high = ax.get_xlim()
    for bound, tier in ((policy.excellent_ms, "excellent"), (policy.target_ms, "target"), (policy.acceptable_ms, "acceptable")):
        if low < bound < high:
            ax.axvline(bound, color="0.5", linestyle=":", linewidth=1, zorder=1)
            ax.annotate(f"{bound:g} ms: {tier}", (bound, 0.0), xycoords=("data", "axes fraction"), xytext=(-3, 4),
                        textcoords="offset points", rotation=90, ha="right", va="bottom", fontsize=7, color="0.4")  # fmt: skip


_LEGEND_HEADINGS = ("colour = provider", "marker = variant")


def _pareto_legend(points: pd.DataFrame, markers: Mapping[str, str]) -> list[Line2D]:
    """One legend in two sections (providers by colour, variants by marker), then the frontier."""

    def heading(text: str) -> Line2D:
        return Line2D([], [], linestyle="", label=text)

    providers = [
        Line2D([], [], linestyle="", marker="o", color=provider_colour(p), label=provider_label(p))
        for p in sorted(points["provider"].unique())
    ]
    variants = [
        Line2D([], [], linestyle="", marker=markers[v], color="0.3", label=v) for v in sorted(points["variant"].unique())
    ]
    frontier = Line2D([], [], label="Pareto frontier\n(per machine)", **_FRONTIER_STYLE)
    return [heading(_LEGEND_HEADINGS[0]), *providers, heading(_LEGEND_HEADINGS[1]), *variants, frontier]


def plot_stages(table: pd.DataFrame) -> Figure:
    """Stacked bars of each profile record's p50 per stage, one panel per machine; a black tick
    marks the total's p50."""
    machines = _require_rows(table, "profile records at the grid point")
    stage_names = [column for column in table.columns if column not in ("machine_id", "record_id", "label", "total")]
    bars = max(table.groupby("machine_id").size())
    figure = Figure(figsize=(9.0, 1.0 + 0.4 * bars * len(machines) + 0.6 * len(machines)), layout="constrained")
    axes = figure.subplots(len(machines), 1, squeeze=False)[:, 0]
    for ax, machine in zip(axes, machines):
        here = table[table["machine_id"] == machine].sort_values("total")
        left = np.zeros(len(here))
        for stage in stage_names:
            widths = here[stage].to_numpy(dtype=float)
            ax.barh(here["label"], widths, left=left, color=_STAGE_COLOURS.get(stage, "0.7"), edgecolor="0.3",
                    linewidth=0.5, label=stage)  # fmt: skip
            left += widths
        ax.plot(here["total"], here["label"], linestyle="", marker="|", color="black", markersize=14, label="total p50")
        ax.set_title(_machine_title(machine), fontsize=9)
        ax.set_xlabel("p50 latency per stage (ms)")
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right upper", fontsize=8)
    return figure


def plot_latency_cdf(samples: pd.DataFrame) -> Figure:
    """Empirical CDF of each profile record's latency samples, colour = provider, one panel per machine."""
    machines = _require_rows(samples, "latency samples")
    figure, axes = _machine_columns(machines, (7.0, 4.5), sharey=True)
    styles = ("-", "--", "-.", ":")
    for ax, machine in zip(axes, machines):
        here = samples[samples["machine_id"] == machine]
        for index, (record_id, run) in enumerate(here.groupby("record_id", sort=False)):
            values = np.sort(run["latency_ms"].to_numpy(dtype=float))
            fractions = np.arange(1, values.size + 1) / values.size
            ax.step(values, fractions, where="post", color=provider_colour(run["provider"].iloc[0]),
                    linestyle=styles[index % len(styles)], linewidth=1.3, label=run["label"].iloc[0], gid=record_id)  # fmt: skip
        ax.axhline(0.95, color="0.5", linestyle=":", linewidth=1)
        ax.annotate("P95", (0.0, 0.95), xycoords=("axes fraction", "data"), xytext=(3, 3), textcoords="offset points",
                    fontsize=7, color="0.4")  # fmt: skip
        ax.set_title(_machine_title(machine), fontsize=9)
        ax.set_xlabel("latency (ms)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("fraction of calls at or below")
    return figure


def plot_placement(table: pd.DataFrame) -> Figure:
    """Share of nodes and of kernel time per executing provider, per profile record and machine."""
    machines = _require_rows(table, "placement of profile records at the grid point")
    bars = max(table.groupby("machine_id")["record_id"].nunique())
    figure = Figure(figsize=(10.0, 1.2 + 0.4 * bars * len(machines) + 0.6 * len(machines)), layout="constrained")
    axes = figure.subplots(len(machines), 2, squeeze=False, sharey="row")
    providers = sorted(table["provider"].unique())
    for row_axes, machine in zip(axes, machines):
        here = table[table["machine_id"] == machine]
        shares = {column: here.pivot_table(index="label", columns="provider", values=column, aggfunc="first")
                  .reindex(columns=providers).fillna(0.0) for column in ("node_share", "time_share")}  # fmt: skip
        for ax, (column, pivot) in zip(row_axes, shares.items()):
            left = np.zeros(len(pivot))
            for provider in providers:
                ax.barh(pivot.index, pivot[provider], left=left, color=provider_colour(provider), edgecolor="0.3",
                        linewidth=0.5)  # fmt: skip
                left += pivot[provider].to_numpy()
            ax.set_xlim(0, 1)
            ax.set_xlabel("share of nodes" if column == "node_share" else "share of kernel time")
            ax.set_title(_machine_title(machine), fontsize=9)
            ax.tick_params(axis="y", labelsize=8)
    handles = [Patch(color=provider_colour(p), label=f"ran on {provider_label(p)}") for p in providers]
    figure.legend(handles=handles, loc="outside right upper", fontsize=8)
    return figure


def plot_similarity(matrix: np.ndarray, labels: Sequence[str], *, max_label: int = 32) -> Figure:
    """Heat map of a cosine-similarity matrix with each cell's value written in it."""
    size = len(labels)
    figure = Figure(figsize=(2.5 + 0.9 * size, 1.5 + 0.8 * size), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="viridis", vmin=min(0.0, float(np.min(matrix))), vmax=1.0)
    short = [label if len(label) <= max_label else label[: max_label - 1] + "…" for label in labels]
    ax.set_xticks(range(size), short, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(size), short, fontsize=8)
    for row in range(size):
        for column in range(size):
            value = float(matrix[row, column])
            text = f"{value:.2f}".replace("-0.00", "0.00")  # a rounding artefact, not a sign
            ax.text(column, row, text, ha="center", va="center", fontsize=8,
                    color="black" if value > 0.6 else "white")  # fmt: skip
    figure.colorbar(image, ax=ax, label="cosine similarity")
    return figure


def save_figure(figure: Figure, directory: Path | str, name: str) -> dict[str, str]:
    """Write `figure` as <directory>/<name>.png and .svg; returns {"png": path, "svg": path}.

    The SVG carries no date and stable element ids, so the same records give the same file.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    paths = {}
    with matplotlib.rc_context({"svg.hashsalt": name}):
        for extension in FIGURE_FORMATS:
            path = target / f"{name}.{extension}"
            metadata = {"Date": None} if extension == "svg" else None
            figure.savefig(path, dpi=PNG_DPI, metadata=metadata, bbox_inches="tight")
            paths[extension] = str(path)
    return paths
