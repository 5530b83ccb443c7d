"""The demo's closing words, on the small synthetic sweep: the frontier, the card and the failures."""

from __future__ import annotations

import re

import pytest

from embedkit.analysis.tradeoff import tradeoff_and_card
from embedkit.publish import summary
from embedkit.publish.summary import card_lines, failure_lines, frontier_lines, summary_text


@pytest.fixture(scope="module")
def views(frame):
    return tradeoff_and_card(frame)


def test_each_frontier_point_is_said_with_its_latency_score_and_its_fp32_reference(views):
    tradeoff, _ = views
    lines = frontier_lines(tradeoff)
    linux = lines[: next(i for i, line in enumerate(lines[1:], 1) if not line.startswith("  "))]
    assert linux[0].endswith("(machine linux-box):")
    points = tradeoff.points[tradeoff.points["machine_id"] == "linux-box"].set_index("name")
    on = points[points["on_frontier"].astype(bool)]
    assert [line.strip().split(": ")[0] for line in linux[1:]] == on.sort_values("x").index.tolist()
    int8 = next(line for line in linux if line.strip().startswith("all-MiniLM-L6-v2:int8 · CPU:"))
    point, fp32 = points.loc["all-MiniLM-L6-v2:int8 · CPU"], points.loc["all-MiniLM-L6-v2:fp32 · CPU"]
    assert f"{point['x']:.2f} ms P95, {point['quality']:.4f} mean score" in int8
    ratio = fp32["x"] / point["x"]
    assert f"— {ratio:.1f}× faster than fp32 at {point['quality'] - fp32['quality']:+.4f}" in int8
    # L3 has no fp32 point of its own model: no reference is invented for it.
    l3 = next(line for line in linux if "paraphrase-MiniLM-L3-v2" in line)
    assert "than" not in l3


def test_machines_are_named_by_cpu_and_every_card_row_has_a_line(views):
    tradeoff, card = views
    lines = frontier_lines(tradeoff)
    headers = [line for line in lines if not line.startswith("  ")]
    assert len(headers) == tradeoff.points[tradeoff.points["on_frontier"].astype(bool)]["machine_id"].nunique()
    assert all(re.search(r"\(machine [\w-]+\):$", header) for header in headers)
    rows = card_lines(card)
    assert len(rows) == len(card)
    for line, (_, row) in zip(rows, card.iterrows(), strict=True):
        assert line.split()[0] == str(row["verdict"]).split()[0] and str(row["reason"]) in line


def test_a_failure_is_one_line_with_its_reason():
    lines = failure_lines({"quality-x-int8": {"type": "RuntimeError", "message": "made to fail\nTraceback ..."}})
    assert lines == ["  quality-x-int8: RuntimeError: made to fail"]
    native = (
        "onnxruntime cannot load m.onnx: "
        + "std::basic_string<char> " * 40
        + "\nvalidating node X:\nelement types differ (i64, i32).\n\n"
    )
    (line,) = failure_lines({"profile-x": {"type": "ProfileWorkerError", "message": native}})
    head = native.splitlines()[0][: summary.FAILURE_HEAD_CHARS].rstrip()
    assert line == f"  profile-x: ProfileWorkerError: {head} … element types differ (i64, i32)."


def test_the_summary_says_where_the_report_is_and_what_failed(views):
    tradeoff, card = views
    text = summary_text(
        report_html="/r/report.html",
        figures={"pareto": {"png": "/r/figures/pareto.png", "svg": "/r/figures/pareto.svg"}},
        tradeoff=tradeoff,
        card=card,
        failed={},
        skipped={"CoreMLExecutionProvider": "no environment on this machine provides it"},
        wall_seconds=90.0,
    )
    assert text.startswith("Report: /r/report.html\nFigure pareto: /r/figures/pareto.png, /r/figures/pareto.svg")
    assert "Failed runs: 0" in text and "CoreMLExecutionProvider: no environment" in text
    assert "Done in 1.5 min." in text and "\\u" not in text and "{" not in text
