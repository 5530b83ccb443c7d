"""Sampling: the warm-up, the one stop rule, and the loops that ask it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from embedkit import defaults
from embedkit.latency import sampling
from embedkit.latency.grid import Scenario
from embedkit.latency.sampling import STOPPED_AT_CAP, STOPPED_AT_TARGET, StopRule


def test_warm_up_stops_once_the_median_settles() -> None:
    rng = np.random.default_rng(12)
    calls = itertools.count()
    # First calls are slow (caches, lazy allocation), settling to 5 ms.
    warm = sampling.warm_up_until_stable(lambda: 5.0 + 20.0 * np.exp(-next(calls) / 8) + rng.normal(0, 0.01))
    assert warm.stable
    assert 2 * defaults.WARMUP_WINDOW <= warm.runs < 200
    assert warm.to_record()["runs"] == warm.runs
    assert warm.last_relative_change is not None and warm.last_relative_change < defaults.WARMUP_TOLERANCE


def test_warm_up_reports_when_it_never_settles() -> None:
    calls = itertools.count()
    # Latency keeps climbing (e.g. a leak or thermal throttling): never stable, capped.
    warm = sampling.warm_up_until_stable(lambda: 1.0 + 0.01 * next(calls), max_runs=100)
    assert not warm.stable
    assert warm.runs == 100
    assert warm.to_record()["stable"] is False


def test_warm_up_respects_its_time_cap() -> None:
    warm = sampling.warm_up_until_stable(lambda: 1.0 + np.random.default_rng().random(), max_seconds=0.0)
    assert warm.runs == 0 and not warm.stable


def test_the_stop_rule_needs_both_samples_and_seconds_unless_capped() -> None:
    rule = StopRule(min_samples=10, min_seconds=2.0, max_seconds=5.0)
    assert rule.reason(9, 3.0) is None and rule.reason(10, 1.0) is None
    assert rule.reason(10, 2.0) == STOPPED_AT_TARGET
    assert rule.reason(3, 5.0) == STOPPED_AT_CAP
    assert rule.reason(1, 60.0) is None  # a spread needs two samples, cap or not
    assert StopRule(10, 0.0).reason(9, 1e9) is None  # no cap: only the target stops it
    assert StopRule.of(Scenario(1, "short", 50, 1.5, 9.0)) == StopRule(50, 1.5, 9.0)


def test_sampling_stops_at_the_first_step_the_rule_allows() -> None:
    steps = itertools.count(1)
    seconds, stopped_by = sampling.sample_until(StopRule(min_samples=7, min_seconds=0.0), lambda: next(steps))
    assert stopped_by == STOPPED_AT_TARGET and next(steps) == 8 and seconds >= 0.0
    assert sampling.sample_until(StopRule(10**9, 0.0, max_seconds=0.01), lambda: 2)[1] == STOPPED_AT_CAP


def test_rounds_time_every_caller_once_per_round() -> None:
    order: list[str] = []
    rounds = sampling.sample_rounds(
        [lambda: order.append("a") or 1.0, lambda: order.append("b") or 2.0], StopRule(min_samples=4, min_seconds=0.0)
    )
    assert order == ["a", "b"] * 4 and rounds.rounds == 4
    assert rounds.samples_ms == [[1.0] * 4, [2.0] * 4]


def test_stage_samples_cover_every_stage_and_the_total(tiny_embedder) -> None:
    scenario = Scenario(2, "short", min_samples=5, min_seconds=0.0)
    sampled = sampling.sample_stages(tiny_embedder, ["a cat", "the dog"], scenario)
    assert set(sampled.stage_ms) == {"tokenize", "feeds", "run", "pool", "total"}
    assert {len(samples) for samples in sampled.stage_ms.values()} == {5}
    assert sampled.stopped_by == STOPPED_AT_TARGET


def test_timing_overhead_is_a_paired_ratio_near_one(tiny_embedder) -> None:
    estimate = sampling.measure_timing_overhead(tiny_embedder, ["a man is playing a guitar"], min_pairs=60)
    assert estimate.paired and estimate.n_a == 60
    assert 0.5 < estimate.ratio < 2.0


@pytest.mark.parametrize("window", [0, 600])
def test_a_warm_up_window_that_cannot_settle_is_refused(window: int) -> None:
    with pytest.raises(ValueError, match="need window >= 1"):
        sampling.warm_up_until_stable(lambda: 1.0, window=window)
