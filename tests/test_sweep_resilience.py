"""Sweeps that meet trouble: killed mid-run, corrupt files on disk, runs that fail on bad parameters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from sweep_stand_ins import WRITE_SCORE_RECORD, stand_ins, sweep_file

from embedkit.paths import project_file
from embedkit.results.files import QuarantineWarning, load_record_set, read_record
from embedkit.runs.sweep import EXECUTED, PARTIAL, RUN_FILE, check_run, run_sweep

RESUMABLE = """
name: resumable
models:
  - name: tiny
    variants: [fp32, int8]
providers: [CPU]
profile:
  batch_sizes: [1]
"""


def _hold_while(hold: Path) -> str:
    """A cell that, for variant int8, says it has started (with its pid) and then waits while `hold` exists."""
    return (
        f'if variant == "int8":\n    import os, time\n    from pathlib import Path\n'
        f'    Path(out_dir, "started").write_text(str(os.getpid()))\n'
        f"    while Path({str(hold)!r}).exists():\n        time.sleep(0.1)"
    )


def _sweep_command(config: Path, notebooks: Path) -> list[str]:
    embedkit = Path(sys.executable).parent / "embedkit"
    return [str(embedkit), "--json", "sweep", str(config), "--notebooks", str(notebooks)]


def _wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"gave up after {seconds} s waiting for {what}")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _assert_every_file_whole(sweep_dir: Path) -> None:
    """Every record, run.json and executed notebook in the sweep reads back: nothing torn."""
    for path in sweep_dir.rglob("*.record.json"):
        read_record(path)
    for path in sweep_dir.rglob(RUN_FILE):
        json.loads(path.read_text())
    for path in sweep_dir.rglob(EXECUTED):
        nbformat.read(path, as_version=4)


@pytest.mark.slow
def test_a_sweep_killed_mid_run_resumes_redoing_only_what_is_unfinished_or_corrupt(tmp_path: Path) -> None:
    hold = tmp_path / "hold"
    hold.touch()
    notebooks = stand_ins(tmp_path / "notebooks", profile=(WRITE_SCORE_RECORD, _hold_while(hold)))
    config = sweep_file(tmp_path, RESUMABLE)
    env = {**os.environ, "EMBEDKIT_RESULTS": str(tmp_path / "results")}
    sweep_dir = tmp_path / "results" / "resumable"

    sweep = subprocess.Popen(
        _sweep_command(config, notebooks),
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        started = _wait_for(
            lambda: next(sweep_dir.glob("profile-tiny-int8-*/started"), None) or sweep.poll(),
            120,
            "the int8 profile run to start",
        )
        assert isinstance(started, Path), f"the sweep ended early: {sweep.stderr.read().decode()}"
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)  # the sweep process and everything in its group
        sweep.wait()
    # The kernel has its own session; it notices its parent is gone and exits (ipykernel's parent poller).
    _wait_for(lambda: _gone(int(started.read_text())), 15, "the killed run's kernel to exit")

    killed = started.parent
    assert not (killed / RUN_FILE).exists() and not (killed / EXECUTED).exists() and (killed / PARTIAL).exists()
    assert len(list(killed.glob("*.record.json"))) == 1  # written before the kill, whole
    _assert_every_file_whole(sweep_dir)
    export_dir, fp32_dir = next(sweep_dir.glob("export-*")), next(sweep_dir.glob("profile-tiny-fp32-*"))
    assert {path.parent for path in sweep_dir.glob(f"*/{RUN_FILE}")} == {export_dir, fp32_dir}
    # Damage no atomic writer makes, as another tool or a disk might: a torn record of a finished run.
    fp32_record = next(fp32_dir.glob("*.record.json"))
    torn = fp32_record.read_bytes()[:100]
    fp32_record.write_bytes(torn)
    export_status = (export_dir / RUN_FILE).read_bytes()

    hold.unlink()
    rerun = subprocess.run(_sweep_command(config, notebooks), env=env, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["counts"] == {"done": 2, "skipped": 1, "failed": 0}
    assert {run["run_id"] for run in summary["runs"] if run["state"] == "skipped"} == {export_dir.name}
    assert (export_dir / RUN_FILE).read_bytes() == export_status  # finished and whole: not redone
    [entry] = summary["quarantined"]
    assert entry["path"] == str(fp32_record) and ".corrupt-" in entry["moved_to"]
    assert Path(entry["moved_to"]).read_bytes() == torn
    assert f"quarantined corrupt file {fp32_record}" in rerun.stderr
    assert len(list(fp32_dir.glob("*.record.json"))) == 1  # the redone run's record beside the quarantined one
    # The killed run was redone from scratch: one record (the new attempt's), a published notebook.
    assert len(list(killed.glob("*.record.json"))) == 1 and (killed / EXECUTED).is_file()
    assert not (killed / PARTIAL).exists() and json.loads((killed / RUN_FILE).read_text())["state"] == "done"
    _assert_every_file_whole(sweep_dir)
    loaded = load_record_set(sweep_dir)
    assert len(loaded.records) == 2 and loaded.quarantined == []


def _done_run(run_dir: Path, records: list[str]) -> None:
    run_dir.mkdir()
    (run_dir / RUN_FILE).write_text(json.dumps({"state": "done", "records": records}))


def test_a_corrupt_run_file_is_quarantined_and_the_run_counted_unfinished(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / RUN_FILE).write_bytes(b'{"state": "done", "reco')
    with pytest.warns(QuarantineWarning, match="run.json"):
        complete, quarantined = check_run(run_dir)
    assert not complete and len(quarantined) == 1
    assert not (run_dir / RUN_FILE).exists()
    assert Path(quarantined[0].moved_to).read_bytes() == b'{"state": "done", "reco'
    assert check_run(run_dir) == (False, [])  # moved aside: found once


def test_a_corrupt_listed_record_is_quarantined_and_the_run_counted_unfinished(tmp_path: Path) -> None:
    _done_run(tmp_path / "run", ["a.record.json"])
    (tmp_path / "run" / "a.record.json").write_bytes(b"\x00\x01")
    with pytest.warns(QuarantineWarning, match="a.record.json"):
        complete, quarantined = check_run(tmp_path / "run")
    assert not complete and [Path(q.path).name for q in quarantined] == ["a.record.json"]
    moved = [path.name for path in (tmp_path / "run").iterdir() if ".corrupt-" in path.name]
    assert [name.split(".corrupt-")[0] for name in moved] == ["a.record.json"]


@pytest.mark.slow
def test_runs_failing_on_a_bad_model_or_parameter_are_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    """The real export and quality notebooks reject an unknown model and an unknown task."""
    notebooks = stand_ins(tmp_path / "notebooks")
    for stage in ("01_export.ipynb", "03_quality.ipynb"):
        (notebooks / stage).unlink()
        (notebooks / stage).symlink_to(project_file("notebooks", stage))
    config = sweep_file(
        tmp_path,
        "name: misconfigured\nmodels:\n  - name: no-such-model\n    variants: [fp32]\n"
        "providers: [CPU]\nquality:\n  tasks: [NoSuchTask]\n",
    )
    summary = run_sweep(config, notebooks_dir=notebooks, output_root=tmp_path / "results", workers=1)
    by_stage = {outcome.stage: outcome for outcome in summary.outcomes}
    # The export failed first; the quality run still ran, and failed on its own account.
    assert summary.counts() == {"done": 0, "skipped": 0, "failed": 2}
    assert by_stage["export"].error["type"] == "UnknownModelError"
    assert "unknown model 'no-such-model'" in by_stage["export"].error["message"]
    assert by_stage["quality"].error["type"] == "ParameterError"
    assert by_stage["quality"].error["message"].startswith("parameter 'tasks' = ['NoSuchTask']")
    for outcome in by_stage["export"], by_stage["quality"]:
        status = json.loads((Path(summary.directory) / outcome.run_id / RUN_FILE).read_text())
        assert status["state"] == "failed" and status["error"] == outcome.error
