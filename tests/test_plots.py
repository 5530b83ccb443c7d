"""Figures and the tables they draw, on synthetic records with known latencies, scores and placement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from records_factory import CPU, OPENVINO, profile_record, score_record

from embedkit.analysis.decision import decision_card
from embedkit.analysis.profiles import latency_samples, placement_table, stage_table
from embedkit.analysis.tradeoff import Tradeoff, build_tradeoff
from embedkit.publish import labels, plots
from embedkit.results.files import load_records
from embedkit.results.samples import decode_samples
from embedkit.results.tables import records_frame
from embedkit.runs import notebook as nb

# --- figures ------------------------------------------------------------------------------------


def test_pareto_plot_has_one_marker_with_both_error_bars_per_point(tradeoff: Tradeoff) -> None:
    figure = plots.plot_pareto(tradeoff)
    axes = [ax for ax in figure.axes if ax.get_title(loc="right")]
    assert [ax.get_title(loc="right") for ax in axes] == ["linux-box", "mac-m2"]
    for ax in axes:
        machine = ax.get_title(loc="right")
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


def test_pareto_plot_draws_and_labels_each_machines_frontier(tradeoff: Tradeoff) -> None:
    figure = plots.plot_pareto(tradeoff)
    for ax in (ax for ax in figure.axes if ax.get_title(loc="right")):
        machine = ax.get_title(loc="right")
        here = tradeoff.points[tradeoff.points["machine_id"] == machine]
        frontier = here[here["on_frontier"]].sort_values("x")
        (staircase,) = [line for line in ax.get_lines() if line.get_drawstyle() == "steps-post"]
        assert list(staircase.get_xdata()) == frontier["x"].tolist()
        assert list(staircase.get_ydata()) == frontier["quality"].tolist()
        labels = {text.get_gid(): text for text in ax.texts if text.get_gid()}  # by profile record id
        assert {gid for gid, text in labels.items() if text.get_fontweight() == "bold"} == set(
            frontier["profile_record_id"]
        )
        assert set(labels) == set(here["profile_record_id"])
        by_id = here.set_index("profile_record_id")
        for gid, text in labels.items():  # "model:variant", plus the provider where the panel has several
            point = by_id.loc[gid]
            several = here["provider"].nunique() > 1
            assert text.get_text() == (point["name"] if several else f"{point['model']}:{point['variant']}")
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert {"CPU", "OpenVINO", "fp32", "O2", "int8", "int8-pc"} <= set(legend)


def test_panels_are_titled_by_cpu_cores_and_runtime_build_with_the_id_in_small_print(tradeoff, frame) -> None:
    titles = labels.machine_titles(frame)
    newest = frame.sort_values("created_at").groupby("machine_id").last()
    for machine, title in titles.items():
        cpu, cores = newest.loc[machine, "provenance.cpu.model"], newest.loc[machine, "provenance.cpu.physical_cores"]
        version = newest.loc[machine, "provenance.packages.onnxruntime"]
        assert title == f"{cpu} · {int(cores)} cores\nonnxruntime {version}"
    figure = plots.plot_pareto(tradeoff, titles)
    panels = [ax for ax in figure.axes if ax.get_title(loc="right")]
    assert [(ax.get_title(loc="left"), ax.get_title(loc="right")) for ax in panels] == [
        (titles[machine], machine) for machine in ("linux-box", "mac-m2")
    ]
    assert panels[0]._right_title.get_fontsize() < panels[0]._left_title.get_fontsize()


def test_axis_labels_name_the_grid_point_and_the_tasks(frame: pd.DataFrame) -> None:
    one_task = build_tradeoff(frame, tasks=["STSBenchmark"])
    assert plots.y_label(one_task) == "mean MTEB main score over 1 task"
    assert plots.x_label(one_task) == "P95 latency, batch 1, short texts (ms)"


def test_the_latency_tiers_appear_only_inside_the_axis(frame: pd.DataFrame) -> None:
    slow = [profile_record(26.0, seed=30), profile_record(12.0, variant="int8", seed=31)]
    scores = [score_record({"STSBenchmark": 0.8}), score_record({"STSBenchmark": 0.78}, variant="int8")]
    figure = plots.plot_pareto(build_tradeoff(records_frame([*slow, *scores])))
    lines = figure.axes[0].get_lines()
    tiers = {line.get_gid(): line.get_xdata()[0] for line in lines if str(line.get_gid()).startswith("tier-")}
    assert tiers == {"tier-excellent": 15.0, "tier-target": 20.0}
    assert not [text for text in figure.axes[0].texts if " ms" in text.get_text()]  # named in the legend instead
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "P95 tiers 15 / 20 / 30 ms\n(excellent / target / acceptable)" in legend


def test_a_ladder_wide_panel_gets_a_log_axis_with_plain_ticks() -> None:
    ladder = [profile_record(1.5, variant="int8-pc", seed=32), profile_record(120.0, seed=33)]
    scores = [score_record({"STSBenchmark": 0.79}, variant="int8-pc"), score_record({"STSBenchmark": 0.88})]
    (ax,) = plots.plot_pareto(build_tradeoff(records_frame([*ladder, *scores]))).axes
    assert ax.get_xscale() == "log"
    low, high = ax.get_xlim()
    assert low < 1.5 and high > 120.0
    ticks = [ax.xaxis.get_major_formatter()(value, 0) for value in (1.0, 10.0, 100.0)]
    assert ticks == ["1", "10", "100"]
    assert [plots._two_and_five(value, 0) for value in (2.0, 3.0, 50.0)] == ["2", "", "50"]
    close = [profile_record(10.0, seed=34), profile_record(12.0, variant="int8", seed=35)]
    near = [score_record({"STSBenchmark": 0.8}), score_record({"STSBenchmark": 0.78}, variant="int8")]
    assert plots.plot_pareto(build_tradeoff(records_frame([*close, *near]))).axes[0].get_xscale() == "linear"


def test_stage_table_and_bars(frame: pd.DataFrame, sweep) -> None:
    made = sweep[1]
    table = stage_table(frame)
    assert len(table) == 8 and list(table.columns[3:]) == ["tokenize", "feeds", "run", "pool", "total"]
    row = table.set_index("record_id").loc[made["O2"]["record_id"]]
    assert (
        row["run"] == made["O2"]["stages"]["run"]["p50"]
        and row["label"] == "all-MiniLM-L6-v2:O2 · CPU · b1/short · 2 thr"
    )
    figure = plots.plot_stages(table)
    bars_per_panel = [len(ax.patches) for ax in figure.axes]
    assert bars_per_panel == [6 * 4, 2 * 4]  # one bar per record and stage, machines apart


def test_latency_cdf_uses_every_raw_sample(sweep) -> None:
    loaded = load_records(sweep[0])
    samples = latency_samples(loaded)
    assert samples.groupby("record_id").size().eq(300).all() and samples["record_id"].nunique() == 8
    fp32 = sweep[1]["fp32"]
    stored = decode_samples(fp32["samples"]["total"])
    assert np.array_equal(samples.loc[samples.record_id == fp32["record_id"], "latency_ms"], stored.astype(float))
    figure = plots.plot_latency_cdf(samples)
    curves = {line.get_gid(): line for ax in figure.axes for line in ax.get_lines() if line.get_gid()}
    assert set(curves) == set(samples["record_id"])
    assert curves[fp32["record_id"]].get_color() == plots.provider_colour(CPU)
    assert curves[sweep[1]["openvino"]["record_id"]].get_color() == plots.provider_colour(OPENVINO)


def test_placement_shares_per_executing_provider(frame: pd.DataFrame, sweep) -> None:
    table = placement_table(frame)
    openvino = table[table["record_id"] == sweep[1]["openvino"]["record_id"]].set_index("provider")
    assert openvino["node_share"].to_dict() == pytest.approx({CPU: 0.1, OPENVINO: 0.9})
    assert (openvino["requested"] == OPENVINO).all()
    assert table.groupby("record_id")["time_share"].sum().to_numpy() == pytest.approx(1.0)
    figure = plots.plot_placement(table)
    assert len(figure.axes) == 4  # nodes and time, for each machine


def test_empty_tables_raise_a_clear_error() -> None:
    with pytest.raises(ValueError, match="nothing to plot"):
        plots.plot_stages(stage_table(pd.DataFrame()))


def test_figures_are_saved_as_png_and_reproducible_svg(tradeoff: Tradeoff, tmp_path: Path) -> None:
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


def test_points_whose_quality_was_scored_on_another_provider_are_hollow_and_explained(
    frame: pd.DataFrame, tradeoff: Tradeoff
) -> None:
    # The synthetic OpenVINO fp32 point has no OpenVINO score record: it borrows the CPU fp32 score.
    points = tradeoff.points.set_index("profile_record_id")
    borrowed = tradeoff.borrowed_quality.set_axis(tradeoff.points["profile_record_id"])
    assert points.loc[borrowed, "provider"].unique().tolist() == ["OpenVINOExecutionProvider"]
    assert (points.loc[borrowed, "quality_provider"] == "CPUExecutionProvider").all()
    figure = plots.plot_pareto(tradeoff)
    faces = {
        container.lines[0].get_gid(): container.lines[0].get_markerfacecolor()
        for ax in figure.axes
        for container in ax.containers
        if isinstance(container, ErrorbarContainer)
    }
    assert {record_id for record_id, face in faces.items() if face == "white"} == set(borrowed[borrowed].index)
    assert plots.BORROWED_QUALITY_NOTE in plots.error_bar_note(tradeoff)
    card = decision_card(frame, tradeoff.policy)
    scored_elsewhere = card["quality_provider"].notna() & (card["quality_provider"] != card["provider"])
    assert card.loc[scored_elsewhere, "provider"].tolist() == ["OpenVINOExecutionProvider"]
    assert card["reason"].str.contains(r"\(scored on CPU\)").tolist() == scored_elsewhere.tolist()


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


def _crowded_points(n: int = 10) -> pd.DataFrame:
    """Points in a tight cluster, some nearly on top of each other, with long names."""
    rng = np.random.default_rng(7)
    x = 4.0 + rng.uniform(0.0, 1.2, n)
    quality = 0.75 + rng.uniform(0.0, 0.01, n)
    x[1], quality[1] = x[0] + 0.01, quality[0] + 0.0002  # two points almost on one spot
    return pd.DataFrame(
        {"x": x, "quality": quality, "x_low": x - 0.04, "x_high": x + 0.05, "quality_low": quality - 0.0006,
         "quality_high": quality + 0.0005, "name": [f"all-MiniLM-L6-v2:variant{i} · CPU" for i in range(n)],
         "on_frontier": [i % 3 == 0 for i in range(n)], "profile_record_id": [f"profile-{i}" for i in range(n)]}
    )  # fmt: skip


def test_crowded_labels_stay_off_other_markers_and_lead_to_their_own():
    from matplotlib.figure import Figure

    points = _crowded_points()
    figure = Figure(figsize=(6.4, 4.8), dpi=100)
    ax = figure.subplots()
    ax.plot(points["x"], points["quality"], "o", markersize=8)
    ax.margins(0.15)
    labels.label_points(ax, points, minimize_x=True)
    renderer = figure._get_renderer()
    centres = {row.profile_record_id: ax.transData.transform((row.x, row.quality)) for row in points.itertuples()}
    marker_radius = 4.0 * figure.dpi / 72.0  # markersize 8 points across
    texts = {text.get_gid(): text for text in ax.texts if text.get_gid()}
    assert sorted(texts) == sorted(points["profile_record_id"])
    for gid, text in texts.items():
        box = text.get_window_extent(renderer)
        for other, (cx, cy) in centres.items():
            if other == gid or np.hypot(*(centres[gid] - centres[other])) < 2 * marker_radius:
                continue  # its own marker, or one drawn over its own: the label may touch them
            nearest_x, nearest_y = min(max(cx, box.x0), box.x1), min(max(cy, box.y0), box.y1)
            assert np.hypot(cx - nearest_x, cy - nearest_y) >= marker_radius, (gid, "covers", other)
    leaders = [patch for patch in ax.patches if patch.get_gid()]
    for leader in leaders:
        end = ax.transData.transform(leader._posA_posB[1])  # posB: where the leader points, in data coordinates
        assert np.allclose(end, centres[leader.get_gid()], atol=0.5)
    # A label without a leader sits beside its own marker.
    led = {leader.get_gid() for leader in leaders}
    for gid, text in texts.items():
        if gid not in led:
            box = text.get_window_extent(renderer)
            cx, cy = centres[gid]
            assert np.hypot(cx - min(max(cx, box.x0), box.x1), cy - min(max(cy, box.y0), box.y1)) < 12.0
