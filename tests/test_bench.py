"""`embedkit bench`'s ratios on synthetic interleaved samples: paired CIs and the goals they are judged by."""

from __future__ import annotations

import numpy as np
import pytest

from embedkit import defaults
from embedkit.latency.comparison import BATCH, LONG, SINGLE, bench_ratios
from embedkit.latency.contenders import RAW, ST_ONNX, ST_TORCH


def _rounds(rng: np.random.Generator, medians_ms: dict[str, float], n: int = 400) -> dict[str, np.ndarray]:
    # Each round shares one drift factor, as interleaved rounds on a noisy machine do.
    drift = rng.lognormal(0.0, 0.3, n)
    return {name: median * drift * rng.lognormal(0.0, 0.01, n) / 1e3 for name, median in medians_ms.items()}


def test_ratios_carry_paired_cis_and_say_which_goals_are_met() -> None:
    rng = np.random.default_rng(0)
    single = _rounds(rng, {f"{RAW} (fp32)": 7.0, "embedkit fp32": 7.14, "embedkit int8-pc": 5.0, ST_TORCH: 28.0,
                           ST_ONNX: 10.0})  # fmt: skip
    # Block times: the ratio of mean block times is the ratio of throughputs.
    batch = _rounds(
        rng, {"embedkit fp32": 1 / 150, "embedkit int8-pc": 1 / 240, ST_TORCH: 1 / 120, ST_ONNX: 1 / 100}, 48
    )
    long = _rounds(rng, {"embedkit fp32": 3.0, "embedkit int8-pc": 1.0, ST_TORCH: 4.0, ST_ONNX: 3.5}, 8)
    ratios = bench_ratios({SINGLE: single, BATCH: batch, LONG: long}, ["fp32", "int8-pc"])

    assert set(defaults.BENCH_VARIANT_GOALS) <= set(ratios)
    overhead = ratios["pipeline_overhead"]
    assert overhead["value"] == pytest.approx(0.02, abs=0.01)
    # Pairing keeps the rounds' shared 30 % drift out of the CI: it covers the truth and stays narrow.
    assert overhead["ci"][0] < 0.02 < overhead["ci"][1] and overhead["ci"][1] - overhead["ci"][0] < 0.03
    assert overhead["met"] is True and overhead["target"] == "<= 0.05"
    fp32 = ratios["single_speedup_vs_st[fp32]"]
    assert fp32["value"] == pytest.approx(28.0 / 7.14, rel=0.02) and fp32["met"] is True
    assert ratios["single_speedup_vs_st[int8-pc]"]["met"] is False  # 5.6× against a 6× goal
    throughput = ratios["batch32_throughput_vs_st[fp32]"]
    assert throughput["value"] == pytest.approx(150 / 120, rel=0.02) and throughput["met"] is True
    assert throughput["ci"][0] < throughput["value"] < throughput["ci"][1]
    assert ratios["batch32_throughput_vs_st[int8-pc]"]["met"] is False  # 2.0× against 2.3×

    # The fastest parity-passing embedkit variant against sentence-transformers' fastest, per workload.
    fastest = ratios["fastest_vs_st_fastest[single]"]
    assert (fastest["embedkit"], fastest["sentence_transformers"]) == ("embedkit int8-pc", ST_ONNX)
    assert fastest["value"] == pytest.approx(2.0, rel=0.02) and fastest["met"] is False
    assert ratios["fastest_vs_st_fastest[batch32]"]["sentence_transformers"] == ST_TORCH
    long_fastest = ratios["fastest_vs_st_fastest[long]"]
    assert long_fastest["value"] == pytest.approx(3.5, rel=0.05) and long_fastest["met"] is True
    assert long_fastest["target"] == f">= {defaults.BENCH_FASTEST_SPEEDUP_GOAL:g}"
    onnx = ratios["fp32_vs_st_onnx_fp32[single]"]
    assert onnx["value"] == pytest.approx(10.0 / 7.14, rel=0.02) and onnx["met"] is True


def test_a_contender_that_was_not_timed_is_left_out_of_every_ratio() -> None:
    rng = np.random.default_rng(1)
    single = _rounds(rng, {"embedkit fp32": 5.0, ST_TORCH: 20.0})  # ST onnx failed parity: never timed
    ratios = bench_ratios({SINGLE: single}, ["fp32"])
    assert "fp32_vs_st_onnx_fp32[single]" not in ratios and "pipeline_overhead" not in ratios
    assert ratios["fastest_vs_st_fastest[single]"]["sentence_transformers"] == ST_TORCH
