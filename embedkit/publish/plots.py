"""Figures from records: the speed/quality Pareto plot, per-stage latency, latency CDFs, placement.

This module only draws. Data flows one way: package → records → a records frame
(`embedkit.results.tables.load_frame`) → the plot-ready tables of embedkit.analysis (tradeoff, profiles) → figures.
Nothing here measures or computes a number: every number drawn is read from those tables, and every
marker keeps the id of the record behind it. Latency is compared within one machine only, so every
latency figure has one panel per machine.

Figures are `matplotlib.figure.Figure` objects made without pyplot: nothing global to close, and a
notebook shows a figure exactly when it displays it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from embedkit.analysis.decision import DecisionPolicy, published_note
from embedkit.analysis.tradeoff import Tradeoff
from embedkit.errors import UsageError
from embedkit.pipeline.providers import short_name
from embedkit.publish.labels import label_points, title_panel

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
_FRONTIER_STYLE: dict[str, Any] = {"color": "black", "linestyle": "--", "linewidth": 1.2, "alpha": 0.7}
_TIER_STYLE: dict[str, Any] = {"color": "0.5", "linestyle": ":", "linewidth": 1, "zorder": 1}
# Above this ratio of a panel's largest to smallest x the axis is logarithmic: the plan's ladder spans
# ~1.5 ms (MiniLM int8) to ~120 ms (Qwen3-0.6B), and on a linear axis every small model shares one spot.
LOG_X_SPAN = 10.0


def provider_colour(provider: str) -> str:
    return _PROVIDER_COLOURS.get(provider, _OTHER_PROVIDER_COLOUR)


def variant_markers(variants: Iterable[str]) -> dict[str, str]:
    """A marker per variant name: embedkit's variants keep theirs, others share the spares in name order."""
    others = sorted({variant for variant in variants if variant not in _VARIANT_MARKERS})
    spare = {variant: _SPARE_MARKERS[i % len(_SPARE_MARKERS)] for i, variant in enumerate(others)}
    return {**_VARIANT_MARKERS, **spare}


# --- the Pareto plot's text ---------------------------------------------------------------------

BORROWED_QUALITY_NOTE = "Hollow markers: quality scored on another provider (named in the decision card)"
# A twin's fp32 point: open marker (no fill, thick edge), never drawn like a measured one.
PUBLISHED_QUALITY_NOTE = "Open markers with a thick edge"
_PUBLISHED_EDGE_WIDTH = 2.2


def x_label(tradeoff: Tradeoff) -> str:
    where = f"batch {tradeoff.policy.batch_size}, {tradeoff.policy.seq_bucket} texts"
    if tradeoff.metric == "latency":
        return f"P95 latency, {where} (ms)"
    return f"throughput, {where} (texts/s)"


def y_label(tradeoff: Tradeoff) -> str:
    count = len(tradeoff.tasks)
    return f"mean MTEB main score over {count} task{'' if count == 1 else 's'}"


def error_bar_note(tradeoff: Tradeoff) -> str:
    """What the Pareto plot's error bars (and hollow markers, when there are any) show."""
    x_source = (
        "the record's bootstrap CI of the P95"
        if tradeoff.metric == "latency"
        else "the record's bootstrap CI of the median latency, as texts/s"
    )
    note = (
        f"Error bars: 95 % CIs. x: {x_source}. y: bootstrap over tasks of the mean score with the "
        "task effect removed (Cousineau-Morey), for comparing points with each other."
    )
    if tradeoff.borrowed_quality.any():
        note += f" {BORROWED_QUALITY_NOTE}."
    if tradeoff.published_quality.any():
        note += f" {PUBLISHED_QUALITY_NOTE}: {published_note(_published_revisions(tradeoff))}."
    return note


def _published_revisions(tradeoff: Tradeoff) -> str:
    points = tradeoff.points[tradeoff.published_quality]
    return ", ".join(sorted({str(revision) for revision in points["quality_revision"].dropna()}))


# --- figures ------------------------------------------------------------------------------------


def _machine_columns(
    machines: Sequence[str], panel_size: tuple[float, float], sharey: bool
) -> tuple[Figure, list[Axes]]:
    """One panel per machine, side by side."""
    width, height = panel_size
    figure = Figure(figsize=(width * len(machines), height), layout="constrained")
    axes = figure.subplots(1, len(machines), sharey=sharey, squeeze=False)[0]
    return figure, list(axes)


def _require_rows(table: pd.DataFrame, what: str) -> list[str]:
    """The machines in `table`, sorted; UsageError when there is nothing to draw."""
    if table.empty:
        raise UsageError(f"nothing to plot: no {what}")
    return sorted(table["machine_id"].unique())


def plot_pareto(tradeoff: Tradeoff, machine_titles: Mapping[str, str] | None = None) -> Figure:
    """Quality against latency (or throughput), one panel per machine.

    Colour = provider, marker = variant, one marker per point with its x and y 95 % CIs as error
    bars; the frontier of each machine is drawn as a staircase (the best quality reachable within
    a latency budget) and its points are labelled in bold; the decision card's latency tiers are
    drawn as dotted lines where they fall inside the axis (named in the legend). Each marker's gid is the point's
    profile record id, so the figure (and its SVG) says which record every marker comes from.
    """
    points = tradeoff.points
    machines = _require_rows(points, "points with both a profile at the grid point and a score")
    markers = variant_markers(points["variant"])
    figure, axes = _machine_columns(machines, (6.4, 4.8), sharey=True)
    for ax, machine in zip(axes, machines, strict=True):
        here = points[points["machine_id"] == machine]
        for point, borrowed, published in zip(here.itertuples(), tradeoff.borrowed_quality[here.index],
                                              tradeoff.published_quality[here.index], strict=True):  # fmt: skip
            _draw_point(ax, point, markers[str(point.variant)], hollow=borrowed, published=published)
        _draw_frontier(ax, here[here["on_frontier"]], tradeoff.minimize_x)
        _scale_x(ax, here)
        ax.margins(x=0.12, y=0.12)
        if tradeoff.metric == "latency":
            _draw_latency_tiers(ax, tradeoff.policy)
        label_points(ax, here, tradeoff.minimize_x)
        title_panel(ax, machine, machine_titles or {machine: str(here["cpu"].iloc[0])})
        ax.set_xlabel(x_label(tradeoff))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(y_label(tradeoff))
    handles = _pareto_legend(points, markers)
    if tradeoff.metric == "latency":
        handles.append(_tiers_legend(tradeoff.policy))
    if tradeoff.published_quality.any():
        handles.append(Line2D([], [], linestyle="", marker="o", color="0.3", markerfacecolor="none",
                              markeredgewidth=_PUBLISHED_EDGE_WIDTH,
                              label=textwrap.fill(published_note(_published_revisions(tradeoff)), 28)))  # fmt: skip
    legend = figure.legend(handles=handles, loc="outside right upper", fontsize=8)
    for text in legend.get_texts():
        if text.get_text() in _LEGEND_HEADINGS:
            text.set_fontweight("bold")
    characters_per_line = int(figure.get_figwidth() * 72 / (7 * 0.55))
    figure.supxlabel(textwrap.fill(error_bar_note(tradeoff), characters_per_line), fontsize=7, color="0.35")
    return figure


def mark_tuned(figure: Figure, tradeoff: Tradeoff, choices: pd.DataFrame) -> int:
    """Ring each point `embedkit tune` chose (`analysis.tradeoff.tune_choices`) on `plot_pareto`'s figure and
    write its re-run command under it; returns how many points were marked. A choice with no point at the
    plot's grid point is not drawn: the tune record has its own P95 and tasks."""
    machines = sorted(tradeoff.points["machine_id"].unique())
    marked = 0
    for ax, machine in zip(figure.axes, machines, strict=False):
        here = tradeoff.points[tradeoff.points["machine_id"] == machine]
        for choice in choices[choices["machine_id"] == machine].itertuples():
            match = here[(here["model"] == choice.model) & (here["variant"] == choice.variant)
                         & (here["provider"] == choice.provider)]  # fmt: skip
            if match.empty:
                continue
            point = match.iloc[0]
            ax.plot([point["x"]], [point["quality"]], marker="o", markersize=18, markerfacecolor="none",
                    markeredgecolor="crimson", markeredgewidth=1.5, zorder=4, gid=f"tuned-{choice.record_id}")  # fmt: skip
            ax.annotate(f"tuned: {choice.command}", (point["x"], point["quality"]), xytext=(0, -22),
                        textcoords="offset points", ha="center", fontsize=6, color="crimson")  # fmt: skip
            marked += 1
    return marked


def _draw_point(ax: Axes, point: Any, marker: str, hollow: bool, published: bool = False) -> None:
    colour = provider_colour(point.provider)
    face = "none" if published else "white" if hollow else colour
    xerr = [[max(point.x - point.x_low, 0.0)], [max(point.x_high - point.x, 0.0)]]
    yerr = [[max(point.quality - point.quality_low, 0.0)], [max(point.quality_high - point.quality, 0.0)]]
    container = ax.errorbar(
        [point.x], [point.quality], xerr=xerr, yerr=yerr, fmt=marker, color=colour, markersize=8,
        markeredgecolor="black" if point.on_frontier else colour, markerfacecolor=face,
        markeredgewidth=_PUBLISHED_EDGE_WIDTH if published else 1.0, capsize=3, elinewidth=1, zorder=3,
    )  # fmt: skip
    container.lines[0].set_gid(point.profile_record_id)


def _draw_frontier(ax: Axes, frontier: pd.DataFrame, minimize_x: bool) -> None:
    ordered = frontier.sort_values("x")
    # Between two frontier points the best reachable quality is that of the cheaper one: a staircase.
    ax.step(ordered["x"], ordered["quality"], where="post" if minimize_x else "pre", zorder=2, **_FRONTIER_STYLE)


def _scale_x(ax: Axes, points: pd.DataFrame) -> None:
    """A logarithmic x axis, with plain numbers at its ticks, when the panel's points span more than
    `LOG_X_SPAN`."""
    from matplotlib.ticker import FuncFormatter

    lowest = float(points["x_low"].where(points["x_low"] > 0, points["x"]).min())
    if lowest > 0 and float(points["x_high"].max()) / lowest > LOG_X_SPAN:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(_two_and_five))


def _two_and_five(value: float, _: int) -> str:
    """Minor tick labels of a log axis at 2 and 5 times a power of ten, the others unlabelled."""
    mantissa = round(value / 10 ** np.floor(np.log10(value)), 6)
    return f"{value:g}" if mantissa in (2.0, 5.0) else ""


def _draw_latency_tiers(ax: Axes, policy: DecisionPolicy) -> None:
    """The decision card's latency bounds as dotted lines, where they fall inside the current x range.

    They are named in the legend, not beside the lines: text there would sit among the points."""
    low, high = ax.get_xlim()
    for bound, tier in _latency_tiers(policy):
        if low < bound < high:
            ax.axvline(bound, gid=f"tier-{tier}", **_TIER_STYLE)


def _latency_tiers(policy: DecisionPolicy) -> tuple[tuple[float, str], ...]:
    return ((policy.excellent_ms, "excellent"), (policy.target_ms, "target"), (policy.acceptable_ms, "acceptable"))


def _tiers_legend(policy: DecisionPolicy) -> Line2D:
    tiers = _latency_tiers(policy)
    bounds = " / ".join(f"{bound:g}" for bound, _ in tiers)
    names = " / ".join(tier for _, tier in tiers)
    return Line2D([], [], label=f"P95 tiers {bounds} ms\n({names})", **_TIER_STYLE)


_LEGEND_HEADINGS = ("colour = provider", "marker = variant")


def _pareto_legend(points: pd.DataFrame, markers: Mapping[str, str]) -> list[Line2D]:
    """One legend in two sections (providers by colour, variants by marker), then the frontier."""

    def heading(text: str) -> Line2D:
        return Line2D([], [], linestyle="", label=text)

    providers = [
        Line2D([], [], linestyle="", marker="o", color=provider_colour(p), label=short_name(p))
        for p in sorted(points["provider"].unique())
    ]
    variants = [
        Line2D([], [], linestyle="", marker=markers[v], color="0.3", label=v)
        for v in sorted(points["variant"].unique())
    ]
    frontier = Line2D([], [], label="Pareto frontier\n(per machine)", **_FRONTIER_STYLE)
    return [heading(_LEGEND_HEADINGS[0]), *providers, heading(_LEGEND_HEADINGS[1]), *variants, frontier]


def plot_stages(table: pd.DataFrame, machine_titles: Mapping[str, str] | None = None) -> Figure:
    """Stacked bars of each profile record's p50 per stage, one panel per machine; a black tick
    marks the total's p50."""
    machines = _require_rows(table, "profile records at the grid point")
    stage_names = [column for column in table.columns if column not in ("machine_id", "record_id", "label", "total")]
    bars = max(table.groupby("machine_id").size())
    figure = Figure(figsize=(9.0, 1.0 + 0.4 * bars * len(machines) + 0.6 * len(machines)), layout="constrained")
    axes = figure.subplots(len(machines), 1, squeeze=False)[:, 0]
    for ax, machine in zip(axes, machines, strict=True):
        here = table[table["machine_id"] == machine].sort_values("total")
        left = np.zeros(len(here))
        for stage in stage_names:
            widths = here[stage].to_numpy(dtype=float)
            ax.barh(here["label"], widths, left=left, color=_STAGE_COLOURS.get(stage, "0.7"), edgecolor="0.3",
                    linewidth=0.5, label=stage)  # fmt: skip
            left += widths
        ax.plot(here["total"], here["label"], linestyle="", marker="|", color="black", markersize=14, label="total p50")
        title_panel(ax, machine, machine_titles)
        ax.set_xlabel("p50 latency per stage (ms)")
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right upper", fontsize=8)
    return figure


def plot_latency_cdf(samples: pd.DataFrame, machine_titles: Mapping[str, str] | None = None) -> Figure:
    """Empirical CDF of each profile record's latency samples, colour = provider, one panel per machine."""
    machines = _require_rows(samples, "latency samples")
    figure, axes = _machine_columns(machines, (7.0, 4.5), sharey=True)
    styles = ("-", "--", "-.", ":")
    for ax, machine in zip(axes, machines, strict=True):
        here = samples[samples["machine_id"] == machine]
        for index, (record_id, run) in enumerate(here.groupby("record_id", sort=False)):
            values = np.sort(run["latency_ms"].to_numpy(dtype=float))
            fractions = np.arange(1, values.size + 1) / values.size
            ax.step(values, fractions, where="post", color=provider_colour(run["provider"].iloc[0]),
                    linestyle=styles[index % len(styles)], linewidth=1.3, label=run["label"].iloc[0], gid=record_id)  # fmt: skip
        ax.axhline(0.95, color="0.5", linestyle=":", linewidth=1)
        ax.annotate("P95", (0.0, 0.95), xycoords=("axes fraction", "data"), xytext=(3, 3), textcoords="offset points",
                    fontsize=7, color="0.4")  # fmt: skip
        title_panel(ax, machine, machine_titles)
        ax.set_xlabel("latency (ms)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("fraction of calls at or below")
    return figure


def plot_placement(table: pd.DataFrame, machine_titles: Mapping[str, str] | None = None) -> Figure:
    """Share of nodes and of kernel time per executing provider, per profile record and machine."""
    machines = _require_rows(table, "placement of profile records at the grid point")
    bars = max(table.groupby("machine_id")["record_id"].nunique())
    figure = Figure(figsize=(10.0, 1.2 + 0.4 * bars * len(machines) + 0.6 * len(machines)), layout="constrained")
    axes = figure.subplots(len(machines), 2, squeeze=False, sharey="row")
    providers = sorted(table["provider"].unique())
    for row_axes, machine in zip(axes, machines, strict=True):
        here = table[table["machine_id"] == machine]
        shares = {column: here.pivot_table(index="label", columns="provider", values=column, aggfunc="first")
                  .reindex(columns=providers).fillna(0.0) for column in ("node_share", "time_share")}  # fmt: skip
        for ax, (column, pivot) in zip(row_axes, shares.items(), strict=True):
            left = np.zeros(len(pivot))
            for provider in providers:
                ax.barh(pivot.index, pivot[provider], left=left, color=provider_colour(provider), edgecolor="0.3",
                        linewidth=0.5)  # fmt: skip
                left += pivot[provider].to_numpy()
            ax.set_xlim(0, 1)
            ax.set_xlabel("share of nodes" if column == "node_share" else "share of kernel time")
            title_panel(ax, machine, machine_titles)
            ax.tick_params(axis="y", labelsize=8)
    handles = [Patch(color=provider_colour(p), label=f"ran on {short_name(p)}") for p in providers]
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
