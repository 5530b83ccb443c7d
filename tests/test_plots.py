"""Plots and their tables on synthetic records with known latencies, scores and placement."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.container import ErrorbarContainer
from matplotlib.text import Annotation

from embedkit.runs import notebook as nb
from embedkit.publish import plots
from embedkit.results import records
from embedkit.publish import report
from embedkit.analysis.decision import decision_card
from records_factory import (
    CPU, MINILM_SCORES, OPENVINO, SMALL_SWEEP_FRONTIER, TASKS, profile_record, score_record, small_sweep,
)

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
    on = plots.pareto_frontier(frame, "x", "y")
    assert on.index.equals(frame.index) and on.dtype == bool
    assert frame.loc[on, "name"].tolist() == ["fast", "best", "twin"]


def test_frontier_for_throughput_prefers_higher_x() -> None:
    frame = pd.DataFrame({"x": [100.0, 300.0, 200.0, 300.0], "y": [0.8, 0.7, 0.6, 0.65]})
    assert plots.pareto_frontier(frame, "x", "y", minimize_x=False).tolist() == [True, True, False, False]
    assert plots.pareto_frontier(frame, "x", "y").tolist() == [True, False, False, False]


def test_frontier_refuses_to_join_machines() -> None:
    frame = pd.DataFrame({"machine_id": ["a", "b"], "x": [1.0, 2.0], "y": [0.5, 0.6]})
    with pytest.raises(records.CrossMachineError, match="one machine"):
        plots.pareto_frontier(frame, "x", "y")


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[0] and a[1] >= b[1] and a != b


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=12))
def test_frontier_is_exactly_the_undominated_points(points: list[tuple[int, int]]) -> None:
    frame = pd.DataFrame(points, columns=["x", "y"], dtype=float)
    on = plots.pareto_frontier(frame, "x", "y").tolist()
    for point, is_on in zip(points, on):
        assert is_on == (not any(_dominates(other, point) for other in points))
    assert any(on)


# --- the tradeoff table -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    directory = tmp_path_factory.mktemp("sweep")
    return directory, small_sweep(directory)


@pytest.fixture(scope="module")
def frame(sweep: tuple[Path, dict[str, dict[str, Any]]]) -> pd.DataFrame:
    return records.load_frame(sweep[0])


@pytest.fixture(scope="module")
def tradeoff(frame: pd.DataFrame) -> plots.Tradeoff:
    return plots.build_tradeoff(frame)


def _by_name(points: pd.DataFrame, machine: str = "linux-box") -> pd.DataFrame:
    return points[points["machine_id"] == machine].set_index("name")


def test_one_point_per_machine_model_variant_and_provider(tradeoff: plots.Tradeoff) -> None:
    keys = tradeoff.points[["machine_id", "model", "variant", "provider"]]
    assert len(tradeoff.points) == 8 and not keys.duplicated().any()
    assert tradeoff.tasks == tuple(sorted(TASKS)) and tradeoff.policy.batch_size == 1


def test_points_carry_the_records_numbers(tradeoff: plots.Tradeoff, sweep) -> None:
    made = sweep[1]
    int8 = _by_name(tradeoff.points).loc["all-MiniLM-L6-v2:int8 · CPU"]
    stats = made["int8"]["stages"]["total"]
    assert (int8.x, int8.x_low, int8.x_high) == (stats["p95"], *stats["p95_ci"])
    assert int8.profile_record_id == made["int8"]["record_id"]
    assert int8.score_record_id == made["score-int8"]["record_id"]
    assert int8.quality == pytest.approx(np.mean(list(made["score-int8"]["scores"].values())))
    assert int8.quality_low < int8.quality < int8.quality_high
    assert int8.cpu == "Synthetic CPU @ 2.0GHz"


def test_frontier_is_computed_within_each_machine(tradeoff: plots.Tradeoff) -> None:
    assert tradeoff.frontier() == SMALL_SWEEP_FRONTIER


def test_throughput_uses_the_largest_batch_and_the_rate(frame: pd.DataFrame, sweep) -> None:
    made = sweep[1]
    tradeoff = plots.build_tradeoff(frame, metric="throughput")
    assert tradeoff.policy.batch_size == 32 and not tradeoff.minimize_x
    points = _by_name(tradeoff.points)
    assert list(points.index) == ["all-MiniLM-L6-v2:fp32 · CPU", "all-MiniLM-L6-v2:int8 · CPU"]
    int8 = points.loc["all-MiniLM-L6-v2:int8 · CPU"]
    assert int8.x == made["int8-b32"]["throughput"]["texts_per_s"] and int8.x_low < int8.x < int8.x_high
    assert tradeoff.frontier() == {"linux-box": ["all-MiniLM-L6-v2:int8 · CPU", "all-MiniLM-L6-v2:fp32 · CPU"]}


def test_chosen_tasks_are_averaged(frame: pd.DataFrame) -> None:
    tradeoff = plots.build_tradeoff(frame, tasks=["STSBenchmark"])
    fp32 = _by_name(tradeoff.points).loc["all-MiniLM-L6-v2:fp32 · CPU"]
    assert fp32.quality == pytest.approx(MINILM_SCORES["STSBenchmark"])
    assert tradeoff.y_label == "mean MTEB main score over 1 task"


def test_points_without_a_score_are_left_out_and_tasks_must_overlap() -> None:
    unscored = profile_record(5.0, variant="O3", seed=20)
    scored = [profile_record(9.0, seed=21), score_record({"STSBenchmark": 0.8})]
    tradeoff = plots.build_tradeoff(records.records_frame([unscored, *scored]))
    assert tradeoff.points["variant"].tolist() == ["fp32"]
    assert tradeoff.points["on_frontier"].tolist() == [True]
    disjoint = [*scored, score_record({"BIOSSES": 0.8}, variant="O3")]
    with pytest.raises(ValueError, match="share no task"):
        plots.build_tradeoff(records.records_frame(disjoint))


def test_between_point_intervals_remove_the_shared_task_effect() -> None:
    tasks = pd.DataFrame(
        {"easy": [0.90, 0.89, 0.80], "hard": [0.50, 0.49, 0.50], "mid": [0.70, 0.69, 0.60]},
        index=["reference", "shifted", "erratic"],
    )
    # A constant offset on every task is a sure difference: no width, though the tasks differ by 0.4.
    consistent = plots.between_point_intervals(tasks.iloc[:2])
    assert (consistent["high"] - consistent["low"]).to_numpy() == pytest.approx([0.0, 0.0], abs=1e-12)
    intervals = plots.between_point_intervals(tasks)
    width = intervals["high"] - intervals["low"]
    assert width.idxmax() == "erratic" and width["erratic"] > 0.05
    means = tasks.mean(axis=1)
    assert ((intervals["low"] <= means + 1e-12) & (means - 1e-12 <= intervals["high"])).all()
    single = plots.between_point_intervals(tasks.iloc[[2]])
    assert (single["high"] - single["low"]).iloc[0] == 0.0


# --- figures ------------------------------------------------------------------------------------


def test_pareto_plot_has_one_marker_with_both_error_bars_per_point(tradeoff: plots.Tradeoff) -> None:
    figure = plots.plot_pareto(tradeoff)
    axes = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title().splitlines()[0] for ax in axes] == ["machine linux-box", "machine mac-m2"]
    for ax in axes:
        machine = ax.get_title().splitlines()[0].removeprefix("machine ")
        here = tradeoff.points[tradeoff.points["machine_id"] == machine].set_index("profile_record_id")
        containers = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        markers = {container.lines[0].get_gid(): container for container in containers}
        assert sorted(markers) == sorted(here.index)  # every point of this machine once, none of another's
        for record_id, container in markers.items():
            point = here.loc[record_id]
            assert container.has_xerr and container.has_yerr
            assert list(container.lines[0].get_xdata()) == [point.x]
            (x_bar,), (y_bar,) = (collection.get_segments() for collection in container.lines[2])
            assert x_bar[:, 0].tolist() == pytest.approx([point.x_low, point.x_high])
            assert y_bar[:, 1].tolist() == pytest.approx([point.quality_low, point.quality_high])


def test_pareto_plot_draws_and_labels_each_machines_frontier(tradeoff: plots.Tradeoff) -> None:
    figure = plots.plot_pareto(tradeoff)
    for ax in (ax for ax in figure.axes if ax.get_title()):
        machine = ax.get_title().splitlines()[0].removeprefix("machine ")
        here = tradeoff.points[tradeoff.points["machine_id"] == machine]
        frontier = here[here["on_frontier"]].sort_values("x")
        (staircase,) = [line for line in ax.get_lines() if line.get_drawstyle() == "steps-post"]
        assert list(staircase.get_xdata()) == frontier["x"].tolist()
        assert list(staircase.get_ydata()) == frontier["quality"].tolist()
        labels = {text.get_text(): text.get_fontweight() for text in ax.texts if isinstance(text, Annotation)}
        assert {name for name, weight in labels.items() if weight == "bold"} == set(frontier["name"])
        assert set(here["name"]) <= set(labels)
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert {"CPU", "OpenVINO", "fp32", "O2", "int8", "int8-pc"} <= set(legend)


def test_the_latency_tiers_appear_only_inside_the_axis(frame: pd.DataFrame) -> None:
    slow = [profile_record(26.0, seed=30), profile_record(12.0, variant="int8", seed=31)]
    scores = [score_record({"STSBenchmark": 0.8}), score_record({"STSBenchmark": 0.78}, variant="int8")]
    figure = plots.plot_pareto(plots.build_tradeoff(records.records_frame([*slow, *scores])))
    tiers = [text.get_text() for text in figure.axes[0].texts if " ms: " in text.get_text()]
    assert tiers == ["15 ms: excellent", "20 ms: target"]


def test_stage_table_and_bars(frame: pd.DataFrame, sweep) -> None:
    made = sweep[1]
    table = plots.stage_table(frame)
    assert len(table) == 8 and list(table.columns[3:]) == ["tokenize", "feeds", "run", "pool", "total"]
    row = table.set_index("record_id").loc[made["O2"]["record_id"]]
    assert row["run"] == made["O2"]["stages"]["run"]["p50"] and row["label"] == "all-MiniLM-L6-v2:O2 · CPU · b1/short · 2 thr"
    figure = plots.plot_stages(table)
    bars_per_panel = [len(ax.patches) for ax in figure.axes]
    assert bars_per_panel == [6 * 4, 2 * 4]  # one bar per record and stage, machines apart


def test_latency_cdf_uses_every_raw_sample(sweep) -> None:
    loaded = records.load_records(sweep[0])
    samples = plots.latency_samples(loaded)
    assert samples.groupby("record_id").size().eq(300).all() and samples["record_id"].nunique() == 8
    fp32 = sweep[1]["fp32"]
    stored = records.decode_samples(fp32["samples"]["total"])
    assert np.array_equal(samples.loc[samples.record_id == fp32["record_id"], "latency_ms"], stored.astype(float))
    figure = plots.plot_latency_cdf(samples)
    curves = {line.get_gid(): line for ax in figure.axes for line in ax.get_lines() if line.get_gid()}
    assert set(curves) == set(samples["record_id"])
    assert curves[fp32["record_id"]].get_color() == plots.provider_colour(CPU)
    assert curves[sweep[1]["openvino"]["record_id"]].get_color() == plots.provider_colour(OPENVINO)


def test_placement_shares_per_executing_provider(frame: pd.DataFrame, sweep) -> None:
    table = plots.placement_table(frame)
    openvino = table[table["record_id"] == sweep[1]["openvino"]["record_id"]].set_index("provider")
    assert openvino["node_share"].to_dict() == pytest.approx({CPU: 0.1, OPENVINO: 0.9})
    assert (openvino["requested"] == OPENVINO).all()
    assert table.groupby("record_id")["time_share"].sum().to_numpy() == pytest.approx(1.0)
    figure = plots.plot_placement(table)
    assert len(figure.axes) == 4  # nodes and time, for each machine


def test_empty_tables_raise_a_clear_error() -> None:
    with pytest.raises(ValueError, match="nothing to plot"):
        plots.plot_stages(plots.stage_table(pd.DataFrame()))


def test_figures_are_saved_as_png_and_reproducible_svg(tradeoff: plots.Tradeoff, tmp_path: Path) -> None:
    first = plots.save_figure(plots.plot_pareto(tradeoff), tmp_path / "a", "pareto")
    second = plots.save_figure(plots.plot_pareto(tradeoff), tmp_path / "b", "pareto")
    assert Path(first["png"]).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    svg = Path(first["svg"]).read_text()
    assert svg.startswith("<?xml") and tradeoff.points["profile_record_id"].iloc[0] in svg  # markers keep their record
    assert svg == Path(second["svg"]).read_text()


def test_similarity_heat_map_writes_every_value() -> None:
    matrix = np.array([[1.0, 0.25], [0.25, 1.0]])
    figure = plots.plot_similarity(matrix, ["a sentence", "another sentence that is far too long to show whole"])
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert texts == ["1.00", "0.25", "0.25", "1.00"]
    assert figure.axes[0].get_yticklabels()[1].get_text().endswith("…")


# --- what the report shows beside the plots -----------------------------------------------------


def test_point_sources_name_records_and_rerun_commands(tradeoff: plots.Tradeoff, frame: pd.DataFrame, sweep) -> None:
    sources = report.point_sources(tradeoff, frame).set_index("point")
    openvino = sources.loc["all-MiniLM-L6-v2:fp32 · OpenVINO"]
    assert openvino.profile_record_id == sweep[1]["openvino"]["record_id"]
    assert openvino.profile_command == (
        "embedkit profile all-MiniLM-L6-v2:fp32 --provider OpenVINO --provider-option num_of_threads=2 "
        "--batch 1 --seq short --threads 2"
    )
    assert openvino.score_command == (
        "embedkit score all-MiniLM-L6-v2:fp32 --provider CPU --tasks BIOSSES SICK-R STSBenchmark SciFact"
    )
    mac = sources[sources["machine_id"] == "mac-m2"]
    assert (mac["score_machine_id"] == "linux-box").all()  # quality measured elsewhere, and said so


def test_profile_command_repeats_the_sampling_and_default_threads() -> None:
    row = {
        "grid.model": "m", "grid.variant": "int8", "grid.provider": CPU, "grid.batch_size": 8,
        "grid.seq_bucket": "long", "grid.intra_op_threads": None, "grid.sampling.min_samples": 300,
        "grid.sampling.min_seconds": 3.0, "grid.sampling.max_seconds": math.nan,
    }  # fmt: skip
    assert report.profile_command(row) == (
        "embedkit profile m:int8 --provider CPU --batch 8 --seq long --threads 0 --samples 300 --min-seconds 3"
    )
    assert report.profile_command({**row, "grid.spinning": "always"}) == (
        "embedkit profile m:int8 --provider CPU --batch 8 --seq long --threads 0 --spinning always --samples 300 "
        "--min-seconds 3"
    )


def test_machines_table_counts_each_machines_records(frame: pd.DataFrame) -> None:
    machines = report.machines_table(frame).set_index("machine_id")
    assert machines.loc["linux-box", ["profile records", "score records"]].tolist() == [8, 5]
    assert machines.loc["mac-m2", ["profile records", "score records"]].tolist() == [2, 0]
    assert machines.loc["mac-m2", "cpu"] == "Synthetic CPU @ 2.0GHz"


# --- notebook parameters ------------------------------------------------------------------------


def test_bad_parameters_are_all_named_in_one_error(tmp_path: Path) -> None:
    with pytest.raises(nb.ParameterError) as caught:
        nb.check_parameters(
            metric=("fast", nb.one_of("latency", "throughput")),
            batch_size=(0, nb.optional(nb.positive_int)),
            results_dir=(str(tmp_path / "missing"), nb.existing_dir),
            sweep=("default", nb.text),
        )
    message = str(caught.value)
    assert "'metric' = 'fast'" in message and "'batch_size' = 0" in message and "'results_dir'" in message
    assert "'sweep'" not in message


def test_parameters_are_converted() -> None:
    checked = nb.check_parameters(
        tasks=("STSBenchmark, BIOSSES", nb.optional(nb.text_list)),
        none=([], nb.optional(nb.text_list)),
        batch=("8", nb.positive_int),
        samples=(None, nb.optional(nb.integer(2))),
    )
    assert (checked.tasks, checked.none, checked.batch, checked.samples) == (["STSBenchmark", "BIOSSES"], None, 8, None)
    with pytest.raises(nb.ParameterError, match="'samples' = 1"):
        nb.check_parameters(samples=(1, nb.optional(nb.integer(2))))


def test_jsonable_rows_are_plain_json() -> None:
    frame = pd.DataFrame({"a": [np.int64(1), np.int64(2)], "b": [np.nan, 0.5], "c": [[np.float32(1.5)], None]})
    assert nb.jsonable_rows(frame) == [{"a": 1, "b": None, "c": [1.5]}, {"a": 2, "b": 0.5, "c": None}]


def test_points_whose_quality_was_scored_on_another_provider_are_hollow_and_explained(
    frame: pd.DataFrame, tradeoff: plots.Tradeoff
) -> None:
    # The synthetic OpenVINO fp32 point has no OpenVINO score record: it borrows the CPU fp32 score.
    points = tradeoff.points.set_index("profile_record_id")
    borrowed = tradeoff.borrowed_quality.set_axis(tradeoff.points["profile_record_id"])
    assert points.loc[borrowed, "provider"].unique().tolist() == ["OpenVINOExecutionProvider"]
    assert (points.loc[borrowed, "quality_provider"] == "CPUExecutionProvider").all()
    figure = plots.plot_pareto(tradeoff)
    faces = {
        container.lines[0].get_gid(): container.lines[0].get_markerfacecolor()
        for ax in figure.axes for container in ax.containers if isinstance(container, ErrorbarContainer)
    }
    assert {record_id for record_id, face in faces.items() if face == "white"} == set(borrowed[borrowed].index)
    assert plots.BORROWED_QUALITY_NOTE in tradeoff.error_bar_note
    card = decision_card(frame, tradeoff.policy)
    scored_elsewhere = card["quality_provider"].notna() & (card["quality_provider"] != card["provider"])
    assert card.loc[scored_elsewhere, "provider"].tolist() == ["OpenVINOExecutionProvider"]
    assert card["reason"].str.contains(r"\(scored on CPU\)").tolist() == scored_elsewhere.tolist()
