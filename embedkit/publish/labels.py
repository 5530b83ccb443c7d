"""Text on the figures: the machine panels' titles, and where the Pareto plot's point labels go (each
beside its point, clear of markers, error bars, the frontier's staircase and the labels already
placed, with a leader line when it had to move)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import pandas as pd
from matplotlib.axes import Axes

from embedkit.results.provenance import ONNXRUNTIME_BUILDS

_LABEL_FONT_SIZE = 7.5
_LABEL_GAP = 6.0  # points between a marker's centre and its label
_MARKER_HALF = 5.0  # half a marker's size, in points
Box = tuple[float, float, float, float]  # left, right, bottom, top in points


def machine_titles(frame: pd.DataFrame) -> dict[str, str]:
    """A title per machine of a records frame: CPU model, physical cores, the onnxruntime builds that
    measured there (e.g. "Intel Xeon … · 2 cores · onnxruntime 1.23.2, onnxruntime-openvino 1.23.0")."""
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
    ax.set_title((titles or {}).get(machine, f"machine {machine}"), fontsize=9, loc="left")
    ax.set_title(machine, fontsize=6, color="0.45", loc="right")


def _overlaps(box: Box, others: Sequence[Box]) -> bool:
    left, right, bottom, top = box
    return any(left < x1 and x0 < right and bottom < y1 and y0 < top for x0, x1, y0, y1 in others)


def _drawn_boxes(
    points: pd.DataFrame, at: Callable[[float, float], tuple[float, float]], minimize_x: bool
) -> list[Box]:
    """What labels must not cover, in points: markers, error bars, and the frontier's staircase."""
    boxes: list[Box] = []
    for row in points[["x", "quality", "x_low", "quality_low", "x_high", "quality_high"]].to_numpy(dtype=float):
        x, y = at(row[0], row[1])
        (x_low, y_low), (x_high, y_high) = at(row[2], row[3]), at(row[4], row[5])
        boxes += [
            (x - _MARKER_HALF, x + _MARKER_HALF, y - _MARKER_HALF, y + _MARKER_HALF),
            (min(x_low, x_high), max(x_low, x_high), y - 1.0, y + 1.0),
            (x - 1.0, x + 1.0, y_low, y_high),
        ]
    frontier = [at(x, y) for x, y in points[points["on_frontier"]].sort_values("x")[["x", "quality"]].to_numpy()]
    for (x0, y0), (x1, y1) in itertools.pairwise(frontier):
        # The step's corner: (x1, y0) for "post" (latency), (x0, y1) for "pre" (throughput).
        corner_x, level = (x1, y0) if minimize_x else (x0, y1)
        boxes += [(x0, x1, level - 1.0, level + 1.0), (corner_x - 1.0, corner_x + 1.0, min(y0, y1), max(y0, y1))]
    return boxes


def label_points(ax: Axes, points: pd.DataFrame, minimize_x: bool) -> None:
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
