"""Result paths from hostile names: sweeps, models, machines and record ids never lead out of their directory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from records_factory import score_record
from sweep_stand_ins import stand_ins, sweep_file

from embedkit.errors import EmbedkitError
from embedkit.paths import child_path, safe_name
from embedkit.publish import report
from embedkit.results.files import merge_records, read_record, write_record
from embedkit.runs.sweep import run_sweep

HOSTILE = ["../../x", "..", ".", "a/b", "/etc/passwd", "~root", "a\\..\\b", "", " ", ".hidden", "x" * 300, "a\x00b"]


@given(st.text())
def test_a_safe_name_is_one_plain_path_component(name: str) -> None:
    safe = safe_name(name)
    assert "/" not in safe and "\\" not in safe and not safe.startswith(".") and 0 < len(safe) <= 100
    assert safe.isascii() and safe.isprintable()


@pytest.mark.parametrize("name", HOSTILE, ids=repr)
def test_hostile_names_stay_under_the_root(tmp_path: Path, name: str) -> None:
    path = child_path(tmp_path / "results", name, name)
    assert path.resolve().parent.parent == (tmp_path / "results").resolve()


def test_safe_names_are_kept_and_different_names_stay_apart() -> None:
    assert safe_name("all-MiniLM-L6-v2_fp32.v1") == "all-MiniLM-L6-v2_fp32.v1"
    lookalikes = ["a/b", "a_b", "a b", "a:b", "../a_b", safe_name("a/b").replace("+", "-"), "x" * 300, "x" * 301]
    assert len({safe_name(name) for name in lookalikes}) == len(lookalikes)


def test_record_ids_and_machine_ids_cannot_place_a_record_elsewhere(tmp_path: Path) -> None:
    hostile = {**score_record({"STSBenchmark": 0.8}, machine="../../escape"), "record_id": ".."}
    written = write_record(hostile, tmp_path / "records")
    assert written.parent == tmp_path / "records" and read_record(written) == hostile
    [merged] = merge_records([tmp_path / "records"], tmp_path / "merged")
    assert merged.resolve().parent.parent == (tmp_path / "merged").resolve()


def test_report_sweep_names_resolve_under_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDKIT_RESULTS", str(tmp_path / "results"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results" / safe_name("a/b")).mkdir(parents=True)
    assert report.sweep_records_dir("a/b") == tmp_path / "results" / safe_name("a/b")
    with pytest.raises(EmbedkitError, match=re.escape("no results for sweep '../../x'")):
        report.sweep_records_dir("../../x")


@pytest.mark.slow
def test_hostile_model_names_write_only_inside_the_sweep_dir(tmp_path: Path) -> None:
    notebooks = stand_ins(tmp_path / "notebooks", export=("pass",))
    config = sweep_file(tmp_path, 'name: hostile\nmodels:\n  - name: "../../x"\n  - name: "a/b"\nproviders: [CPU]\n')
    before = set(tmp_path.rglob("*"))
    summary = run_sweep(config, notebooks_dir=notebooks, output_root=tmp_path / "results")
    assert summary.counts()["done"] == 2
    sweep_dir = (tmp_path / "results" / "hostile").resolve()
    created = set(tmp_path.rglob("*")) - before
    assert created and all(
        path.resolve() == sweep_dir or sweep_dir in path.resolve().parents
        for path in created
        if path != tmp_path / "results"
    )
    assert {path.parent for path in sweep_dir.glob("*/run.json")} == set(sweep_dir.iterdir())
