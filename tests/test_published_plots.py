"""Published quality in the tradeoff, the plot, the card and the report: a twin's fp32 point takes its model's
published quality, drawn open and said so; its other variants have no quality and stay off the quality axis."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from records_factory import MINILM_SCORES, profile_record, published_record, score_record, shifted

from embedkit.analysis.decision import ladder_card
from embedkit.analysis.tradeoff import tradeoff_and_card
from embedkit.publish import plots, report
from embedkit.results.files import write_record
from embedkit.results.tables import load_frame

BGE = "bge-small-en-v1.5"
BGE_SCORES = shifted(MINILM_SCORES, 0.03, (0.01, -0.01, 0.0, 0.0))


@pytest.fixture(scope="module")
def ladder_frame(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    directory: Path = tmp_path_factory.mktemp("ladder")
    records = [
        profile_record(8.0, variant="fp32", seed=1),
        score_record(MINILM_SCORES, variant="fp32"),
        profile_record(16.0, model=BGE, variant="fp32", seed=2, random_weights=True),
        profile_record(9.0, model=BGE, variant="int8-pc", seed=3, random_weights=True),
        # Published results may hold more tasks than were measured: only the common ones are averaged.
        published_record({**BGE_SCORES, "Banking77Classification": 0.85}, model=BGE, repo_id="BAAI/bge-small-en-v1.5"),
    ]
    for record in records:
        write_record(record, directory)
    return load_frame(directory)


def test_a_twins_fp32_point_takes_the_published_quality_and_its_int8_has_none(ladder_frame: pd.DataFrame) -> None:
    tradeoff, card = tradeoff_and_card(ladder_frame)
    assert tradeoff.tasks == tuple(sorted(MINILM_SCORES))
    points = tradeoff.points.set_index("name")
    assert set(points.index) == {"all-MiniLM-L6-v2:fp32 · CPU", f"{BGE}:fp32 · CPU"}  # no twin int8-pc point
    twin = points.loc[f"{BGE}:fp32 · CPU"]
    assert twin["quality_source"] == "published" and twin["quality"] == pytest.approx(sum(BGE_SCORES.values()) / 4)
    assert points.loc["all-MiniLM-L6-v2:fp32 · CPU", "quality_source"] == "measured"
    assert not tradeoff.borrowed_quality.any()
    int8 = card[(card["model"] == BGE) & (card["variant"] == "int8-pc")].iloc[0]
    assert pd.isna(int8["quality"]) and "random-weight twin: no quality" in int8["reason"]
    fp32 = card[(card["model"] == BGE) & (card["variant"] == "fp32")].iloc[0]
    assert "quality: published, mteb results external" in fp32["reason"]
    assert report.latency_only(card)["variant"].tolist() == ["int8-pc"]


def test_the_plot_draws_published_points_open_and_says_so(ladder_frame: pd.DataFrame) -> None:
    tradeoff, _ = tradeoff_and_card(ladder_frame)
    figure = plots.plot_pareto(tradeoff)
    by_gid = {line.get_gid(): line for ax in figure.axes for line in ax.get_lines() if line.get_gid()}
    twin = tradeoff.points[tradeoff.published_quality].iloc[0]
    measured = tradeoff.points[~tradeoff.published_quality].iloc[0]
    assert by_gid[twin["profile_record_id"]].get_markerfacecolor() == "none"
    assert by_gid[measured["profile_record_id"]].get_markerfacecolor() != "none"
    assert (
        by_gid[twin["profile_record_id"]].get_markeredgewidth()
        > by_gid[measured["profile_record_id"]].get_markeredgewidth()
    )
    caption = figure.get_supxlabel()
    assert "quality: published, mteb results external; latency: random-weight twin measured here" in " ".join(
        caption.split()
    )
    legend_texts = [" ".join(text.get_text().split()) for text in figure.legends[0].get_texts()]
    assert any(text.startswith("quality: published") for text in legend_texts)


def test_the_ladder_card_reads_the_rungs_in_the_plans_order(ladder_frame: pd.DataFrame) -> None:
    _, card = tradeoff_and_card(ladder_frame)
    ladder = ladder_card(card)
    assert ladder["rung"].tolist() == [1, 2, 3]
    assert ladder["verdict"].tolist() == ["GO", "GO", "NO DATA"]
    assert ladder.loc[1, "best"] == f"{BGE}:int8-pc · CPU"  # lowest P95 among the rung's GO rows
