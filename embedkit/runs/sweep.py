"""Sweeps: a YAML file expanded into papermill runs of the notebooks, resumable, parallel where honest.

A sweep runs in three phases. Exports come first (later runs need the files). Quality runs go to a
dask cluster in parallel: their numbers do not depend on timing. Profile runs go last, one at a time,
so nothing else competes for the cores while latency is measured.

Each run owns `results/<sweep>/<run-id>/` (run-id hashes the run's notebook and parameters; both path
parts are safe names, whatever the sweep and model are called): the executed notebook, the records it
wrote, and `run.json`, which says done or failed (with the exception) and lists the records. A run dir
holds one attempt: starting a run clears what an earlier attempt left there. Every file is published
atomically (embedkit.runs.execution writes the notebook to a hidden partial file), so a sweep killed
at any moment leaves no torn file. A rerun skips runs whose `run.json` says done and whose records all
read back valid; `force` redoes everything. A run.json or listed record that is not JSON is
quarantined (moved aside, warned about, listed in the summary) and its run redone.

A run may have limits (`limits: {memory_mb, seconds}` at the top of the file, in `profile` or
`quality`, or on the command line): the run that crosses one fails with the limit and the measured
value in its run.json; the sweep goes on (see embedkit.runs.limits for how they are enforced).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from tqdm import tqdm

from embedkit import defaults
from embedkit.errors import CorruptRecordError, RecordError
from embedkit.paths import child_path, project_files_dir, results_dir
from embedkit.results.files import (
    Quarantined,
    is_quarantined,
    quarantine,
    read_record,
    write_text_atomically,
)
from embedkit.runs.config import load_config
from embedkit.runs.execution import execute_notebook, partial_path
from embedkit.runs.limits import MEMORY_DIGITS, NO_LIMITS, KernelWatchdog, Limits
from embedkit.runs.plan import NOTEBOOKS, PHASES, Run, expand
from embedkit.system import utc_now

RUN_FILE = "run.json"
EXECUTED = "executed.ipynb"
PARTIAL = partial_path(Path(EXECUTED)).name
SHARED_RESULTS = "mteb"  # the sweep's mteb results tree, beside its run dirs


@dataclass
class RunOutcome:
    run_id: str
    stage: str
    state: str  # done | failed | skipped
    records: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None


# --- one run ------------------------------------------------------------------------------------


def check_run(run_dir: Path) -> tuple[bool, list[Quarantined]]:
    """Whether the run finished and every record it lists reads back valid; the corrupt files found on
    the way (run.json, records) are quarantined and returned, and make the run incomplete."""
    status_file = run_dir / RUN_FILE
    if not status_file.is_file():
        return False, []
    try:
        status = json.loads(status_file.read_text(encoding="utf-8"))
    except ValueError as error:  # UnicodeDecodeError included
        return False, [quarantine(status_file, f"not JSON: {error}")]
    if not isinstance(status, dict):
        return False, [quarantine(status_file, f"expected a JSON object, found {type(status).__name__}")]
    if status.get("state") != "done":
        return False, []
    complete, quarantined = True, []
    for listed in status.get("records", []):
        try:
            read_record(run_dir / listed)
        except CorruptRecordError as error:
            complete = False
            quarantined.append(quarantine(run_dir / listed, str(error.__cause__ or error)))
        except (RecordError, OSError):
            complete = False
    return complete, quarantined


def execute_run(run: Run, run_dir: Path, notebooks_dir: Path, execution: Mapping[str, Any] | None = None) -> RunOutcome:
    """One papermill execution; never raises for a failing notebook (the failure is the outcome).

    `execution`: notebook parameters that say how this machine runs the run, not what it measures
    (e.g. its share of the cores): not part of the run id, recorded in the run file.
    """
    execution = dict(execution or {})
    _clear_previous_attempt(run_dir)
    started = utc_now()
    outcome = RunOutcome(run.run_id, run.stage, "done")
    with KernelWatchdog(run.limits) as watchdog:
        try:
            execute_notebook(notebooks_dir / run.notebook, run_dir / EXECUTED,
                             {**run.parameters, **execution, "out_dir": str(run_dir)},
                             defaults.KERNEL, **watchdog.papermill_options())  # fmt: skip
        except Exception as exc:  # papermill's PapermillExecutionError carries the cell's exception
            outcome.state, outcome.error = "failed", error_of(exc)
    if watchdog.exceeded is not None:  # whatever else went wrong, the limit is why the run stopped
        outcome.state, outcome.error = "failed", watchdog.exceeded.to_error()
    elif outcome.state == "done":
        try:
            outcome.records = _written_records(run_dir)
        except Exception as exc:  # a run that wrote an invalid record did not succeed
            outcome.state, outcome.error = "failed", error_of(exc)
    _write_status(run, run_dir, outcome, execution, started, watchdog.peak_rss_mb)
    return outcome


def _write_status(run: Run, run_dir: Path, outcome: RunOutcome, execution: Mapping[str, Any],
                  started: str | None = None, peak_rss_mb: float | None = None) -> None:  # fmt: skip
    """The run's run.json: its outcome, what it ran with, when, and its limits with the peak memory seen."""
    status = {**asdict(outcome), "notebook": run.notebook, "parameters": run.parameters,
              "execution": dict(execution), "kernel": defaults.KERNEL, "executed_notebook": EXECUTED,
              "started_at": started, "finished_at": utc_now()}  # fmt: skip
    if run.limits.any():
        status["limits"] = {
            **run.limits.to_dict(),
            "peak_rss_mb": None if peak_rss_mb is None else round(peak_rss_mb, MEMORY_DIGITS),
        }
    write_text_atomically(run_dir / RUN_FILE, json.dumps(status, indent=1, sort_keys=True))


def _clear_previous_attempt(run_dir: Path) -> None:
    """Empty the run dir but for quarantined files: an earlier attempt's records (a killed run's, or a
    forced rerun's predecessor) must not sit beside the new attempt's as if they were its results."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for entry in run_dir.iterdir():
        if is_quarantined(entry):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _written_records(run_dir: Path) -> list[str]:
    """The records the executed notebook says it wrote (its `records` scrap), each read back valid."""
    import scrapbook

    scraps = scrapbook.read_notebook(str(run_dir / EXECUTED)).scraps
    paths = [Path(p) for p in (scraps["records"].data if "records" in scraps else [])]
    for path in paths:
        read_record(path)
    return [str(p.relative_to(run_dir)) if p.is_relative_to(run_dir) else str(p) for p in paths]


def error_of(exc: BaseException) -> dict[str, str]:
    """The `error` of a failed run: the exception's type and message (a notebook cell's, for papermill's)."""
    return {"type": getattr(exc, "ename", type(exc).__name__), "message": str(getattr(exc, "evalue", exc))[:2000]}


# --- the sweep ----------------------------------------------------------------------------------


@dataclass
class SweepSummary:
    sweep: str
    directory: str
    outcomes: list[RunOutcome]
    skipped_providers: dict[str, str]
    quarantined: list[Quarantined] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {state: sum(o.state == state for o in self.outcomes) for state in ("done", "skipped", "failed")}

    def to_dict(self) -> dict[str, Any]:
        return {"sweep": self.sweep, "directory": self.directory, "counts": self.counts(),
                "skipped_providers": self.skipped_providers, "runs": [asdict(o) for o in self.outcomes],
                "quarantined": [entry.to_dict() for entry in self.quarantined]}  # fmt: skip


Interim = Callable[["SweepSummary", list[Run]], None]


def run_sweep(
    config_path: Path,
    *,
    force: bool = False,
    scheduler: str | None = None,
    workers: int = 2,
    notebooks_dir: Path | None = None,
    output_root: Path | None = None,
    limits: Limits = NO_LIMITS,
    after_first_round: Interim | None = None,
) -> SweepSummary:
    """Every run of the sweep file at `config_path` that is not complete yet (all of them with `force`).

    `notebooks_dir`: the stage notebooks (default: embedkit's own); `output_root`: the directory that
    holds `<sweep>/` (default: embedkit.paths.results_dir()); `scheduler`: a dask scheduler's address
    for the quality runs (default: a LocalCluster of `workers` processes). `after_first_round`: called
    with the summary so far and the runs still to come, when round 1 is over and round 2 has work left
    (e.g. to publish a first report).
    """
    config = load_config(config_path)
    notebooks = notebooks_dir or project_files_dir("notebooks")
    providers, skipped = available_providers(config)
    sweep_dir = child_path(output_root or results_dir(), config["name"])
    runs = expand(config, providers, limits)
    outcomes: dict[str, RunOutcome] = {}
    quarantined: list[Quarantined] = []
    pending = []
    for run in runs:
        run_dir = _run_dir(sweep_dir, run)
        complete, found = (False, []) if force else check_run(run_dir)
        quarantined += found
        if complete:
            outcomes[run.run_id] = RunOutcome(run.run_id, run.stage, "skipped", _listed_records(run_dir))
        else:
            pending.append(run)

    def summary() -> SweepSummary:
        done = [outcomes[run.run_id] for run in runs if run.run_id in outcomes]
        return SweepSummary(config["name"], str(sweep_dir), done, skipped, quarantined)

    for number in sorted({run.round for run in runs}):
        later = [run for run in pending if run.round > number]
        _run_round([run for run in pending if run.round == number], outcomes, sweep_dir, notebooks, scheduler,
                   workers, force)  # fmt: skip
        if number == 1 and later and after_first_round is not None:
            after_first_round(summary(), later)
    return summary()


def _run_round(pending: list[Run], outcomes: dict[str, RunOutcome], sweep_dir: Path, notebooks: Path,
               scheduler: str | None, workers: int, force: bool) -> None:  # fmt: skip
    """One round's runs, phase by phase, each phase with its progress bar; outcomes go into `outcomes`."""
    by_stage = {stage: [r for r in pending if r.stage == stage] for stage in NOTEBOOKS}
    for stage, phase in PHASES.items():
        with phase_bar(phase, len(by_stage[stage])) as progress:
            if stage == "quality":  # on the cluster, side by side
                runs_done = _parallel(
                    by_stage[stage], sweep_dir, notebooks, scheduler, workers, progress, reuse_results=not force
                )  # a forced rerun scores everything again
            else:  # one at a time: an export's files are needed later; a profile has the cores to itself
                runs_done = [_serial(run, sweep_dir, notebooks, progress) for run in by_stage[stage]]
            outcomes.update((outcome.run_id, outcome) for outcome in runs_done)


def _run_dir(sweep_dir: Path, run: Run) -> Path:
    return child_path(sweep_dir, run.run_id)


def phase_bar(phase: str, total: int) -> tqdm:
    """One progress bar per phase (exports, scoring, profiles, report), on stderr; none for an empty phase."""
    return tqdm(total=total, desc=f"{phase:<8}", unit="run", disable=not total, dynamic_ncols=True)


def _serial(run: Run, sweep_dir: Path, notebooks_dir: Path, progress: tqdm) -> RunOutcome:
    progress.set_postfix_str(run.label)
    return _tick(progress, execute_run(run, _run_dir(sweep_dir, run), notebooks_dir))


def _tick(progress: tqdm, outcome: RunOutcome) -> RunOutcome:
    progress.update(1)
    if outcome.state == "failed":
        progress.write(f"failed: {outcome.run_id}: {(outcome.error or {}).get('type')}", file=sys.stderr)
    return outcome


def _listed_records(run_dir: Path) -> list[str]:
    listed: list[str] = json.loads((run_dir / RUN_FILE).read_text()).get("records", [])
    return listed


def _parallel(runs: list[Run], sweep_dir: Path, notebooks_dir: Path, scheduler: str | None, workers: int,
              progress: tqdm, reuse_results: bool) -> list[RunOutcome]:  # fmt: skip
    """Runs on a dask cluster: the given scheduler, or a LocalCluster of `workers` processes on loopback.

    On a LocalCluster each run gets its share of this machine's cores as ONNX Runtime threads: runs
    side by side that each take every core contend for them. Another cluster's machines are unknown
    here: their runs keep the default. With `reuse_results` the runs share one mteb results tree
    (`<sweep>/mteb`), so that a task scored for a variant in round 1 is taken from there in round 2.

    A run whose worker dies is rescheduled by dask on another worker (up to its `allowed-failures`);
    a run that dask gives up on (KilledWorker, a lost connection, ...) is a failed outcome with that
    exception, recorded in its run.json like any other failure: no run is lost.
    """
    if not runs:
        return []
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None if scheduler else LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)  # fmt: skip
    execution: dict[str, Any] = (
        {} if scheduler else {"threads": max(1, (psutil.cpu_count(logical=False) or 1) // workers)}
    )
    if reuse_results:  # one mteb results tree for the sweep: a round-2 run takes round 1's task results
        execution["shared_results_dir"] = str(sweep_dir / SHARED_RESULTS)
    try:
        with Client(scheduler or cluster) as client:
            futures = [client.submit(execute_run, run, _run_dir(sweep_dir, run), notebooks_dir, execution,
                                     key=run.run_id, pure=False) for run in runs]  # fmt: skip
            run_of = {run.run_id: run for run in runs}
            progress.set_postfix_str(f"{min(len(runs), workers)} in flight")
            return [_tick(progress, _outcome_of(future, run_of[future.key], sweep_dir, execution))
                    for future in as_completed(futures)]  # fmt: skip
    finally:
        if cluster is not None:
            cluster.close()


def _outcome_of(future: Any, run: Run, sweep_dir: Path, execution: Mapping[str, Any]) -> RunOutcome:
    """The outcome a finished future holds, or the failure it raised (the run never reported one)."""
    try:
        outcome: RunOutcome = future.result()
    except Exception as exc:  # e.g. distributed's KilledWorker: the run's workers died
        outcome = RunOutcome(run.run_id, run.stage, "failed", error=error_of(exc))
        run_dir = _run_dir(sweep_dir, run)
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_status(run, run_dir, outcome, execution)
    return outcome


def available_providers(config: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """Required providers, plus the optional ones some environment on this machine provides."""
    from embedkit.latency.environments import Environments
    from embedkit.pipeline.providers import resolve_provider

    environments = Environments()
    provided = {provider for environment in environments.available() for provider in environment.providers}
    chosen = list(config.get("providers", defaults.SWEEP_PROVIDERS))
    skipped: dict[str, str] = {}
    for name in config.get("optional_providers", []):
        if resolve_provider(name) in provided:
            chosen.append(name)
        else:
            skipped[resolve_provider(name)] = "no environment on this machine provides it"
    return chosen, skipped
