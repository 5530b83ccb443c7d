"""Latency statistics checked against distributions whose truth is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from embedkit import stats


def test_summary_matches_numpy_in_milliseconds() -> None:
    samples = np.random.default_rng(1).lognormal(mean=2.0, sigma=0.3, size=500)
    summary = stats.summarize(samples)
    record = summary.to_record()
    for q in stats.PERCENTILES:
        assert record[f"p{q}"] == pytest.approx(np.percentile(samples, q))
        low, high = record[f"p{q}_ci"]
        assert low <= high
    assert record["mean"] == pytest.approx(samples.mean())
    assert record["stdev"] == pytest.approx(samples.std(ddof=1))
    assert (record["min"], record["max"], record["n"]) == (samples.min(), samples.max(), 500)
    assert set(record) == {
        "p50", "p90", "p95", "p99", "mean", "stdev", "min", "max", "n",
        "p50_ci", "p90_ci", "p95_ci", "p99_ci", "noisy",
    }  # fmt: skip


def test_bootstrap_is_seeded() -> None:
    samples = np.random.default_rng(2).normal(10, 1, 300)
    assert stats.summarize(samples, seed=7) == stats.summarize(samples, seed=7)
    assert stats.summarize(samples, seed=7).percentile_cis != stats.summarize(samples, seed=8).percentile_cis


def test_median_ci_of_a_normal_covers_the_true_median_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(3)
    trials = 200
    covered = 0
    for trial in range(trials):
        samples = rng.normal(loc=10.0, scale=2.0, size=200)
        ((low, high),) = stats.bootstrap_percentile_cis(samples, [50], resamples=1000, seed=trial)
        covered += low <= 10.0 <= high
    assert 0.88 <= covered / trials <= 0.99


def test_p95_ci_covers_the_true_p95_of_an_exponential() -> None:
    rng = np.random.default_rng(4)
    true_p95 = -np.log(0.05) * 5.0  # exponential with mean 5 ms
    covered = 0
    for trial in range(100):
        samples = rng.exponential(5.0, 1000)
        ((low, high),) = stats.bootstrap_percentile_cis(samples, [95], resamples=1000, seed=trial)
        covered += low <= true_p95 <= high
    assert covered >= 85


def test_ci_width_shrinks_like_one_over_root_n() -> None:
    rng = np.random.default_rng(5)
    small = stats.summarize(rng.normal(10, 1, 100)).percentile_cis[50]
    large = stats.summarize(rng.normal(10, 1, 10_000)).percentile_cis[50]
    width_small, width_large = small[1] - small[0], large[1] - large[0]
    assert width_large < width_small / 5  # √100 = 10× in theory; leave room for bootstrap noise


def test_tight_sample_is_not_noisy_and_bimodal_sample_is() -> None:
    rng = np.random.default_rng(6)
    tight = rng.normal(10.0, 0.1, 1000)
    assert not stats.summarize(tight).noisy
    # Half the calls take 10 ms, half 20 ms: the median could be either, so its CI spans both modes.
    bimodal = np.concatenate([rng.normal(10.0, 0.1, 150), rng.normal(20.0, 0.1, 150)])
    summary = stats.summarize(bimodal)
    assert summary.noisy
    low, high = summary.percentile_cis[50]
    assert stats.relative_ci_width(summary.percentiles[50], (low, high)) > stats.NOISY_RELATIVE_CI_WIDTH


def test_a_heavy_tail_alone_does_not_flag_p99_noise() -> None:
    # p99 of 300 samples rests on three values; its CI is wide, but that is reported, not flagged.
    rng = np.random.default_rng(7)
    samples = np.concatenate([rng.normal(10.0, 0.1, 297), [30.0, 40.0, 50.0]])
    summary = stats.summarize(samples)
    assert stats.relative_ci_width(summary.percentiles[99], summary.percentile_cis[99]) > 0.5
    assert not summary.noisy


@pytest.mark.parametrize("bad", [[], [1.0], [1.0, float("nan")], [[1.0, 2.0], [3.0, 4.0]], [1.0, float("inf")]])
def test_rejects_unusable_samples(bad: list) -> None:
    with pytest.raises(ValueError):
        stats.summarize(bad)


def test_large_runs_are_bootstrapped_in_chunks() -> None:
    samples = np.random.default_rng(8).normal(1.0, 0.01, 50_000)
    summary = stats.summarize(samples, resamples=200)
    low, high = summary.percentile_cis[50]
    assert low <= summary.percentiles[50] <= high


def _interleaved_with_drift(rng: np.random.Generator, rounds: int, a_over_b: float) -> tuple[np.ndarray, np.ndarray]:
    """A B A B … timings where both sides share a slow drift (thermal, other load) per round."""
    drift = 10.0 + 5.0 * np.sin(np.linspace(0, 6 * np.pi, rounds)) + rng.normal(0, 1.0, rounds)
    b = drift * rng.normal(1.0, 0.01, rounds)
    a = a_over_b * drift * rng.normal(1.0, 0.01, rounds)
    return a, b


def test_paired_ratio_recovers_a_known_slowdown() -> None:
    a, b = _interleaved_with_drift(np.random.default_rng(9), 300, a_over_b=1.10)
    estimate = stats.ratio_with_ci(a, b, paired=True)
    assert estimate.ci[0] <= 1.10 <= estimate.ci[1]
    assert estimate.significant
    assert estimate.to_record()["significant"] is True


def test_pairing_cancels_shared_drift() -> None:
    a, b = _interleaved_with_drift(np.random.default_rng(10), 300, a_over_b=1.03)
    paired = stats.ratio_with_ci(a, b, paired=True)
    unpaired = stats.ratio_with_ci(a, b, paired=False)
    assert paired.ci[1] - paired.ci[0] < (unpaired.ci[1] - unpaired.ci[0]) / 3
    assert paired.significant and not unpaired.significant


def test_equal_configurations_are_not_significant() -> None:
    a, b = _interleaved_with_drift(np.random.default_rng(11), 300, a_over_b=1.0)
    for statistic in ("median", "mean"):
        estimate = stats.ratio_with_ci(a, b, paired=True, statistic=statistic)
        assert estimate.ci[0] <= 1.0 <= estimate.ci[1]
        assert not estimate.significant


def test_paired_ratio_needs_equal_lengths() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        stats.ratio_with_ci([1.0, 2.0, 3.0], [1.0, 2.0], paired=True)


def test_between_point_intervals_remove_the_shared_task_effect() -> None:
    tasks = pd.DataFrame(
        {"easy": [0.90, 0.89, 0.80], "hard": [0.50, 0.49, 0.50], "mid": [0.70, 0.69, 0.60]},
        index=["reference", "shifted", "erratic"],
    )
    # A constant offset on every task is a sure difference: no width, though the tasks differ by 0.4.
    consistent = stats.between_point_intervals(tasks.iloc[:2])
    assert (consistent["high"] - consistent["low"]).to_numpy() == pytest.approx([0.0, 0.0], abs=1e-12)
    intervals = stats.between_point_intervals(tasks)
    width = intervals["high"] - intervals["low"]
    assert width.idxmax() == "erratic" and width["erratic"] > 0.05
    means = tasks.mean(axis=1)
    assert ((intervals["low"] <= means + 1e-12) & (means - 1e-12 <= intervals["high"])).all()
    single = stats.between_point_intervals(tasks.iloc[[2]])
    assert (single["high"] - single["low"]).iloc[0] == 0.0
