"""The speed/quality tradeoff: one point per decision-card row, and the Pareto frontier per machine.

Data flows one way: records → a records frame (`tables.load_frame`) → the decision card → the
points here → figures (embedkit.publish.plots). Every point keeps the ids of the records behind it.
Latency is compared within one machine only, so the frontier is computed per machine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from embedkit import defaults
from embedkit.analysis.decision import DecisionPolicy, decision_card, published_rows
from embedkit.analysis.profiles import point_name, profiles_at
from embedkit.errors import CrossMachineError, UsageError
from embedkit.results.scores import common_tasks, score_column, score_rows, scored_tasks
from embedkit.stats import between_point_intervals

Metric = Literal["latency", "throughput"]
METRICS: tuple[str, ...] = ("latency", "throughput")


def pareto_frontier(frame: pd.DataFrame, x: str, y: str, minimize_x: bool = True) -> pd.Series:
    """True for the rows of `frame` that no other row dominates; a boolean Series on frame's index.

    Higher `y` is better; lower `x` is better when `minimize_x` (latency), higher otherwise
    (throughput). A row dominates another when it is at least as good on both axes and strictly
    better on one, so identical points do not dominate each other: both stay on the frontier.
    Rows with a missing x or y are never on it. A frame holding several machines is refused
    (CrossMachineError): their latencies compare the machines, not the configurations.
    """
    if "machine_id" in frame and frame["machine_id"].nunique() > 1:
        raise CrossMachineError(
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
        return ~self.published_quality & (self.points["quality_provider"] != self.points["provider"])

    @property
    def published_quality(self) -> pd.Series:
        """Per point: its quality is its model's published one (a random-weight twin's fp32 point)."""
        return self.points["quality_source"] == "published"


_POINT_COLUMNS = [
    "machine_id", "cpu", "model", "variant", "provider", "name",
    "x", "x_low", "x_high", "quality", "quality_low", "quality_high", "quality_provider", "on_frontier",
    "verdict", "intra_op_threads", "profile_record_id", "score_record_id", "weights", "quality_source",
    "quality_revision",
]  # fmt: skip


def build_tradeoff(
    frame: pd.DataFrame,
    *,
    metric: Metric = "latency",
    tasks: Sequence[str] | None = None,
    batch_size: int | None = None,
    policy: DecisionPolicy | None = None,
) -> Tradeoff:
    """The Pareto plot's points from a frame of profile and score records (`tables.load_frame`).

    Each point is one decision-card row (`decision.decision_card`): the configuration with the
    lowest P95 at the grid point (batch size, `policy.seq_bucket`), and the score record the card
    picks for its model and variant. `tasks`: the tasks to average; default: those every score
    record has, so that all points average the same tasks. `batch_size`: default
    `policy.batch_size` for latency, the largest profiled batch for throughput.
    Groups without a profile at the grid point or without a score over the tasks are left out
    (the decision card lists them).
    """
    if metric not in METRICS:
        raise UsageError(f"metric must be one of {METRICS}, got {metric!r}")
    base = policy or DecisionPolicy()
    chosen_tasks = tuple(tasks) if tasks else _quality_tasks(frame)
    if not chosen_tasks and not score_rows(frame).empty:
        raise UsageError("the score records share no task: name the tasks to average")
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
    task_scores = by_id.loc[points["score_record_id"].unique(), [score_column(task) for task in chosen_tasks]]
    intervals = between_point_intervals(task_scores)
    points["quality_low"] = points["score_record_id"].map(intervals["low"])
    points["quality_high"] = points["score_record_id"].map(intervals["high"])
    points["on_frontier"] = pd.concat(
        [
            pareto_frontier(group, "x", "quality", minimize_x=metric == "latency")
            for _, group in points.groupby("machine_id")
        ]
    )
    return Tradeoff(points=points, metric=metric, policy=chosen)


def _quality_tasks(frame: pd.DataFrame) -> tuple[str, ...]:
    """The tasks every score record's variant and every published record has: like with like."""
    measured = common_tasks(frame)
    published = [set(scored_tasks(row)) for _, row in published_rows(frame).iterrows()]
    if not published:
        return measured
    return tuple(sorted(set.intersection(*published, *([set(measured)] if not score_rows(frame).empty else []))))


def _largest_batch(frame: pd.DataFrame, seq_bucket: str) -> int:
    profiles = profiles_at(frame, None, seq_bucket)
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
        **{key: card_row[key] for key in ("weights", "quality_source", "quality_revision")},
    }


def tradeoff_and_card(
    frame: pd.DataFrame,
    *,
    metric: Metric = "latency",
    tasks: Sequence[str] | None = None,
    batch_size: int | None = None,
    seq_bucket: str = defaults.DECISION_SEQ_BUCKET,
) -> tuple[Tradeoff, pd.DataFrame]:
    """The report's two views of one frame: the tradeoff at the grid point, and the decision card over
    the same tasks and sequence bucket. The card always judges batch `defaults.DECISION_BATCH_SIZE`:
    its tiers are budgets for one text, whatever the plot's x axis."""
    tradeoff = build_tradeoff(
        frame, metric=metric, tasks=tasks, batch_size=batch_size, policy=DecisionPolicy(seq_bucket=seq_bucket)
    )
    card = decision_card(frame, DecisionPolicy(seq_bucket=seq_bucket, quality_tasks=tradeoff.tasks or None))
    return tradeoff, card


_TUNE_KEYS = ("machine_id", "model", "variant", "provider")


def tune_choices(frame: pd.DataFrame) -> pd.DataFrame:
    """The latest `embedkit tune` choice per (machine, model, variant, provider), with its re-run command
    and the P95 and mean score it was chosen on (over its own tasks)."""
    columns = [*_TUNE_KEYS, "command", "p95_ms", "mean_score", "record_id"]
    if "kind" not in frame or "best.variant" not in frame:
        return pd.DataFrame(columns=columns)
    tuned = frame[(frame["kind"] == "tune") & frame["best.variant"].notna()].sort_values("created_at")
    chosen = pd.DataFrame(
        {
            "machine_id": tuned["machine_id"],
            "model": tuned["best.model"],
            "variant": tuned["best.variant"],
            "provider": tuned["best.provider"],
            "command": tuned["best.command"],
            "p95_ms": tuned["best.p95_ms"],
            "mean_score": tuned["best.mean_score"],
            "record_id": tuned["record_id"],
        }
    )
    return chosen.drop_duplicates(subset=list(_TUNE_KEYS), keep="last").reset_index(drop=True)[columns]
