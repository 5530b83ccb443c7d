"""Sweeps: a YAML file expanded into papermill runs of the notebooks, resumable, parallel where honest.

A sweep runs in three phases. Exports come first (later runs need the files). Quality runs go to a
dask cluster in parallel: their numbers do not depend on timing. Profile runs go last, one at a time,
so nothing else competes for the cores while latency is measured.

Each run owns `results/<sweep>/<run-id>/` (run-id hashes the run's notebook and parameters; both path
parts are safe names, whatever the sweep and model are called): the executed notebook, the records it
wrote, and `run.json`, which says done or failed (with the exception) and lists the records. A run dir
holds one attempt: starting a run clears what an earlier attempt left there. Every file is published
atomically (papermill writes the notebook to a hidden partial file, renamed when it ends), so a sweep
killed at any moment leaves no torn file. A rerun skips runs whose `run.json` says done and whose
records all read back valid; `force` redoes everything. A run.json or listed record that is not JSON
is quarantined (moved aside, warned about, listed in the summary) and its run redone.

A run may have limits (`limits: {memory_mb, seconds}` at the top of the file, in `profile` or
`quality`, or on the command line): the run that crosses one fails with the limit and the measured
value in its run.json; the sweep goes on (see embedkit.runs.limits for how they are enforced).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import jsonschema
import psutil
import yaml
from tqdm import tqdm

from embedkit.errors import SweepConfigError
from embedkit.models.export import VARIANTS
from embedkit.runs.limits import KernelWatchdog, Limits
from embedkit.paths import PROJECT_ROOT, child_path, results_dir, safe_name
from embedkit.results.records import (
    CorruptRecordError,
    Quarantined,
    RecordError,
    is_quarantined,
    quarantine,
    read_record,
    replace_atomically,
    write_text_atomically,
)
from embedkit.latency.workload import SEQ_BUCKETS

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
NOTEBOOKS = {"export": "01_export.ipynb", "quality": "03_quality.ipynb", "profile": "02_profile.ipynb"}
KERNEL = "embedkit"
DEFAULT_PROVIDERS = ["CPU"]
RUN_FILE = "run.json"
EXECUTED = "executed.ipynb"
PARTIAL = ".executed.partial.ipynb"  # papermill rewrites its output after every cell: never in place

_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "uniqueItems": True}
_POSITIVE_INTS = {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1, "uniqueItems": True}
_LIMITS = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "memory_mb": {"type": "number", "exclusiveMinimum": 0},
        "seconds": {"type": "number", "exclusiveMinimum": 0},
    },
}
SWEEP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "models"],
    "properties": {
        # One path component under results/: no separator, no leading dot.
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]*$"},
        "description": {"type": "string"},
        "models": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {"name": {"type": "string", "minLength": 1},
                               "variants": {**_STRINGS, "items": {"enum": list(VARIANTS)}}},
            },
        },
        "providers": _STRINGS,
        # Used when some environment on this machine provides them, skipped (and said so) otherwise.
        "optional_providers": _STRINGS,
        "provider_options": {"type": "object", "additionalProperties": {"type": "object"}},
        "limits": _LIMITS,  # every run's; a section's own limits override these for its runs
        "profile": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "batch_sizes": _POSITIVE_INTS,
                "seq_buckets": {**_STRINGS, "items": {"enum": list(SEQ_BUCKETS)}},
                "threads": _POSITIVE_INTS,
                "samples": {"type": "integer", "minimum": 2},
                "min_seconds": {"type": "number", "minimum": 0},
                # Caps one grid point's sampling even short of `samples`: large batches take seconds a
                # call. The record keeps its sample count and says why it stopped.
                "max_seconds": {"type": "number", "exclusiveMinimum": 0},
                "limits": _LIMITS,
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
                "limits": _LIMITS,
            },
        },
    },
}




@dataclass(frozen=True)
class Run:
    stage: str  # export | quality | profile
    parameters: dict[str, Any]
    # How the run is guarded, not what it measures: not part of its id, so new limits do not redo done runs.
    limits: Limits = field(default=Limits(), compare=False)

    @property
    def notebook(self) -> str:
        return NOTEBOOKS[self.stage]

    @property
    def run_id(self) -> str:
        key = json.dumps({"notebook": self.notebook, "parameters": self.parameters}, sort_keys=True)
        label = "-".join(str(self.parameters[k]) for k in ("model", "variant", "provider") if k in self.parameters)
        return f"{safe_name(f'{self.stage}-{label}')[:80]}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


@dataclass
class RunOutcome:
    run_id: str
    stage: str
    state: str  # done | failed | skipped
    records: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None


# --- the sweep file -----------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[str, int] = {}
        for key_node in (key for key, _ in node.value if isinstance(key, yaml.ScalarNode)):
            if key_node.value in first_line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key_node.value!r} given twice (first on line {first_line[key_node.value]})",
                    key_node.start_mark,
                )  # fmt: skip
            first_line[key_node.value] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


@dataclass(frozen=True)
class _Problem:
    path: tuple[str | int, ...]
    message: str

    @property
    def dotted(self) -> str:
        return ".".join(map(str, self.path)) or "(top level)"


def load_config(path: Path) -> dict[str, Any]:
    """The sweep file, checked completely: one SweepConfigError `FILE:LINE: KEY: problem` for the first
    problem in the file (schema, duplicate keys or model names, unknown or unlisted providers)."""
    loader = _StrictLoader(Path(path).read_text())
    try:
        root = loader.get_single_node()
        config = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = str(path) if mark is None else f"{path}:{mark.line + 1}"
        raise SweepConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    finally:
        loader.dispose()
    problems = _schema_problems(config) or _reference_problems(config)
    if problems:
        first = min(problems, key=lambda problem: (_line(root, problem.path), problem.dotted))
        raise SweepConfigError(f"{path}:{_line(root, first.path)}: {first.dotted}: {first.message}")
    return config


def _schema_problems(config: Any) -> list[_Problem]:
    problems = []
    for error in jsonschema.Draft202012Validator(SWEEP_SCHEMA).iter_errors(config):
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = ", ".join(error.schema.get("properties", {}))
            problems += [_Problem((*error.path, key), f"unknown key; allowed here: {allowed}")
                         for key in error.instance if key not in error.schema.get("properties", {})]
        else:
            problems.append(_Problem(tuple(error.path), error.message))
    return problems


def _reference_problems(config: dict[str, Any]) -> list[_Problem]:
    """What the schema cannot say: names that must be unique, providers that must exist and be listed."""
    from embedkit.errors import EmbedkitError
    from embedkit.pipeline.providers import resolve_provider

    problems = []
    first_index: dict[str, int] = {}
    for index, model in enumerate(config["models"]):
        if model["name"] in first_index:
            problems.append(_Problem(("models", index, "name"), f"{model['name']!r} is listed twice "
                                                                 f"(first as models.{first_index[model['name']]})"))
        first_index.setdefault(model["name"], index)
    listed: set[str] = set()
    for key, default in (("providers", DEFAULT_PROVIDERS), ("optional_providers", [])):
        for index, name in enumerate(config.get(key, default)):
            try:
                listed.add(resolve_provider(name))
            except EmbedkitError as error:
                problems.append(_Problem((key, index), str(error)))
    named_elsewhere = [(("quality", "providers", index), name)
                       for index, name in enumerate(config.get("quality", {}).get("providers", []))]
    named_elsewhere += [(("provider_options", name), name) for name in config.get("provider_options", {})]
    for where, name in named_elsewhere:
        try:
            known = resolve_provider(name)
        except EmbedkitError as error:
            problems.append(_Problem(where, str(error)))
            continue
        if known not in listed:
            problems.append(_Problem(where, f"{name!r} is not among providers or optional_providers"))
    return problems


def _line(root: yaml.Node | None, path: tuple[str | int, ...]) -> int:
    """1-based line of the node at `path` (the key's line for a mapping entry), or of its deepest parent."""
    node, line = root, 1 if root is None else root.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            entry = next(((key, value) for key, value in node.value if key.value == part), None)
            if entry is None:
                break
            line, node = entry[0].start_mark.line + 1, entry[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def expand(config: dict[str, Any], providers: Iterable[str], limits: Limits = Limits()) -> list[Run]:
    """Every run of the sweep, for the given (available) providers, in phase order.

    A run's limits: the file's top-level `limits`, overridden by its section's, overridden by `limits`
    (the command line's)."""
    from embedkit.pipeline.providers import resolve_provider

    providers = [resolve_provider(p) for p in providers]
    profile = {key: value for key, value in config.get("profile", {}).items() if key != "limits"}
    quality = config.get("quality", {})
    options = {resolve_provider(k): v for k, v in config.get("provider_options", {}).items()}
    scored = {resolve_provider(p) for p in quality.get("providers", providers)}
    every_run = Limits.from_config(config.get("limits"))
    limits_of = {stage: every_run.overridden_by(Limits.from_config(config.get(stage, {}).get("limits")))
                 .overridden_by(limits) for stage in NOTEBOOKS}
    runs: list[Run] = []
    for model in config["models"]:
        variants = model.get("variants", ["fp32"])
        runs.append(Run("export", {"model": model["name"], "variants": variants}, limits_of["export"]))
        for variant in variants:
            for provider in providers:
                point = {"model": model["name"], "variant": variant, "provider": provider,
                         "provider_options": options.get(provider, {})}
                if quality.get("tasks") and provider in scored:
                    runs.append(Run("quality", {**point, "tasks": quality["tasks"], "force": quality.get("force", False),
                                                "batch_size": quality.get("batch_size", 32)}, limits_of["quality"]))
                if config.get("profile"):
                    runs.append(Run("profile", {**point, **profile}, limits_of["profile"]))
    return sorted(runs, key=lambda run: list(NOTEBOOKS).index(run.stage))


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


def run_complete(run_dir: Path) -> bool:
    """True when the run finished and every record it lists reads back valid."""
    return check_run(run_dir)[0]


def execute_run(run: Run, run_dir: Path, notebooks_dir: Path = NOTEBOOKS_DIR,
                execution: Mapping[str, Any] | None = None) -> RunOutcome:
    """One papermill execution; never raises for a failing notebook (the failure is the outcome).

    `execution`: notebook parameters that say how this machine runs the run, not what it measures
    (e.g. its share of the cores): not part of the run id, recorded in the run file.
    """
    execution = dict(execution or {})
    import papermill

    _clear_previous_attempt(run_dir)
    started = _now()
    outcome = RunOutcome(run.run_id, run.stage, "done")
    with KernelWatchdog(run.limits) as watchdog:
        try:
            papermill.execute_notebook(
                str(notebooks_dir / run.notebook),
                str(run_dir / PARTIAL),
                parameters={**run.parameters, **execution, "out_dir": str(run_dir)},
                kernel_name=KERNEL,
                cwd=str(run_dir),
                progress_bar=False,
                **watchdog.papermill_options(),
            )
        except Exception as exc:  # papermill's PapermillExecutionError carries the cell's exception
            outcome.state, outcome.error = "failed", _error(exc)
    if (run_dir / PARTIAL).exists():
        replace_atomically(run_dir / PARTIAL, run_dir / EXECUTED)
    if watchdog.exceeded is not None:  # whatever else went wrong, the limit is why the run stopped
        outcome.state, outcome.error = "failed", watchdog.exceeded.to_error()
    elif outcome.state == "done":
        try:
            outcome.records = _written_records(run_dir)
        except Exception as exc:  # a run that wrote an invalid record did not succeed
            outcome.state, outcome.error = "failed", _error(exc)
    status = {**asdict(outcome), "notebook": run.notebook, "parameters": run.parameters, "execution": execution,
              "kernel": KERNEL, "executed_notebook": EXECUTED, "started_at": started, "finished_at": _now()}
    if run.limits.any():
        status["limits"] = {**run.limits.to_dict(), "peak_rss_mb": round(watchdog.peak_rss_mb, 1)}
    write_text_atomically(run_dir / RUN_FILE, json.dumps(status, indent=1, sort_keys=True))
    return outcome


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


def _error(exc: Exception) -> dict[str, str]:
    return {"type": getattr(exc, "ename", type(exc).__name__), "message": str(getattr(exc, "evalue", exc))[:2000]}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


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
                "quarantined": [entry.to_dict() for entry in self.quarantined]}


def run_sweep(
    config_path: Path,
    *,
    force: bool = False,
    scheduler: str | None = None,
    workers: int = 2,
    notebooks_dir: Path = NOTEBOOKS_DIR,
    output_root: Path | None = None,
    limits: Limits = Limits(),
) -> SweepSummary:
    config = load_config(config_path)
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
    by_stage = {stage: [r for r in pending if r.stage == stage] for stage in NOTEBOOKS}
    progress = tqdm(total=len(pending), desc=f"sweep {config['name']}", unit="run")
    for run in by_stage["export"]:
        outcomes[run.run_id] = _tick(progress, execute_run(run, _run_dir(sweep_dir, run), notebooks_dir))
    for outcome in _parallel(by_stage["quality"], sweep_dir, notebooks_dir, scheduler, workers, progress):
        outcomes[outcome.run_id] = outcome
    for run in by_stage["profile"]:
        outcomes[run.run_id] = _tick(progress, execute_run(run, _run_dir(sweep_dir, run), notebooks_dir))
    progress.close()
    return SweepSummary(config["name"], str(sweep_dir), [outcomes[r.run_id] for r in runs], skipped, quarantined)


def _run_dir(sweep_dir: Path, run: Run) -> Path:
    return child_path(sweep_dir, run.run_id)


def _tick(progress: tqdm, outcome: RunOutcome) -> RunOutcome:
    progress.update(1)
    progress.set_postfix_str(f"{outcome.state}: {outcome.run_id[:40]}")
    return outcome


def _listed_records(run_dir: Path) -> list[str]:
    return json.loads((run_dir / RUN_FILE).read_text()).get("records", [])


def _parallel(runs: list[Run], sweep_dir: Path, notebooks_dir: Path, scheduler: str | None, workers: int,
              progress: tqdm) -> list[RunOutcome]:
    """Runs on a dask cluster: the given scheduler, or a LocalCluster of `workers` processes on loopback.

    On a LocalCluster each run gets its share of this machine's cores as ONNX Runtime threads: runs
    side by side that each take every core spend ~17 % more time (measured on 2 cores, 2 runs) than
    runs that share them out. Another cluster's machines are unknown here: their runs keep the default.
    """
    if not runs:
        return []
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None if scheduler else LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
    execution = {} if scheduler else {"threads": max(1, (psutil.cpu_count(logical=False) or 1) // workers)}
    try:
        with Client(scheduler or cluster) as client:
            futures = [client.submit(execute_run, run, _run_dir(sweep_dir, run), notebooks_dir, execution,
                                     key=run.run_id, pure=False) for run in runs]
            return [_tick(progress, future.result()) for future in as_completed(futures)]
    finally:
        if cluster is not None:
            cluster.close()


def available_providers(config: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """Required providers, plus the optional ones some environment on this machine provides."""
    from embedkit.latency.environments import Environments
    from embedkit.pipeline.providers import resolve_provider

    environments = Environments()
    provided = {provider for environment in environments.available() for provider in environment.providers}
    chosen = list(config.get("providers", DEFAULT_PROVIDERS))
    skipped: dict[str, str] = {}
    for name in config.get("optional_providers", []):
        if resolve_provider(name) in provided:
            chosen.append(name)
        else:
            skipped[resolve_provider(name)] = "no environment on this machine provides it"
    return chosen, skipped
