"""A checked sweep file expanded into runs: one papermill execution of a stage notebook each.

Every model is exported first (one run per model, all its variants); then, for every variant and
provider, a quality run (when the file names tasks) and a profile run (when it has a `profile`
section). A model entry with `weights: random` (its architecture twin) gets its export and profile
runs with that parameter, and instead of quality runs one `published` run (its published MTEB
scores on the file's tasks, notebooks/06_published.ipynb). A `first_report` section (batch sizes and tasks) makes two rounds: round 1 profiles only
its batch sizes and scores only its tasks, so that a first report can be drawn early; round 2 profiles
the other batch sizes and scores every task, so that each variant ends with one complete score record
(the sweep hands its quality runs one mteb results tree, from which round 2 takes round 1's tasks).
A profile run hands notebooks/02_profile.ipynb the grid's axes as one `grid` parameter
(axis key -> values, the keys of embedkit.latency.grid.AXES); an axis the file leaves out takes its
default there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from embedkit import defaults
from embedkit.latency.grid import AXES
from embedkit.paths import safe_name
from embedkit.pipeline.providers import resolve_provider, short_name
from embedkit.runs.limits import NO_LIMITS, Limits

# The stage notebooks, in the order the sweep runs their phases.
NOTEBOOKS = {"export": "01_export.ipynb", "quality": "03_quality.ipynb", "published": "06_published.ipynb",
             "profile": "02_profile.ipynb"}  # fmt: skip
# What each phase is called where people read it (progress bars, summaries).
PHASES = {"export": "exports", "quality": "scoring", "published": "published", "profile": "profiles"}


@dataclass(frozen=True)
class Run:
    stage: str  # export | quality | profile
    parameters: dict[str, Any]
    # How the run is guarded, not what it measures: not part of its id, so new limits do not redo done runs.
    limits: Limits = field(default=NO_LIMITS, compare=False)
    # When it runs: round 1 feeds the first report, round 2 completes the sweep (see the module docstring).
    round: int = field(default=1, compare=False)

    @property
    def notebook(self) -> str:
        return NOTEBOOKS[self.stage]

    @property
    def label(self) -> str:
        """What the run is, for people: stage, model:variant and provider."""
        point = ":".join(str(self.parameters[k]) for k in ("model", "variant") if k in self.parameters)
        provider = self.parameters.get("provider")
        detail = [short_name(provider)] if provider else []
        if "batch_sizes" in self.parameters.get("grid", {}):
            detail.append("batch " + "/".join(map(str, self.parameters["grid"]["batch_sizes"])))
        if "tasks" in self.parameters:
            detail.append(", ".join(self.parameters["tasks"]))
        return " · ".join([f"{self.stage} {point}", *detail])

    @property
    def run_id(self) -> str:
        key = json.dumps({"notebook": self.notebook, "parameters": self.parameters}, sort_keys=True)
        label = "-".join(str(self.parameters[k]) for k in ("model", "variant", "provider") if k in self.parameters)
        return f"{safe_name(f'{self.stage}-{label}')[:80]}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def profile_parameters(section: dict[str, Any]) -> dict[str, Any]:
    """Notebook 02's parameters from a sweep file's `profile` section: the axes go into `grid`."""
    axis_keys = {axis.key for axis in AXES}
    grid = {key: value for key, value in section.items() if key in axis_keys}
    measurement = {key: value for key, value in section.items() if key not in axis_keys and key != "limits"}
    return {"grid": grid, **measurement}


def _rounds_of_grid(profile: dict[str, Any], first: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """The profile parameters per round: the first report's batch sizes in round 1, the others in round 2."""
    if "batch_sizes" not in first:
        return [(1, profile)]
    every = profile["grid"].get("batch_sizes", list(defaults.PROFILE_BATCH_SIZES))
    early = [size for size in every if size in first["batch_sizes"]]
    late = [size for size in every if size not in first["batch_sizes"]]
    return [(number, {**profile, "grid": {**profile["grid"], "batch_sizes": sizes}})
            for number, sizes in ((1, early), (2, late)) if sizes]  # fmt: skip


def _rounds_of_tasks(tasks: list[str], first: dict[str, Any]) -> list[tuple[int, list[str]]]:
    """The tasks per round: the first report's in round 1, then all of them (one complete record)."""
    early = [task for task in tasks if task in first.get("tasks", tasks)]
    return [(1, early)] if early == tasks else [(1, early), (2, tasks)]


def expand(config: dict[str, Any], providers: Iterable[str], limits: Limits = NO_LIMITS) -> list[Run]:
    """Every run of the sweep, for the given (available) providers, in round and phase order.

    A run's limits: the file's top-level `limits`, overridden by its section's, overridden by `limits`
    (the command line's)."""
    chosen = [resolve_provider(p) for p in providers]
    first = config.get("first_report", {})
    profiles = _rounds_of_grid(profile_parameters(config["profile"]), first) if config.get("profile") else []
    quality = config.get("quality", {})
    options = {resolve_provider(k): v for k, v in config.get("provider_options", {}).items()}
    scored = {resolve_provider(p) for p in quality.get("providers", chosen)}
    every_run = Limits.from_config(config.get("limits"))
    limits_of = {
        stage: every_run.overridden_by(Limits.from_config(config.get(stage, {}).get("limits"))).overridden_by(limits)
        for stage in NOTEBOOKS
    }
    scoring = {"force": quality.get("force", False), "batch_size": quality.get("batch_size", defaults.BATCH_SIZE)}
    runs: list[Run] = []
    for model in config["models"]:
        variants = model.get("variants", [defaults.DEFAULT_VARIANT])
        # Only a twin names its weights: a checkpoint's runs keep the parameters (and run ids) they had.
        twin = {"weights": "random"} if model.get("weights") == "random" else {}
        runs.append(Run("export", {"model": model["name"], "variants": variants, **twin}, limits_of["export"]))
        if twin and quality.get("tasks"):  # random weights have no quality to score: take the published one
            runs.append(Run("published", {"model": model["name"], "tasks": quality["tasks"]}, limits_of["quality"]))
        for variant in variants:
            for provider in chosen:
                point = {"model": model["name"], "variant": variant, "provider": provider,
                         "provider_options": options.get(provider, {}), **twin}  # fmt: skip
                if quality.get("tasks") and provider in scored and not twin:
                    runs += [Run("quality", {**point, "tasks": tasks, **scoring}, limits_of["quality"], number)
                             for number, tasks in _rounds_of_tasks(quality["tasks"], first)]  # fmt: skip
                runs += [Run("profile", {**point, **profile}, limits_of["profile"], number)
                         for number, profile in profiles]  # fmt: skip
    return sorted(runs, key=lambda run: (run.round, list(NOTEBOOKS).index(run.stage)))
