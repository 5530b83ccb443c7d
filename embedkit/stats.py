"""Statistics you can trust: latency percentiles with bootstrap confidence intervals, and intervals
for comparing mean scores over tasks.

Latency outputs are in milliseconds; callers pass samples already in milliseconds.

The bootstrap treats samples as independent draws. Timing series are mildly autocorrelated
(frequency scaling, cache state), so the profiler warms up until stable before sampling
(embedkit.latency.sampling), and claims that one configuration beats another go through
`ratio_with_ci(..., paired=True)` on interleaved runs, where slow drift hits both sides of each
pair alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

PERCENTILES: tuple[int, ...] = (50, 90, 95, 99)
CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0

# A point is "noisy" when the 95 % CI of one of its judged percentiles spans more than this
# fraction of the percentile's value (0.20 ≈ "known to no better than ±10 %"). The latency
# tiers of the decision card are 25-50 % apart, so a wider CI can flip a verdict.
NOISY_RELATIVE_CI_WIDTH = 0.20
# Only p50 and p95 are judged: they are the figures reports and the decision card quote. With a
# few hundred samples only a handful lie above p99, so its CI is wide on every machine and
# flagging on it would mark every point noisy; its CI is still reported.
NOISY_JUDGED_PERCENTILES: tuple[int, ...] = (50, 95)

# Bootstrap resamples are drawn in chunks of at most this many elements, so that 2000 resamples
# of a 20 000-sample run (10 s of sub-millisecond calls) do not need gigabytes at once.
_BOOTSTRAP_CHUNK_ELEMENTS = 1 << 22

Statistic = Literal["median", "mean"]


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one stage's latency samples, in milliseconds."""

    n: int
    mean: float
    stdev: float
    min: float
    max: float
    percentiles: dict[int, float]
    percentile_cis: dict[int, tuple[float, float]]
    noisy: bool

    def to_record(self) -> dict[str, object]:
        """The record shape: p50, p90, p95, p99, mean, stdev, min, max, n, pXX_ci, noisy."""
        fields: dict[str, object] = {f"p{q}": value for q, value in self.percentiles.items()}
        fields.update(mean=self.mean, stdev=self.stdev, min=self.min, max=self.max, n=self.n)
        fields.update({f"p{q}_ci": list(ci) for q, ci in self.percentile_cis.items()})
        fields["noisy"] = self.noisy
        return fields


@dataclass(frozen=True)
class RatioEstimate:
    """statistic(a) / statistic(b) with its bootstrap confidence interval."""

    ratio: float
    ci: tuple[float, float]
    statistic: Statistic
    paired: bool
    n_a: int
    n_b: int

    @property
    def significant(self) -> bool:
        """True when the CI excludes 1, i.e. a and b differ at the chosen confidence."""
        return self.ci[0] > 1.0 or self.ci[1] < 1.0

    def to_record(self) -> dict[str, object]:
        return {
            "ratio": self.ratio,
            "ci": list(self.ci),
            "statistic": self.statistic,
            "paired": self.paired,
            "n_a": self.n_a,
            "n_b": self.n_b,
            "significant": self.significant,
        }


def as_samples(samples: Sequence[float] | np.ndarray) -> np.ndarray:
    """Validate latency samples: 1-D, finite, at least two (a spread needs two); returned as float64."""
    array = np.asarray(samples, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"latency samples must be 1-D, got shape {array.shape}")
    if array.size < 2:
        raise ValueError(f"need at least 2 latency samples, got {array.size}")
    if not np.all(np.isfinite(array)):
        raise ValueError("latency samples contain NaN or infinity")
    return array


def _resample_indices(rng: np.random.Generator, n: int, resamples: int) -> Iterator[np.ndarray]:
    """Bootstrap index arrays of shape (rows, n), `resamples` rows in all, one chunk at a time."""
    rows_per_chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // n)
    for start in range(0, resamples, rows_per_chunk):
        yield rng.integers(0, n, size=(min(rows_per_chunk, resamples - start), n))


def _interval(replicates: np.ndarray, confidence: float) -> np.ndarray:
    """Percentile-method interval over the last axis: shape (..., 2)."""
    alpha = (1.0 - confidence) / 2.0
    return np.moveaxis(np.quantile(replicates, [alpha, 1.0 - alpha], axis=-1), 0, -1)


def bootstrap_percentile_cis(
    samples: Sequence[float] | np.ndarray,
    percentiles: Sequence[float] = PERCENTILES,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> np.ndarray:
    """Bootstrap CIs of several percentiles at once; returns shape (len(percentiles), 2)."""
    values = as_samples(samples)
    rng = np.random.default_rng(seed)
    replicates = np.concatenate(
        [np.percentile(values[idx], percentiles, axis=1) for idx in _resample_indices(rng, values.size, resamples)],
        axis=1,
    )
    return _interval(replicates, confidence)


def relative_ci_width(value: float, ci: tuple[float, float]) -> float:
    """(hi - lo) / value; infinite for a zero value with a non-zero width."""
    width = ci[1] - ci[0]
    if value == 0:
        return 0.0 if width == 0 else math.inf
    return width / abs(value)


def summarize(
    samples_ms: Sequence[float] | np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> LatencyStats:
    """p50/p90/p95/p99, mean, stdev (ddof=1), min, max, n and bootstrap CIs of each percentile."""
    values = as_samples(samples_ms)
    points = np.percentile(values, PERCENTILES)
    cis = bootstrap_percentile_cis(values, PERCENTILES, resamples=resamples, seed=seed, confidence=confidence)
    percentiles = {q: float(p) for q, p in zip(PERCENTILES, points, strict=True)}
    percentile_cis = {q: (float(lo), float(hi)) for q, (lo, hi) in zip(PERCENTILES, cis, strict=True)}
    noisy = any(
        relative_ci_width(percentiles[q], percentile_cis[q]) > NOISY_RELATIVE_CI_WIDTH for q in NOISY_JUDGED_PERCENTILES
    )
    return LatencyStats(
        n=int(values.size),
        mean=float(values.mean()),
        stdev=float(values.std(ddof=1)),
        min=float(values.min()),
        max=float(values.max()),
        percentiles=percentiles,
        percentile_cis=percentile_cis,
        noisy=noisy,
    )


def _statistic(values: np.ndarray, statistic: Statistic) -> np.ndarray:
    """Row-wise statistic of a (resamples, n) array, or a scalar array for 1-D input."""
    if statistic == "median":
        return np.median(values, axis=-1)
    if statistic == "mean":
        return np.mean(values, axis=-1)
    raise ValueError(f"statistic must be 'median' or 'mean', got {statistic!r}")


def ratio_with_ci(
    a_ms: Sequence[float] | np.ndarray,
    b_ms: Sequence[float] | np.ndarray,
    *,
    paired: bool,
    statistic: Statistic = "median",
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> RatioEstimate:
    """statistic(a) / statistic(b) with a bootstrap CI; > 1 means a is slower than b.

    paired=True is for interleaved runs (A B A B …): a[i] and b[i] come from the same round, and
    pairs are resampled together so that drift shared by a round cancels out of the ratio.
    paired=False resamples a and b independently (separate runs on the same machine).
    """
    a = as_samples(a_ms)
    b = as_samples(b_ms)
    if paired and a.size != b.size:
        raise ValueError(f"paired samples need equal lengths, got {a.size} and {b.size}")
    ratio = float(_statistic(a, statistic) / _statistic(b, statistic))
    rng = np.random.default_rng(seed)
    replicates = []
    for a_idx in _resample_indices(rng, a.size, resamples):
        b_idx = a_idx if paired else rng.integers(0, b.size, size=(a_idx.shape[0], b.size))
        replicates.append(_statistic(a[a_idx], statistic) / _statistic(b[b_idx], statistic))
    lo, hi = _interval(np.concatenate(replicates), confidence)
    return RatioEstimate(
        ratio=ratio, ci=(float(lo), float(hi)), statistic=statistic, paired=paired, n_a=a.size, n_b=b.size
    )


def between_point_intervals(
    task_scores: pd.DataFrame,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
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
    low, high = _interval(replicates, confidence).T
    # pandas only here: profile workers in the accelerator environments, which carry the core
    # dependencies only, import this module for their percentiles.
    import pandas as pd

    return pd.DataFrame({"low": low, "high": high}, index=task_scores.index)
