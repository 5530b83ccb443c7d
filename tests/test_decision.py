"""The decision card on synthetic records with known latencies and scores."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from records_factory import profile_record as profile
from records_factory import score_record as score

from embedkit.analysis.decision import DecisionPolicy, Verdict, decision_card
from embedkit.results.tables import records_frame


def card(*records_: dict[str, Any], policy: DecisionPolicy | None = None) -> pd.DataFrame:
    return decision_card(records_frame(records_), policy)


def only_row(frame: pd.DataFrame) -> pd.Series:
    assert len(frame) == 1
    return frame.iloc[0]


@pytest.mark.parametrize(
    ("p95_ms", "tier", "verdict"),
    [
        (10.0, "excellent", Verdict.GO),
        (17.5, "target", Verdict.GO),
        (25.0, "acceptable", Verdict.TRY_ALTERNATIVE),
        (45.0, "over budget", Verdict.FALLBACK),
    ],
)
def test_latency_tiers_follow_the_seed_thresholds(p95_ms: float, tier: str, verdict: Verdict) -> None:
    row = only_row(card(profile(p95_ms)))
    assert (row.tier, row.verdict) == (tier, verdict.value)
    assert row.p95_ms == pytest.approx(p95_ms, rel=0.03)
    assert row.p95_ci_low <= row.p95_ms <= row.p95_ci_high
    assert row.confident and not row.noisy
    assert row.reason.startswith(f"P95 {row.p95_ms:.2f} ms")


def test_thresholds_are_configurable() -> None:
    strict = DecisionPolicy(excellent_ms=5, target_ms=8, acceptable_ms=12)
    assert only_row(card(profile(10.0), policy=strict)).verdict == Verdict.TRY_ALTERNATIVE.value
    with pytest.raises(ValueError, match="thresholds"):
        DecisionPolicy(excellent_ms=20, target_ms=15)


def test_quality_below_the_floor_sends_a_fast_model_to_an_alternative() -> None:
    policy = DecisionPolicy(quality_floor=0.80)
    row = only_row(card(profile(10.0), score({"STSBenchmark": 0.78, "BIOSSES": 0.76}), policy=policy))
    assert row.verdict == Verdict.TRY_ALTERNATIVE.value
    assert row.quality == pytest.approx(0.77)
    assert "< floor 0.8" in row.reason


def test_excellent_quality_accepts_an_acceptable_latency() -> None:
    policy = DecisionPolicy(quality_floor=0.75, quality_excellent=0.85)
    good = only_row(card(profile(25.0), score({"STSBenchmark": 0.88}), policy=policy))
    assert good.verdict == Verdict.GO.value and "document the limitation" in good.reason
    merely_good = only_row(card(profile(25.0), score({"STSBenchmark": 0.80}), policy=policy))
    assert merely_good.verdict == Verdict.TRY_ALTERNATIVE.value


def test_over_budget_is_a_fallback_whatever_the_quality() -> None:
    policy = DecisionPolicy(quality_floor=0.5, quality_excellent=0.6)
    assert only_row(card(profile(60.0), score({"STSBenchmark": 0.9}), policy=policy)).verdict == "FALLBACK"


def test_missing_quality_is_said_not_hidden() -> None:
    row = only_row(card(profile(10.0), policy=DecisionPolicy(quality_floor=0.8)))
    assert row.verdict == Verdict.GO.value
    assert pd.isna(row.quality) and "quality not measured" in row.reason


def test_forced_scores_are_flagged() -> None:
    row = only_row(card(profile(10.0), score({"STSBenchmark": 0.82}, forced=True)))
    assert bool(row.forced) and "forced past a failed parity gate" in row.reason


def test_quality_tasks_select_the_score_record_and_average() -> None:
    older_full = score({"STSBenchmark": 0.80, "BIOSSES": 0.70})
    newer_partial = score({"STSBenchmark": 0.90})
    policy = DecisionPolicy(quality_tasks=("STSBenchmark", "BIOSSES"))
    row = only_row(card(profile(10.0), older_full, newer_partial, policy=policy))
    assert row.quality == pytest.approx(0.75) and row.score_record_id == older_full["record_id"]
    newest = only_row(card(profile(10.0), older_full, newer_partial))
    assert newest.score_record_id == newer_partial["record_id"]


def test_the_fastest_thread_setting_at_the_reference_point_is_judged() -> None:
    slow = profile(24.0, threads=1, seed=1)
    fast = profile(12.0, threads=2, seed=2)
    batch = profile(80.0, batch_size=32, seed=3)  # not the reference point: ignored
    row = only_row(card(slow, fast, batch))
    assert (row.verdict, row.intra_op_threads, row.profile_record_id) == ("GO", 2, fast["record_id"])


def test_no_profile_at_the_reference_point_is_reported() -> None:
    row = only_row(card(profile(80.0, batch_size=32)))
    assert row.verdict == Verdict.NO_DATA.value and "batch 1" in row.reason


def test_each_machine_model_and_variant_gets_its_own_row() -> None:
    frame = card(
        profile(12.0, machine="linux-box", seed=1),
        profile(8.0, machine="mac-m2", seed=2),
        profile(26.0, variant="int8", seed=3),
        profile(35.0, model="all-mpnet-base-v2", seed=4),
    )
    verdicts = {(row.machine_id, row.model, row.variant): row.verdict for row in frame.itertuples()}
    assert verdicts == {
        ("linux-box", "all-MiniLM-L6-v2", "fp32"): "GO",
        ("linux-box", "all-MiniLM-L6-v2", "int8"): "TRY ALTERNATIVE",
        ("linux-box", "all-mpnet-base-v2", "fp32"): "FALLBACK",
        ("mac-m2", "all-MiniLM-L6-v2", "fp32"): "GO",
    }


def test_a_ci_straddling_a_threshold_is_not_confident() -> None:
    row = only_row(card(profile(20.0, spread=0.08, seed=5)))
    assert not row.confident and "more than one latency tier" in row.reason


def test_an_empty_frame_gives_an_empty_card() -> None:
    assert decision_card(pd.DataFrame()).empty
