"""Sweeps: a YAML file expanded into papermill runs of the notebooks, resumable, parallel where honest.

A sweep runs in three phases. Exports come first (later runs need the files). Quality runs go to a
dask cluster in parallel: their numbers do not depend on timing. Profile runs go last, one at a time,
so nothing else competes for the cores while latency is measured.

Each run owns `results/<sweep>/<run-id>/` (run-id hashes the run's notebook and parameters): the
executed notebook, the records it wrote, and `run.json`, which says done or failed (with the
exception) and lists the records. A rerun skips runs whose `run.json` says done and whose records
all read back valid; `force` redoes everything.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml
from tqdm import tqdm

from .paths import PROJECT_ROOT, results_dir
from .records import RecordError, read_record, write_text_atomically

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
NOTEBOOKS = {"export": "01_export.ipynb", "quality": "03_quality.ipynb", "profile": "02_profile.ipynb"}
KERNEL = "embedkit"
RUN_FILE = "run.json"
EXECUTED = "executed.ipynb"

_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}
_POSITIVE_INTS = {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1}
SWEEP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "models"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$"},
        "description": {"type": "string"},
        "models": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {"name": {"type": "string", "minLength": 1}, "variants": _STRINGS},
            },
        },
        "providers": _STRINGS,
        # Used when some environment on this machine provides them, skipped (and said so) otherwise.
        "optional_providers": _STRINGS,
        "provider_options": {"type": "object", "additionalProperties": {"type": "object"}},
        "profile": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "batch_sizes": _POSITIVE_INTS,
                "seq_buckets": _STRINGS,
                "threads": _POSITIVE_INTS,
                "samples": {"type": "integer", "minimum": 2},
                "min_seconds": {"type": "number", "minimum": 0},
            },
        },
        "quality": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "tasks": _STRINGS,
                "force": {"type": "boolean"},
                "batch_size": {"type": "integer", "minimum": 1},
                # Providers to score on (default: all the sweep's). Scoring needs mteb in the provider's
                # environment, which the separate OpenVINO/CUDA venvs do not carry.
                "providers": _STRINGS,
            },
        },
    },
}


class SweepConfigError(ValueError):
    """A sweep file that is not valid YAML or breaks the sweep schema; names the file and key."""


@dataclass(frozen=True)
class Run:
    stage: str  # export | quality | profile
    parameters: dict[str, Any]

    @property
    def notebook(self) -> str:
        return NOTEBOOKS[self.stage]

    @property
    def run_id(self) -> str:
        key = json.dumps({"notebook": self.notebook, "parameters": self.parameters}, sort_keys=True)
        label = "-".join(str(self.parameters[k]) for k in ("model", "variant", "provider") if k in self.parameters)
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in f"{self.stage}-{label}")
        return f"{safe[:80]}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


@dataclass
class RunOutcome:
    run_id: str
    stage: str
    state: str  # done | failed | skipped
    records: list[str] = field(default_factory=list)
    error: dict[str, str] | None = None


def load_config(path: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise SweepConfigError(f"{path}: not valid YAML: {exc}") from exc
    errors = sorted(jsonschema.Draft202012Validator(SWEEP_SCHEMA).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.path) or "(top level)"
        raise SweepConfigError(f"{path}: {where}: {first.message}")
    return config


def expand(config: dict[str, Any], providers: Iterable[str]) -> list[Run]:
    """Every run of the sweep, for the given (available) providers, in phase order."""
    from .session import resolve_provider

    providers = [resolve_provider(p) for p in providers]
    profile = config.get("profile", {})
    quality = config.get("quality", {})
    options = {resolve_provider(k): v for k, v in config.get("provider_options", {}).items()}
    scored = {resolve_provider(p) for p in quality.get("providers", providers)}
    runs: list[Run] = []
    for model in config["models"]:
        variants = model.get("variants", ["fp32"])
        runs.append(Run("export", {"model": model["name"], "variants": variants}))
        for variant in variants:
            for provider in providers:
                point = {"model": model["name"], "variant": variant, "provider": provider,
                         "provider_options": options.get(provider, {})}
                if quality.get("tasks") and provider in scored:
                    runs.append(Run("quality", {**point, "tasks": quality["tasks"], "force": quality.get("force", False),
                                                "batch_size": quality.get("batch_size", 32)}))
                if profile:
                    runs.append(Run("profile", {**point, **profile}))
    return sorted(runs, key=lambda run: list(NOTEBOOKS).index(run.stage))


def run_complete(run_dir: Path) -> bool:
    """True when the run finished and every record it lists reads back valid."""
    status_file = run_dir / RUN_FILE
    if not status_file.is_file():
        return False
    try:
        status = json.loads(status_file.read_text())
        return status.get("state") == "done" and all(read_record(run_dir / p) for p in status.get("records", []))
    except (ValueError, OSError, RecordError):
        return False


def execute_run(run: Run, run_dir: Path, notebooks_dir: Path = NOTEBOOKS_DIR) -> RunOutcome:
    """One papermill execution; never raises for a failing notebook (the failure is the outcome)."""
    import papermill
    import scrapbook

    run_dir.mkdir(parents=True, exist_ok=True)
    started = _now()
    outcome = RunOutcome(run.run_id, run.stage, "done")
    try:
        papermill.execute_notebook(
            str(notebooks_dir / run.notebook),
            str(run_dir / EXECUTED),
            parameters={**run.parameters, "out_dir": str(run_dir)},
            kernel_name=KERNEL,
            cwd=str(run_dir),
            progress_bar=False,
        )
        scraps = scrapbook.read_notebook(str(run_dir / EXECUTED)).scraps
        paths = [Path(p) for p in (scraps["records"].data if "records" in scraps else [])]
        outcome.records = [str(p.relative_to(run_dir)) if p.is_relative_to(run_dir) else str(p) for p in paths]
        for path in paths:
            read_record(path)  # a run that wrote an invalid record did not succeed
    except Exception as exc:  # papermill's PapermillExecutionError carries the cell's exception
        outcome.state = "failed"
        outcome.error = {"type": getattr(exc, "ename", type(exc).__name__),
                         "message": str(getattr(exc, "evalue", exc))[:2000]}
    status = {**asdict(outcome), "notebook": run.notebook, "parameters": run.parameters, "kernel": KERNEL,
              "executed_notebook": EXECUTED, "started_at": started, "finished_at": _now()}
    write_text_atomically(run_dir / RUN_FILE, json.dumps(status, indent=1, sort_keys=True))
    return outcome


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass
class SweepSummary:
    sweep: str
    directory: str
    outcomes: list[RunOutcome]
    skipped_providers: dict[str, str]

    def counts(self) -> dict[str, int]:
        return {state: sum(o.state == state for o in self.outcomes) for state in ("done", "skipped", "failed")}

    def to_dict(self) -> dict[str, Any]:
        return {"sweep": self.sweep, "directory": self.directory, "counts": self.counts(),
                "skipped_providers": self.skipped_providers, "runs": [asdict(o) for o in self.outcomes]}


def run_sweep(
    config_path: Path,
    *,
    force: bool = False,
    scheduler: str | None = None,
    workers: int = 2,
    notebooks_dir: Path = NOTEBOOKS_DIR,
    output_root: Path | None = None,
) -> SweepSummary:
    config = load_config(config_path)
    providers, skipped = available_providers(config)
    sweep_dir = (output_root or results_dir()) / config["name"]
    runs = expand(config, providers)
    outcomes: dict[str, RunOutcome] = {}
    pending = []
    for run in runs:
        if not force and run_complete(sweep_dir / run.run_id):
            outcomes[run.run_id] = RunOutcome(run.run_id, run.stage, "skipped", _listed_records(sweep_dir / run.run_id))
        else:
            pending.append(run)
    by_stage = {stage: [r for r in pending if r.stage == stage] for stage in NOTEBOOKS}
    progress = tqdm(total=len(pending), desc=f"sweep {config['name']}", unit="run")
    for run in by_stage["export"]:
        outcomes[run.run_id] = _tick(progress, execute_run(run, sweep_dir / run.run_id, notebooks_dir))
    for outcome in _parallel(by_stage["quality"], sweep_dir, notebooks_dir, scheduler, workers, progress):
        outcomes[outcome.run_id] = outcome
    for run in by_stage["profile"]:
        outcomes[run.run_id] = _tick(progress, execute_run(run, sweep_dir / run.run_id, notebooks_dir))
    progress.close()
    return SweepSummary(config["name"], str(sweep_dir), [outcomes[r.run_id] for r in runs], skipped)


def _tick(progress: tqdm, outcome: RunOutcome) -> RunOutcome:
    progress.update(1)
    progress.set_postfix_str(f"{outcome.state}: {outcome.run_id[:40]}")
    return outcome


def _listed_records(run_dir: Path) -> list[str]:
    return json.loads((run_dir / RUN_FILE).read_text()).get("records", [])


def _parallel(runs: list[Run], sweep_dir: Path, notebooks_dir: Path, scheduler: str | None, workers: int,
              progress: tqdm) -> list[RunOutcome]:
    """Runs on a dask cluster: the given scheduler, or a LocalCluster of `workers` processes on loopback."""
    if not runs:
        return []
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None if scheduler else LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
    try:
        with Client(scheduler or cluster) as client:
            futures = [client.submit(execute_run, run, sweep_dir / run.run_id, notebooks_dir, key=run.run_id, pure=False)
                       for run in runs]
            return [_tick(progress, future.result()) for future in as_completed(futures)]
    finally:
        if cluster is not None:
            cluster.close()


def available_providers(config: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """Required providers, plus the optional ones some environment on this machine provides."""
    from .environments import Environments
    from .session import resolve_provider

    environments = Environments()
    provided = {provider for environment in environments.available() for provider in environment.providers}
    chosen = list(config.get("providers", ["CPU"]))
    skipped: dict[str, str] = {}
    for name in config.get("optional_providers", []):
        if resolve_provider(name) in provided:
            chosen.append(name)
        else:
            skipped[resolve_provider(name)] = "no environment on this machine provides it"
    return chosen, skipped
