"""How latency is sampled: the warm-up, the one stop rule, and the timed loops built on them.

Every latency measurement in embedkit (a profile point, a two-backend comparison, the timer's own
cost, `embedkit bench`'s single-text rounds) takes timed calls until `StopRule.reason` says stop:
at least `min_samples` samples and `min_seconds` of sampling, unless an optional `max_seconds` cap
comes first. `sample_until` is the one loop that asks it.

Before sampling, a fresh session warms up until its median settles (`warm_up_until_stable`): the
first calls pay for lazy initialisation, arena growth and cold caches, which are a cold-start
figure, not a latency one.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from embedkit import defaults, stats
from embedkit.errors import UsageError
from embedkit.latency.grid import Scenario
from embedkit.pipeline.embedder import STAGES, Embedder, StageTimer

# Why sampling stopped, as a profile record's `grid.sampling.stopped_by` says it.
STOPPED_AT_TARGET = "target"  # min_samples and min_seconds both reached
STOPPED_AT_CAP = "max_seconds"


# --- warm-up ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WarmUp:
    """Outcome of warming up: every timing taken, and whether the median settled."""

    samples_ms: np.ndarray
    stable: bool
    last_relative_change: float | None

    @property
    def runs(self) -> int:
        return int(self.samples_ms.size)

    def to_record(self) -> dict[str, object]:
        return {"runs": self.runs, "stable": self.stable, "last_relative_change": self.last_relative_change}


def warm_up_until_stable(
    run_once_ms: Callable[[], float],
    *,
    window: int = defaults.WARMUP_WINDOW,
    tolerance: float = defaults.WARMUP_TOLERANCE,
    max_runs: int = defaults.WARMUP_MAX_RUNS,
    max_seconds: float = defaults.WARMUP_MAX_SECONDS,
) -> WarmUp:
    """Call `run_once_ms` (returns one call's latency in ms) until the median settles.

    Settled: the median of the last `window` timings differs from the median of the `window`
    before it by less than `tolerance`, relative to the larger of the two. Stops unsettled after
    `max_runs` calls or `max_seconds`, whichever comes first; the result says so rather than pretending.
    """
    if window < 1 or max_runs < 2 * window:
        raise UsageError(f"need window >= 1 and max_runs >= 2 * window, got {window=} {max_runs=}")
    timings: list[float] = []
    last_change: float | None = None
    deadline = time.perf_counter() + max_seconds
    while len(timings) < max_runs and time.perf_counter() < deadline:
        timings.append(float(run_once_ms()))
        if len(timings) >= 2 * window:
            previous = float(np.median(timings[-2 * window : -window]))
            latest = float(np.median(timings[-window:]))
            largest = max(previous, latest)
            last_change = abs(latest - previous) / largest if largest > 0 else 0.0
            if last_change < tolerance:
                return WarmUp(np.asarray(timings), stable=True, last_relative_change=last_change)
    return WarmUp(np.asarray(timings), stable=False, last_relative_change=last_change)


def call_ms(embedder: Embedder, texts: list[str], timer: StageTimer | None = None) -> float:
    """One `embed` call of `texts` as one batch, timed end to end, in ms."""
    start = time.perf_counter()
    embedder.embed(texts, batch_size=len(texts), timer=timer)
    return (time.perf_counter() - start) * 1e3


def warm_up(embedder: Embedder, texts: list[str], scenario: Scenario) -> WarmUp:
    """Warm `embedder` up on `texts` with the scenario's window and time limit."""
    return warm_up_until_stable(
        lambda: call_ms(embedder, texts),
        window=scenario.warmup_window,
        max_runs=max(defaults.WARMUP_MAX_RUNS, 2 * scenario.warmup_window),
        max_seconds=scenario.warmup_max_seconds,
    )


# --- the stop rule --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StopRule:
    """When sampling stops: `min_samples` and `min_seconds` both reached, or the `max_seconds` cap."""

    min_samples: int = defaults.MIN_SAMPLES
    min_seconds: float = defaults.MIN_SECONDS
    max_seconds: float | None = None  # None: no cap

    @classmethod
    def of(cls, scenario: Scenario) -> StopRule:
        return cls(scenario.min_samples, scenario.min_seconds, scenario.max_seconds)

    def reason(self, samples: int, seconds: float) -> str | None:
        """Why sampling stops after `samples` samples in `seconds`, or None to go on.

        The cap stops only once there are two samples: a spread needs two.
        """
        if samples >= self.min_samples and seconds >= self.min_seconds:
            return STOPPED_AT_TARGET
        if self.max_seconds is not None and seconds >= self.max_seconds and samples >= 2:
            return STOPPED_AT_CAP
        return None


def sample_until(rule: StopRule, take: Callable[[], int]) -> tuple[float, str]:
    """Call `take` (one step of sampling; returns the samples collected so far) until `rule` stops it.

    Returns the seconds spent and why it stopped.
    """
    start = time.perf_counter()
    while True:
        collected = take()
        elapsed = time.perf_counter() - start
        reason = rule.reason(collected, elapsed)
        if reason is not None:
            return elapsed, reason


# --- the timed loops ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sampled:
    """Per-stage and end-to-end latency samples (ms) and why sampling stopped."""

    stage_ms: dict[str, np.ndarray]
    seconds: float
    stopped_by: str  # STOPPED_AT_TARGET or STOPPED_AT_CAP


def sample_stages(embedder: Embedder, texts: list[str], scenario: Scenario) -> Sampled:
    """Timed calls of one batch until the scenario's stop rule says stop.

    One call embeds exactly one batch, so each call adds one sample to every stage; "total" is
    timed around the whole call and so includes what lies between the stages.
    """
    timer = StageTimer()
    totals: list[float] = []

    def take() -> int:
        totals.append(call_ms(embedder, texts, timer))
        return len(totals)

    gc.collect()  # start from a clean heap rather than inherit a collection from set-up
    seconds, stopped_by = sample_until(StopRule.of(scenario), take)
    stage_ms = {stage: np.asarray(timer.samples[stage]) * 1e3 for stage in STAGES}
    stage_ms["total"] = np.asarray(totals)
    return Sampled(stage_ms, seconds, stopped_by)


@dataclass(frozen=True)
class Rounds:
    """End-to-end latency (ms) of several callers timed in turn, round after round: sample i of each
    comes from round i."""

    samples_ms: list[list[float]]
    seconds: float

    @property
    def rounds(self) -> int:
        return len(self.samples_ms[0])


def sample_rounds(calls: list[Callable[[], float]], rule: StopRule) -> Rounds:
    """Every call once per round (A B A B …) until `rule` stops it, counting rounds as samples."""
    samples: list[list[float]] = [[] for _ in calls]

    def take() -> int:
        for call, collected in zip(calls, samples, strict=True):
            collected.append(call())
        return len(samples[0])

    seconds, _ = sample_until(rule, take)
    return Rounds(samples, seconds)


def measure_timing_overhead(
    embedder: Embedder, texts: list[str], *, min_pairs: int, min_seconds: float = 0.0
) -> stats.RatioEstimate:
    """End-to-end latency with the per-stage StageTimer over without it, on one session, paired.

    The two calls of a pair alternate their order from pair to pair, so neither always runs on
    the caches the other warmed. A ratio of 1.01 means the instrumentation costs 1 %.
    """
    timer = StageTimer()
    timed: list[float] = []
    plain: list[float] = []

    def take() -> int:
        for instrumented in (True, False) if len(timed) % 2 == 0 else (False, True):
            (timed if instrumented else plain).append(call_ms(embedder, texts, timer if instrumented else None))
        return len(timed)

    sample_until(StopRule(min_pairs, min_seconds), take)
    return stats.ratio_with_ci(timed, plain, paired=True)
