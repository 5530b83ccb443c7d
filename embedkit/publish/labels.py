"""Text on the figures: the machine panels' titles, and where the Pareto plot's point labels go (each
beside its point, clear of markers, error bars, the frontier's staircase and the labels already
placed, with a leader line when it had to move)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.transforms import ScaledTranslation

from embedkit.results.provenance import ONNXRUNTIME_BUILDS

_LABEL_FONT_SIZE = 7.5
_TITLE_FONT_SIZE = 9
_LINE_SPACING = 1.2  # matplotlib's default line height, in font sizes
# How far adjustText keeps labels from each other and from the markers (1 = touching), and the
# shortest move that gets a leader line (points): a label nearer than that sits beside its marker.
_LABEL_EXPAND = (1.25, 2.0)
_LABEL_FORCE = (0.3, 0.6)  # how hard labels push off each other and off what they must keep clear of
_LEADER_MIN_POINTS = 8.0
# A fixed number of iterations, not adjustText's default one-second budget: the same records give the
# same figure, whatever the machine's speed.
_LABEL_ITERATIONS = 500
_LEADER_STYLE = {"arrowstyle": "-", "color": "0.55", "linewidth": 0.6, "shrinkA": 1, "shrinkB": 4}


def machine_titles(frame: pd.DataFrame) -> dict[str, str]:
    """A title per machine of a records frame: CPU model and physical cores, then on a second line the
    onnxruntime builds that measured there (e.g. "AMD EPYC · 2 cores\nonnxruntime 1.32.0")."""
    titles = {}
    for machine, group in frame.groupby("machine_id"):
        newest = group.sort_values("created_at").iloc[-1]
        cores = newest.get("provenance.cpu.physical_cores")
        builds = sorted(
            {f"{build} {version}" for build in ONNXRUNTIME_BUILDS
             for version in group.get(f"provenance.packages.{build}", pd.Series(dtype=object)).dropna().unique()}
        )  # fmt: skip
        parts = [str(newest.get("provenance.cpu.model") or "unknown CPU")]
        if cores is not None and not pd.isna(cores):
            parts.append(f"{int(cores)} cores")
        titles[str(machine)] = " · ".join(parts) + ("\n" + ", ".join(builds) if builds else "")
    return titles


def title_panel(ax: Axes, machine: str, titles: Mapping[str, str] | None) -> None:
    """The panel's title for people, and the machine id in small print at its right."""
    title = (titles or {}).get(machine, f"machine {machine}")
    ax.set_title(title, fontsize=_TITLE_FONT_SIZE, loc="left")
    small_print = ax.set_title(machine, fontsize=6, color="0.45", loc="right")
    # Matplotlib puts all three titles on one baseline: lift the id above the left title's lines (one
    # of which may be as wide as the panel), so that the two never overlap.
    lift_points = (title.count("\n") + 1) * _TITLE_FONT_SIZE * _LINE_SPACING
    small_print.set_transform(
        small_print.get_transform() + ScaledTranslation(0, lift_points / 72, ax.figure.dpi_scale_trans)
    )


def _avoided(points: pd.DataFrame, minimize_x: bool) -> tuple[list[float], list[float]]:
    """What labels keep clear of, in data coordinates: every marker, its error bars (ends and halfway),
    and the frontier staircase (corners and the middle of each step)."""
    xs: list[float] = []
    ys: list[float] = []
    for row in points[["x", "quality", "x_low", "x_high", "quality_low", "quality_high"]].to_numpy(dtype=float):
        x, y, x_low, x_high, y_low, y_high = row
        for ax_, ay in ((x, y), (x_low, y), (x_high, y), ((x + x_low) / 2, y), ((x + x_high) / 2, y),
                        (x, y_low), (x, y_high), (x, (y + y_low) / 2), (x, (y + y_high) / 2)):  # fmt: skip
            if np.isfinite(ax_) and np.isfinite(ay):
                xs.append(float(ax_))
                ys.append(float(ay))
    frontier = points[points["on_frontier"].astype(bool)].sort_values("x")[["x", "quality"]].to_numpy(dtype=float)
    for (x0, y0), (x1, y1) in itertools.pairwise(frontier):
        corner = (x1, y0) if minimize_x else (x0, y1)
        for px, py in (corner, ((x0 + x1) / 2, corner[1]), (corner[0], (y0 + y1) / 2)):
            xs.append(float(px))
            ys.append(float(py))
    return xs, ys


def label_points(ax: Axes, points: pd.DataFrame, minimize_x: bool) -> None:
    """Name every point (bold on the frontier, grey off it), placed by adjustText clear of the other
    labels, the markers and the frontier's corners; a label it had to move gets a leader line to its own
    marker. Each label and its leader carry the point's profile record id as their gid."""
    from adjustText import adjust_text

    ax.autoscale_view()
    # One provider in the panel: its colour says it (the legend), so the labels need not.
    one_provider = "provider" in points and points["provider"].nunique() == 1
    texts = [
        ax.text(point["x"], point["quality"], f"{point['model']}:{point['variant']}" if one_provider else point["name"],
                fontsize=_LABEL_FONT_SIZE,
                fontweight="bold" if point["on_frontier"] else "normal",
                color="black" if point["on_frontier"] else "0.4", gid=point["profile_record_id"], zorder=4)
        for _, point in points.iterrows()
    ]  # fmt: skip
    if not texts:
        return
    xs, ys = _avoided(points, minimize_x)
    leader_pixels = _LEADER_MIN_POINTS * ax.figure.dpi / 72.0
    _, leaders = adjust_text(
        texts, x=xs, y=ys, target_x=points["x"].tolist(), target_y=points["quality"].tolist(), ax=ax,
        expand=_LABEL_EXPAND, force_text=_LABEL_FORCE, force_static=_LABEL_FORCE, ensure_inside_axes=True,
        iter_lim=_LABEL_ITERATIONS, time_lim=None, min_arrow_len=leader_pixels, arrowprops=_LEADER_STYLE,
    )  # fmt: skip
    for leader in leaders:
        leader.set_gid(leader.patchA.get_gid())
