"""The answer in words, for the terminal: the frontier, the decision card, and what failed.

It reads the same tradeoff and decision card the report draws (records → tables → these lines), so the
words and the figures never disagree. Each frontier point is said beside a reference: the same model's
fp32 variant on the same machine and provider, the variant a user starts from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from embedkit.analysis.tradeoff import Tradeoff
from embedkit.pipeline.providers import short_name
from embedkit.results.scores import REFERENCE_VARIANT


def _x_text(tradeoff: Tradeoff, x: float) -> str:
    if tradeoff.minimize_x:
        return f"{x:.2f} ms P95"
    return f"{x:.0f} texts/s"


def _versus(tradeoff: Tradeoff, point: pd.Series, reference: pd.Series) -> str:
    """'1.9× faster than fp32 at −0.0003': the speed ratio and the quality difference to `reference`."""
    ratio = reference["x"] / point["x"] if tradeoff.minimize_x else point["x"] / reference["x"]
    change = "faster" if ratio >= 1 else "slower"
    factor = ratio if ratio >= 1 else 1 / ratio
    return f"{factor:.1f}× {change} than {reference['variant']} at {point['quality'] - reference['quality']:+.4f}"


def _reference_of(points: pd.DataFrame, point: pd.Series) -> pd.Series | None:
    same = points[
        (points["machine_id"] == point["machine_id"])
        & (points["model"] == point["model"])
        & (points["provider"] == point["provider"])
        & (points["variant"] == REFERENCE_VARIANT)
    ]
    if same.empty or same.index[0] == point.name:
        return None
    return same.iloc[0]


def frontier_lines(tradeoff: Tradeoff) -> list[str]:
    """One line per frontier point, per machine (cheapest first), e.g.
    'all-MiniLM-L6-v2:int8-pc · CPU: 2.31 ms P95, 0.7630 mean score — 1.9× faster than fp32 at −0.0003'."""
    points = tradeoff.points
    lines: list[str] = []
    for machine, group in points[points["on_frontier"].astype(bool)].groupby("machine_id"):
        lines.append(f"{group['cpu'].iloc[0]} (machine {str(machine)[:12]}):")
        for _, point in group.sort_values("x", ascending=tradeoff.minimize_x).iterrows():
            scored_on = point["quality_provider"]
            borrowed = f" (quality scored on {short_name(scored_on)})" if scored_on != point["provider"] else ""
            line = f"  {point['name']}: {_x_text(tradeoff, point['x'])}, {point['quality']:.4f} mean score{borrowed}"
            reference = _reference_of(points, point)
            lines.append(line if reference is None else f"{line} — {_versus(tradeoff, point, reference)}")
    return lines


def card_lines(card: pd.DataFrame) -> list[str]:
    """The decision card, one line a row: verdict, configuration (and machine, when there are several), reason."""
    several = card["machine_id"].nunique() > 1
    rows = card.to_dict("records")
    width = max((len(str(row["verdict"])) for row in rows), default=0)
    lines = []
    for row in rows:
        where = f" on {row['machine_id']}" if several else ""
        configuration = f"{row['model']}:{row['variant']} · {short_name(row['provider'])}{where}"
        lines.append(f"  {row['verdict']:<{width}}  {configuration}: {row['reason']}")
    return lines


# A native library's message can fill a screen on its first line alone (ONNX Runtime's OpenVINO EP prints
# C++ signatures) and put its cause on the last: a failure's line keeps the head of the first and the last.
FAILURE_HEAD_CHARS = 160


def failure_lines(failed: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """A failed run per line: its id and a one-line reason (the message's first line; one longer than
    FAILURE_HEAD_CHARS is cut there and followed by the message's last line); the whole message is in
    the run's run.json."""
    return [
        f"  {run_id}: {(error or {}).get('type', 'error')}: {one_line_reason(error)}"
        for run_id, error in failed.items()
    ]


def one_line_reason(error: Mapping[str, Any] | None) -> str:
    lines = [line.strip() for line in str((error or {}).get("message", "")).splitlines() if line.strip()]
    if not lines:
        return ""
    if len(lines[0]) <= FAILURE_HEAD_CHARS:
        return lines[0]
    head = lines[0][:FAILURE_HEAD_CHARS].rstrip() + " …"
    return head if len(lines) == 1 else f"{head} {lines[-1]}"


def summary_text(
    *,
    report_html: str,
    figures: Mapping[str, Mapping[str, str]],
    tradeoff: Tradeoff,
    card: pd.DataFrame,
    failed: Mapping[str, Mapping[str, Any] | None],
    skipped: Mapping[str, str] | None = None,
    wall_seconds: float | None = None,
    first_report_seconds: float | None = None,
) -> str:
    """What `embedkit demo` prints for a person at the end."""
    lines = [f"Report: {report_html}"]
    for name, files in figures.items():
        lines.append(f"Figure {name}: " + ", ".join(str(path) for path in files.values()))
    lines += ["", f"On the frontier ({tradeoff.metric}, batch {tradeoff.policy.batch_size}):"]
    lines += frontier_lines(tradeoff) or ["  no point has both a profile and a score yet"]
    lines += ["", "Decision card:", *card_lines(card)]
    if skipped:
        lines += ["", "Providers left out:", *(f"  {name}: {why}" for name, why in skipped.items())]
    lines += ["", f"Failed runs: {len(failed)}", *failure_lines(failed)]
    if first_report_seconds is not None:
        lines.append(f"First report after {first_report_seconds / 60:.1f} min.")
    if wall_seconds is not None:
        lines.append(f"Done in {wall_seconds / 60:.1f} min.")
    return "\n".join(lines)
