"""`embedkit report` end to end on synthetic records: 04_tradeoff.ipynb under papermill, its scraps, HTML, figures."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import scrapbook
from records_factory import SMALL_SWEEP_FRONTIER, small_sweep

from embedkit import cli, defaults
from embedkit.errors import EmbedkitError
from embedkit.publish import report
from embedkit.runs.execution import require_kernel

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]], dict[str, Any]]:
    """A synthetic sweep reported through the CLI, as `embedkit --json report DIR` prints it."""
    require_kernel(defaults.KERNEL)
    sweep_dir = tmp_path_factory.mktemp("results") / "synthetic"
    made = small_sweep(sweep_dir)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli.main(["--json", "report", str(sweep_dir)]) == 0
    return sweep_dir, made, json.loads(printed.getvalue())


def test_report_writes_notebook_html_and_figures_in_the_sweep_dir(published) -> None:
    sweep_dir, _, result = published
    assert result["sweep"] == "synthetic" and result["records_dir"] == str(sweep_dir)
    assert result["notebook"] == str(sweep_dir / "04_tradeoff.ipynb") and Path(result["notebook"]).is_file()
    assert result["html"] == str(sweep_dir / "report.html")
    assert set(result["figures"]) == {"pareto", "stages", "latency_cdf", "placement"}
    for name, paths in result["figures"].items():
        assert paths == {fmt: str(sweep_dir / "figures" / f"{name}.{fmt}") for fmt in ("png", "svg")}
        assert Path(paths["png"]).read_bytes().startswith(b"\x89PNG") and Path(paths["svg"]).read_text().startswith(
            "<?xml"
        )


def test_report_scraps_hold_the_answer(published) -> None:
    _, made, result = published
    scraps = {name: scrap.data for name, scrap in scrapbook.read_notebook(result["notebook"]).scraps.items()}
    assert scraps["n_points"] == result["n_points"] == 8
    assert scraps["frontier"] == result["frontier"] == SMALL_SWEEP_FRONTIER
    assert scraps["tasks"] == ["BIOSSES", "SICK-R", "STSBenchmark", "SciFact"]
    assert scraps["figures"] == result["figures"]
    assert {machine["machine_id"] for machine in scraps["machines"]} == {"linux-box", "mac-m2"}
    card = {(row["machine_id"], row["model"], row["variant"], row["provider"]): row for row in scraps["decision_card"]}
    assert len(card) == 8 and {row["verdict"] for row in card.values()} == {"GO"}
    mac_int8 = card[("mac-m2", "all-MiniLM-L6-v2", "int8", "CPUExecutionProvider")]
    assert mac_int8["profile_record_id"] == made["mac-int8"]["record_id"]
    profile_ids = {
        record["record_id"] for name, record in made.items() if record["kind"] == "profile" and "b32" not in name
    }
    assert {point["profile_record_id"] for point in scraps["points"]} == profile_ids
    assert all(point["profile_command"].startswith("embedkit profile ") for point in scraps["points"])


def test_html_is_self_contained_names_every_record_and_hides_the_code(published) -> None:
    _, _, result = published
    html = Path(result["html"]).read_text(encoding="utf-8")
    assert "<script" not in html and not re.search(r"""(src|href)=["']https?:""", html)
    assert html.count("data:image/png;base64,") >= 4
    scraps = scrapbook.read_notebook(result["notebook"]).scraps
    for point in scraps["points"].data:
        for key in ("profile_record_id", "score_record_id", "machine_id"):
            assert point[key] in html
        assert point["profile_command"] in html
    assert "import scrapbook" not in html and "check_parameters" not in html  # inputs hidden
    assert "application/scrapbook" not in html


def test_a_bad_parameter_stops_the_notebook_naming_it(tmp_path: Path, published) -> None:
    sweep_dir = published[0]
    with pytest.raises(EmbedkitError) as caught:
        report.execute_tradeoff(
            tmp_path / "bad.ipynb", {"results_dir": str(sweep_dir), "metric": "fast", "batch_size": 0}
        )
    message = str(caught.value)
    assert "ParameterError" in message and "'metric' = 'fast'" in message and "'batch_size' = 0" in message
    assert (tmp_path / "bad.ipynb").is_file()  # the executed notebook keeps the error for reading


def test_an_unknown_sweep_is_a_clear_cli_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("EMBEDKIT_RESULTS", str(tmp_path))
    (tmp_path / "default").mkdir()
    assert cli.main(["--json", "report", "nightly"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert "no results for sweep 'nightly'" in error["message"] and "default" in error["message"]
