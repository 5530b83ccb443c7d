"""The scale-out path for real: a dask scheduler and two dask workers started by their own CLI on
loopback, a sweep whose quality runs go to them (`run_sweep(..., scheduler=ADDRESS)`, what
`embedkit sweep --scheduler` does), and a worker killed while its run is in flight: that run is
retried on the other worker or recorded as failed, never lost."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
import scrapbook
from sweep_stand_ins import TWO_VARIANTS_SCORED, WRITE_SCORE_RECORD, stand_ins, sweep_file

from embedkit.results.files import read_record
from embedkit.runs.config import load_config
from embedkit.runs.plan import expand
from embedkit.runs.sweep import RUN_FILE, SweepSummary, run_sweep

pytestmark = pytest.mark.slow

DASK = Path(sys.executable).parent / "dask"
# Generous: the machine may be busy; every wait polls for the state it needs and ends as soon as it holds.
STARTUP_SECONDS = 120
SWEEP_SECONDS = 600
# The kernel's parent is the dask worker process that runs the quality run.
GLUE_PARENT = 'import os\nimport scrapbook as sb\nsb.glue("parent_pid", os.getppid())'
SWEEP = "name: scale-out\n" + TWO_VARIANTS_SCORED

T = TypeVar("T")


def _wait_for(predicate: Callable[[], T | None], seconds: float, what: str) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"gave up after {seconds} s waiting for {what}")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and every process of its session (`dask worker` runs a nanny and its worker)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _kill(pid: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).kill()


@dataclass
class Cluster:
    address: str
    workers: list[subprocess.Popen[bytes]]
    kernels: list[int] = field(default_factory=list)  # kernels the test orphans, killed at the end

    def worker_pids(self) -> set[int]:
        """The pids of the live worker processes (each `dask worker` is a nanny with one worker child)."""
        pids = set()
        for worker in self.workers:
            if worker.poll() is None:
                pids |= {child.pid for child in psutil.Process(worker.pid).children(recursive=True)}
        return pids

    def worker_running(self, pid: int) -> subprocess.Popen[bytes]:
        """The `dask worker` whose process tree holds process `pid`."""
        ancestors = {parent.pid for parent in psutil.Process(pid).parents()}
        (worker,) = [worker for worker in self.workers if worker.pid in ancestors]
        return worker


def _scheduler_address(scheduler_file: Path) -> str | None:
    try:
        return str(json.loads(scheduler_file.read_text())["address"])
    except (OSError, ValueError, KeyError):  # not written yet, or written halfway
        return None


@pytest.fixture()
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """`dask scheduler` on a free loopback port and two `dask worker --nthreads 1`, all stopped afterwards.

    Parametrized indirectly, the parameter is the scheduler's `allowed-failures` (dask's default when
    not): how many times a task's worker may die before dask gives up on it with KilledWorker."""
    allowed_failures = getattr(request, "param", None)
    scheduler_env = dict(os.environ)
    if allowed_failures is not None:
        scheduler_env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = str(allowed_failures)
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, *arguments: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(logs / f"{name}.log", "wb") as log:
            process = subprocess.Popen([str(DASK), *arguments], cwd=tmp_path, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        processes.append(process)
        return process

    started = Cluster("", [])
    try:
        scheduler_file = tmp_path / "scheduler.json"
        # Port 0: the OS picks a free port; the scheduler file says which.
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
              "--scheduler-file", str(scheduler_file), env=scheduler_env)  # fmt: skip
        started.address = _wait_for(lambda: _scheduler_address(scheduler_file), STARTUP_SECONDS, "the scheduler")
        started.workers = [
            start(
                name,
                "worker",
                started.address,
                "--nthreads",
                "1",
                "--name",
                name,
                "--no-dashboard",
                "--local-directory",
                str(tmp_path / name),
            )
            for name in ("worker-0", "worker-1")
        ]
        from dask.distributed import Client

        with Client(started.address, timeout=STARTUP_SECONDS) as client:
            client.wait_for_workers(2, timeout=STARTUP_SECONDS)
        yield started
    finally:
        for process in reversed(processes):
            _kill_group(process)
        for pid in started.kernels:
            _kill(pid)


def _expected_runs(config: Path) -> set[str]:
    return {run.run_id for run in expand(load_config(config), ["CPU"])}


def _assert_done_with_a_valid_record(summary: SweepSummary, outcome: Any) -> dict[str, Any]:
    run_dir = Path(summary.directory) / outcome.run_id
    assert outcome.state == "done" and json.loads((run_dir / RUN_FILE).read_text())["state"] == "done"
    (listed,) = outcome.records
    read_record(run_dir / listed)  # validates
    return {name: scrap.data for name, scrap in scrapbook.read_notebook(str(run_dir / "executed.ipynb")).scraps.items()}


def test_quality_runs_go_to_the_workers_of_a_cluster_started_by_its_cli(tmp_path: Path, cluster: Cluster) -> None:
    notebooks = stand_ins(tmp_path / "notebooks", quality=(GLUE_PARENT, WRITE_SCORE_RECORD))
    config = sweep_file(tmp_path, SWEEP)
    summary = run_sweep(config, scheduler=cluster.address, notebooks_dir=notebooks, output_root=tmp_path / "results")
    assert summary.counts() == {"done": 3, "skipped": 0, "failed": 0}
    assert {outcome.run_id for outcome in summary.outcomes} == _expected_runs(config)
    worker_pids = cluster.worker_pids()
    for outcome in (o for o in summary.outcomes if o.stage == "quality"):
        scraps = _assert_done_with_a_valid_record(summary, outcome)
        assert scraps["parent_pid"] in worker_pids  # ran on a worker, not in this process
        # Another cluster's cores are unknown here: no share of them is passed to the run; it scores into
        # the sweep's shared mteb tree.
        execution = json.loads((Path(summary.directory) / outcome.run_id / RUN_FILE).read_text())["execution"]
        assert execution == {"shared_results_dir": str(Path(summary.directory) / "mteb")}


def _hold_first_attempt(claim: Path, hold: Path) -> str:
    """A cell that, for variant int8, claims the first attempt (its kernel's pid in `claim`) and waits
    while `hold` exists; a later attempt finds the claim taken and goes on."""
    return (f'if variant == "int8":\n    import os, time\n    from pathlib import Path\n'
            f'    if not Path({str(claim)!r}).exists():\n'
            f'        Path({str(claim)!r}).write_text(str(os.getpid()))\n'
            f'        while Path({str(hold)!r}).exists():\n            time.sleep(0.1)')  # fmt: skip


def _state(sweep_dir: Path, variant: str) -> str | None:
    """The state the quality run of `variant` has written to its run.json (None before it has)."""
    found = list(sweep_dir.glob(f"quality-tiny-{variant}-*/{RUN_FILE}"))
    return str(json.loads(found[0].read_text())["state"]) if found else None


def _claimed_pid(claim: Path) -> int | None:
    try:
        return int(claim.read_text())
    except (OSError, ValueError):  # not there yet, or written halfway
        return None


@pytest.mark.parametrize("cluster", [None, 0], ids=["retried", "given-up"], indirect=True)
def test_a_run_whose_worker_is_killed_is_retried_or_recorded_failed_never_lost(
    tmp_path: Path, cluster: Cluster, request: pytest.FixtureRequest
) -> None:
    """With dask's default allowed-failures the run is retried on the worker still alive and done; with
    none allowed, dask gives up on it and the sweep records it failed with dask's KilledWorker."""
    claim, hold = tmp_path / "claimed", tmp_path / "hold"
    hold.touch()
    notebooks = stand_ins(tmp_path / "notebooks", quality=(_hold_first_attempt(claim, hold), GLUE_PARENT,
                                                           WRITE_SCORE_RECORD))  # fmt: skip
    config = sweep_file(tmp_path, SWEEP)
    sweep_dir = tmp_path / "results" / "scale-out"
    pool = ThreadPoolExecutor(1)
    sweeping = pool.submit(run_sweep, config, scheduler=cluster.address, notebooks_dir=notebooks,
                           output_root=tmp_path / "results")  # fmt: skip
    try:
        kernel = _wait_for(lambda: _claimed_pid(claim) or (sweeping.done() and -1), SWEEP_SECONDS,
                           "the int8 quality run to start")  # fmt: skip
        assert kernel != -1, f"the sweep ended before the run started: {sweeping.result()}"
        cluster.kernels.append(kernel)
        # The other run is left to finish first, so that the kill is the int8 run's alone.
        fp32 = _wait_for(lambda: _state(sweep_dir, "fp32"), SWEEP_SECONDS, "the fp32 quality run to finish")
        assert fp32 == "done", json.loads(next(sweep_dir.glob(f"quality-tiny-fp32-*/{RUN_FILE}")).read_text())
        killed = cluster.worker_running(kernel)
        _kill_group(killed)
        _kill(kernel)  # the kernel has its own session: it outlived its worker
    finally:
        hold.unlink()  # whatever happened, nothing holds the sweep any longer
        pool.shutdown(wait=False)
    summary = sweeping.result(timeout=SWEEP_SECONDS)

    assert {outcome.run_id for outcome in summary.outcomes} == _expected_runs(config)  # none lost
    by_variant = {o.run_id.split("-tiny-")[1].split("-CPU")[0]: o for o in summary.outcomes if o.stage == "quality"}
    _assert_done_with_a_valid_record(summary, by_variant["fp32"])
    rerun = by_variant["int8"]
    if request.node.callspec.params["cluster"] is None:  # dask retries: done on the worker still alive
        (survivor,) = [worker for worker in cluster.workers if worker is not killed]
        scraps = _assert_done_with_a_valid_record(summary, rerun)
        assert scraps["parent_pid"] in {child.pid for child in psutil.Process(survivor.pid).children(recursive=True)}
    else:
        status = json.loads((Path(summary.directory) / rerun.run_id / RUN_FILE).read_text())
        assert rerun.state == status["state"] == "failed" and status["error"] == rerun.error
        assert rerun.error is not None and rerun.error["type"] == "KilledWorker"
