"""`embedkit bench`'s ratios: each with its paired CI, beside its goal (from embedkit.defaults) and `met`.

Every workload is timed in interleaved rounds, so sample i of every contender comes from the same
round and a paired bootstrap keeps the rounds' shared drift out of the CI. One text: medians of
per-call times. Batch workloads: each sample is one block of texts, and the ratio of mean block
times is the ratio of throughputs (every contender embedded the same blocks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from embedkit import defaults
from embedkit.latency.contenders import EMBEDKIT, RAW, ST, ST_ONNX, ST_TORCH
from embedkit.stats import Statistic, ratio_with_ci

SINGLE, BATCH, LONG = "single", "batch32", "long"
WORKLOADS = (SINGLE, BATCH, LONG)
_STATISTIC: dict[str, Statistic] = {SINGLE: "median", BATCH: "mean", LONG: "mean"}
# The names the ratios against sentence-transformers on PyTorch had before issue 11.
_VS_TORCH = {SINGLE: "single_speedup_vs_st", BATCH: "batch32_throughput_vs_st", LONG: "long_throughput_vs_st"}

GOALS: dict[str, tuple[str, float]] = {
    **defaults.BENCH_VARIANT_GOALS,
    **{f"fastest_vs_st_fastest[{w}]": (">=", defaults.BENCH_FASTEST_SPEEDUP_GOAL) for w in WORKLOADS},
    f"fp32_vs_st_onnx_fp32[{SINGLE}]": (">=", defaults.BENCH_FP32_VS_ST_ONNX_GOAL),
}


def ratio_entry(name: str, value: float, ci: tuple[float, float] | None, **about: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"value": value, "ci": None if ci is None else list(ci), **about}
    if name in GOALS:
        direction, bound = GOALS[name]
        entry.update(target=f"{direction} {bound:g}", met=value <= bound if direction == "<=" else value >= bound)
    return entry


def _speedup(times: Mapping[str, np.ndarray], slow: str, fast: str, workload: str) -> tuple[float, tuple[float, float]]:
    estimate = ratio_with_ci(times[slow], times[fast], paired=True, statistic=_STATISTIC[workload])
    return estimate.ratio, estimate.ci


def _fastest(times: Mapping[str, np.ndarray], names: list[str], workload: str) -> str:
    statistic = np.median if _STATISTIC[workload] == "median" else np.mean
    return min(names, key=lambda name: float(statistic(times[name])))


def bench_ratios(times: Mapping[str, Mapping[str, np.ndarray]], variants: list[str]) -> dict[str, dict[str, Any]]:
    """The ratios of `times[workload][contender]` (timed contenders only) that the benchmark reports.

    `variants`: embedkit's variants in the order given; the first is the one the raw contender replays.
    """
    ratios: dict[str, dict[str, Any]] = {}
    single = times[SINGLE]
    raw = next((name for name in single if name.startswith(RAW)), None)
    base = f"{EMBEDKIT} {variants[0]}"
    if raw is not None and base in single:
        overhead = ratio_with_ci(single[base], single[raw], paired=True)
        ratios["pipeline_overhead"] = ratio_entry(
            "pipeline_overhead", overhead.ratio - 1.0, (overhead.ci[0] - 1.0, overhead.ci[1] - 1.0)
        )
    for workload in WORKLOADS:
        measured = times.get(workload, {})
        ours = [f"{EMBEDKIT} {v}" for v in variants if f"{EMBEDKIT} {v}" in measured]
        theirs = [name for name in measured if name.startswith(ST)]
        if ST_TORCH in measured:
            for name in ours:
                ratio_name = f"{_VS_TORCH[workload]}[{name.removeprefix(EMBEDKIT + ' ')}]"
                ratios[ratio_name] = ratio_entry(ratio_name, *_speedup(measured, ST_TORCH, name, workload))
        if ours and theirs:
            best, rival = _fastest(measured, ours, workload), _fastest(measured, theirs, workload)
            ratio_name = f"fastest_vs_st_fastest[{workload}]"
            ratios[ratio_name] = ratio_entry(
                ratio_name, *_speedup(measured, rival, best, workload), embedkit=best, sentence_transformers=rival
            )
    fp32 = f"{EMBEDKIT} fp32"
    if fp32 in single and ST_ONNX in single:
        ratio_name = f"fp32_vs_st_onnx_fp32[{SINGLE}]"
        ratios[ratio_name] = ratio_entry(ratio_name, *_speedup(single, ST_ONNX, fp32, SINGLE))
    return ratios
