"""`embedkit bench`'s ratios on synthetic interleaved samples: paired CIs and the issue's targets."""

from __future__ import annotations

import numpy as np
import pytest

from embedkit.latency.bench import RAW, ST, TARGETS, bench_ratios


def _rounds(rng: np.random.Generator, medians_ms: dict[str, float], n: int = 400) -> dict[str, np.ndarray]:
    # Each round shares one drift factor, as interleaved rounds on a noisy machine do.
    drift = rng.lognormal(0.0, 0.3, n)
    return {name: median * drift * rng.lognormal(0.0, 0.01, n) / 1e3 for name, median in medians_ms.items()}


def test_ratios_carry_paired_cis_and_say_which_targets_are_met() -> None:
    latency = _rounds(np.random.default_rng(0), {
        f"{RAW} (fp32)": 7.0, "embedkit fp32": 7.14, "embedkit int8-pc": 5.0, ST: 28.0})  # fmt: skip
    throughput = {"embedkit fp32": 150.0, "embedkit int8-pc": 240.0, ST: 120.0}
    ratios = bench_ratios(latency, throughput, ["fp32", "int8-pc"])

    assert set(ratios) == set(TARGETS)
    overhead = ratios["pipeline_overhead"]
    assert overhead["value"] == pytest.approx(0.02, abs=0.01)
    # Pairing keeps the rounds' shared 30 % drift out of the CI: it covers the truth and stays narrow.
    assert overhead["ci"][0] < 0.02 < overhead["ci"][1] and overhead["ci"][1] - overhead["ci"][0] < 0.03
    assert overhead["met"] is True and overhead["target"] == "<= 0.05"
    fp32 = ratios["single_speedup_vs_st[fp32]"]
    assert fp32["value"] == pytest.approx(28.0 / 7.14, rel=0.02) and fp32["met"] is True
    assert ratios["single_speedup_vs_st[int8-pc]"]["met"] is False  # 5.6× against a 6× goal
    assert ratios["batch32_throughput_vs_st[fp32]"] == {"value": 1.25, "ci": None, "target": ">= 1.15", "met": True}
    assert ratios["batch32_throughput_vs_st[int8-pc]"]["met"] is False  # 2.0× against 2.3×
