"""Resource limits: a run over its memory ceiling or time budget fails with the limit named; the sweep goes on."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest
from sweep_stand_ins import TWO_VARIANTS_SCORED, stand_ins, sweep_file

from embedkit import cli
from embedkit.errors import UsageError
from embedkit.runs.limits import KernelWatchdog, Limits
from embedkit.runs.sweep import EXECUTED, RUN_FILE, run_sweep

MEMORY_CEILING_MB = 300
BUDGET_SECONDS = 2
# The quality run of variant fp32 holds 1 GiB, well over the ceiling; the profile run of int8 sleeps far
# past the budget. Every other run does nothing, so that it is quick whatever the machine's load.
HOG = 'if variant == "fp32":\n    import time\n    import numpy as np\n    held = np.ones(2**27)\n    time.sleep(60)'
NAP = 'if variant == "int8":\n    import time\n    time.sleep(60)'
SWEEP = (
    f"name: limited\n{TWO_VARIANTS_SCORED}  limits: {{memory_mb: {MEMORY_CEILING_MB}}}\n"
    f"profile:\n  batch_sizes: [1]\n  limits: {{seconds: {BUDGET_SECONDS}}}\n"
)


@pytest.mark.slow
def test_runs_over_their_limits_fail_naming_the_limit_and_the_sweep_goes_on(tmp_path: Path) -> None:
    notebooks = stand_ins(tmp_path / "notebooks", quality=(HOG,), profile=(NAP,))
    summary = run_sweep(sweep_file(tmp_path, SWEEP), notebooks_dir=notebooks, output_root=tmp_path / "results")
    outcomes = {
        (o.stage, o.run_id.split("-tiny-")[1].split("-CPU")[0]): o for o in summary.outcomes if o.stage != "export"
    }
    assert summary.counts() == {"done": 3, "skipped": 0, "failed": 2}
    assert outcomes[("quality", "int8")].state == outcomes[("profile", "fp32")].state == "done"

    hog, nap = outcomes[("quality", "fp32")], outcomes[("profile", "int8")]
    assert hog.error["type"] == nap.error["type"] == "ResourceLimitExceeded"
    assert hog.error["limit"] == "memory_mb" and hog.error["ceiling"] == MEMORY_CEILING_MB
    # The watchdog compares the value it reports: the measured value is over the ceiling, as the message says.
    assert hog.error["measured"] > MEMORY_CEILING_MB
    assert f"memory ceiling of {MEMORY_CEILING_MB} MB exceeded" in hog.error["message"]
    assert f"reached {hog.error['measured']:g} MB" in hog.error["message"]
    assert nap.error["limit"] == "seconds" and nap.error["ceiling"] == BUDGET_SECONDS
    assert BUDGET_SECONDS < nap.error["measured"] < 60  # stopped, not waited out
    assert f"time budget of {BUDGET_SECONDS} s exceeded" in nap.error["message"]
    assert f"stopped after {nap.error['measured']:g} s" in nap.error["message"]
    for outcome in (hog, nap):
        run_dir = Path(summary.directory) / outcome.run_id
        status = json.loads((run_dir / RUN_FILE).read_text())
        assert status["state"] == "failed" and status["error"] == outcome.error
        assert (run_dir / EXECUTED).is_file()
    hog_status = json.loads((Path(summary.directory) / hog.run_id / RUN_FILE).read_text())
    assert hog_status["limits"]["memory_mb"] == MEMORY_CEILING_MB
    assert hog_status["limits"]["peak_rss_mb"] >= hog.error["measured"]


def test_limits_merge_field_by_field() -> None:
    file_limits = Limits(memory_mb=500)
    assert file_limits.overridden_by(Limits(seconds=5)) == Limits(memory_mb=500, seconds=5)
    assert file_limits.overridden_by(Limits(memory_mb=100)) == Limits(memory_mb=100)
    assert not Limits().any() and Limits(seconds=1).any()
    assert Limits(seconds=1).to_dict() == {"seconds": 1}


def test_sweep_command_line_limits_reach_the_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    received = {}

    def fake_sweep(path: Path, **options):
        received.update(options, path=path)
        raise UsageError("stop here")

    monkeypatch.setattr("embedkit.runs.sweep.run_sweep", fake_sweep)
    sweep = tmp_path / "s.yaml"
    sweep.touch()  # the command checks that the file exists before it calls the sweep
    argv = ["sweep", str(sweep), "--memory-mb", "300", "--seconds", "2.5", "--notebooks", str(tmp_path)]
    assert cli.main(argv) == 2
    assert received["path"] == sweep and received["limits"] == Limits(memory_mb=300, seconds=2.5)
    assert received["notebooks_dir"] == tmp_path
    with pytest.raises(SystemExit):
        cli.main(["sweep", "s.yaml", "--seconds", "0"])


@pytest.mark.parametrize("elapsed, reported", [(2.004, None), (2.006, 2.01), (2.5, 2.5)])
def test_the_watchdog_reports_the_elapsed_time_it_compared(
    monkeypatch: pytest.MonkeyPatch, elapsed: float, reported: float | None
) -> None:
    """A run 2.004 s into a 2 s budget is within it as reported (2.0 s): the watchdog never stops a run
    with a measured value that is not over its limit."""
    watchdog = KernelWatchdog(Limits(seconds=BUDGET_SECONDS))
    watchdog._kernel_ready()
    watchdog._cell_started()
    assert watchdog._ready_at is not None
    monkeypatch.setattr("embedkit.runs.limits.time.monotonic", lambda: watchdog._ready_at + elapsed)
    exceeded = watchdog._check(psutil.Process())
    assert (exceeded and exceeded.measured) == reported
    if exceeded is not None:
        assert exceeded.measured > exceeded.ceiling and f"after {reported:g} s" in exceeded.message
