"""The speed/quality tradeoff on synthetic records with known latencies and scores: its points and
the Pareto frontier per machine."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from records_factory import MINILM_SCORES, SMALL_SWEEP_FRONTIER, TASKS, profile_record, score_record

from embedkit.analysis.tradeoff import Tradeoff, build_tradeoff, pareto_frontier
from embedkit.errors import CrossMachineError
from embedkit.results.tables import records_frame

# --- the frontier -------------------------------------------------------------------------------


def test_frontier_keeps_ties_and_drops_every_kind_of_dominated_point() -> None:
    frame = pd.DataFrame(
        {
            "name": ["fast", "best", "twin", "slower", "same-x-worse", "same-y-slower", "unmeasured"],
            "x": [1.0, 2.0, 2.0, 3.0, 2.0, 4.0, math.nan],
            "y": [0.5, 0.7, 0.7, 0.6, 0.65, 0.7, 0.9],
        },
        index=[10, 11, 12, 13, 14, 15, 16],
    )
    on = pareto_frontier(frame, "x", "y")
    assert on.index.equals(frame.index) and on.dtype == bool
    assert frame.loc[on, "name"].tolist() == ["fast", "best", "twin"]


def test_frontier_for_throughput_prefers_higher_x() -> None:
    frame = pd.DataFrame({"x": [100.0, 300.0, 200.0, 300.0], "y": [0.8, 0.7, 0.6, 0.65]})
    assert pareto_frontier(frame, "x", "y", minimize_x=False).tolist() == [True, True, False, False]
    assert pareto_frontier(frame, "x", "y").tolist() == [True, False, False, False]


def test_frontier_refuses_to_join_machines() -> None:
    frame = pd.DataFrame({"machine_id": ["a", "b"], "x": [1.0, 2.0], "y": [0.5, 0.6]})
    with pytest.raises(CrossMachineError, match="one machine"):
        pareto_frontier(frame, "x", "y")


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[0] and a[1] >= b[1] and a != b


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=12))
def test_frontier_is_exactly_the_undominated_points(points: list[tuple[int, int]]) -> None:
    frame = pd.DataFrame(points, columns=["x", "y"], dtype=float)
    on = pareto_frontier(frame, "x", "y").tolist()
    for point, is_on in zip(points, on, strict=True):
        assert is_on == (not any(_dominates(other, point) for other in points))
    assert any(on)


# --- the tradeoff table -------------------------------------------------------------------------


def _by_name(points: pd.DataFrame, machine: str = "linux-box") -> pd.DataFrame:
    return points[points["machine_id"] == machine].set_index("name")


def test_one_point_per_machine_model_variant_and_provider(tradeoff: Tradeoff) -> None:
    keys = tradeoff.points[["machine_id", "model", "variant", "provider"]]
    assert len(tradeoff.points) == 8 and not keys.duplicated().any()
    assert tradeoff.tasks == tuple(sorted(TASKS)) and tradeoff.policy.batch_size == 1


def test_points_carry_the_records_numbers(tradeoff: Tradeoff, sweep) -> None:
    made = sweep[1]
    int8 = _by_name(tradeoff.points).loc["all-MiniLM-L6-v2:int8 · CPU"]
    stats = made["int8"]["stages"]["total"]
    assert (int8.x, int8.x_low, int8.x_high) == (stats["p95"], *stats["p95_ci"])
    assert int8.profile_record_id == made["int8"]["record_id"]
    assert int8.score_record_id == made["score-int8"]["record_id"]
    assert int8.quality == pytest.approx(np.mean(list(made["score-int8"]["scores"].values())))
    assert int8.quality_low < int8.quality < int8.quality_high
    assert int8.cpu == "Synthetic CPU @ 2.0GHz"


def test_frontier_is_computed_within_each_machine(tradeoff: Tradeoff) -> None:
    assert tradeoff.frontier() == SMALL_SWEEP_FRONTIER


def test_throughput_uses_the_largest_batch_and_the_rate(frame: pd.DataFrame, sweep) -> None:
    made = sweep[1]
    tradeoff = build_tradeoff(frame, metric="throughput")
    assert tradeoff.policy.batch_size == 32 and not tradeoff.minimize_x
    points = _by_name(tradeoff.points)
    assert list(points.index) == ["all-MiniLM-L6-v2:fp32 · CPU", "all-MiniLM-L6-v2:int8 · CPU"]
    int8 = points.loc["all-MiniLM-L6-v2:int8 · CPU"]
    assert int8.x == made["int8-b32"]["throughput"]["texts_per_s"] and int8.x_low < int8.x < int8.x_high
    assert tradeoff.frontier() == {"linux-box": ["all-MiniLM-L6-v2:int8 · CPU", "all-MiniLM-L6-v2:fp32 · CPU"]}


def test_chosen_tasks_are_averaged(frame: pd.DataFrame) -> None:
    tradeoff = build_tradeoff(frame, tasks=["STSBenchmark"])
    fp32 = _by_name(tradeoff.points).loc["all-MiniLM-L6-v2:fp32 · CPU"]
    assert fp32.quality == pytest.approx(MINILM_SCORES["STSBenchmark"])


def test_points_without_a_score_are_left_out_and_tasks_must_overlap() -> None:
    unscored = profile_record(5.0, variant="O3", seed=20)
    scored = [profile_record(9.0, seed=21), score_record({"STSBenchmark": 0.8})]
    tradeoff = build_tradeoff(records_frame([unscored, *scored]))
    assert tradeoff.points["variant"].tolist() == ["fp32"]
    assert tradeoff.points["on_frontier"].tolist() == [True]
    disjoint = [*scored, score_record({"BIOSSES": 0.8}, variant="O3")]
    with pytest.raises(ValueError, match="share no task"):
        build_tradeoff(records_frame(disjoint))


def test_a_variant_scored_in_rounds_counts_with_its_complete_record() -> None:
    every = {"STSBenchmark": 0.8, "SciFact": 0.6}
    records = [
        profile_record(9.0, seed=22),
        profile_record(5.0, variant="int8", seed=23),
        score_record({"STSBenchmark": 0.8}),  # round 1: STS only
        score_record(every),  # round 2: every task
        score_record({"STSBenchmark": 0.79, "SciFact": 0.58}, variant="int8"),
    ]
    tradeoff = build_tradeoff(records_frame(records))
    assert tradeoff.tasks == ("STSBenchmark", "SciFact")
    assert _by_name(tradeoff.points)["quality"].to_dict() == pytest.approx(
        {"all-MiniLM-L6-v2:fp32 · CPU": 0.7, "all-MiniLM-L6-v2:int8 · CPU": 0.685}
    )
