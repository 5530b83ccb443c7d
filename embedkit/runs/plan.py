"""A checked sweep file expanded into runs: one papermill execution of a stage notebook each.

Every model is exported first (one run per model, all its variants); then, for every variant and
provider, a quality run (when the file names tasks) and a profile run (when it has a `profile`
section). A profile run hands notebooks/02_profile.ipynb the grid's axes as one `grid` parameter
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
NOTEBOOKS = {"export": "01_export.ipynb", "quality": "03_quality.ipynb", "profile": "02_profile.ipynb"}
# What each phase is called where people read it (progress bars, summaries).
PHASES = {"export": "exports", "quality": "scoring", "profile": "profiles"}


@dataclass(frozen=True)
class Run:
    stage: str  # export | quality | profile
    parameters: dict[str, Any]
    # How the run is guarded, not what it measures: not part of its id, so new limits do not redo done runs.
    limits: Limits = field(default=NO_LIMITS, compare=False)

    @property
    def notebook(self) -> str:
        return NOTEBOOKS[self.stage]

    @property
    def label(self) -> str:
        """What the run is, for people: stage, model:variant and provider."""
        point = ":".join(str(self.parameters[k]) for k in ("model", "variant") if k in self.parameters)
        provider = self.parameters.get("provider")
        return f"{self.stage} {point}" + (f" · {short_name(provider)}" if provider else "")

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


def expand(config: dict[str, Any], providers: Iterable[str], limits: Limits = NO_LIMITS) -> list[Run]:
    """Every run of the sweep, for the given (available) providers, in phase order.

    A run's limits: the file's top-level `limits`, overridden by its section's, overridden by `limits`
    (the command line's)."""
    chosen = [resolve_provider(p) for p in providers]
    profile = profile_parameters(config["profile"]) if config.get("profile") else None
    quality = config.get("quality", {})
    options = {resolve_provider(k): v for k, v in config.get("provider_options", {}).items()}
    scored = {resolve_provider(p) for p in quality.get("providers", chosen)}
    every_run = Limits.from_config(config.get("limits"))
    limits_of = {
        stage: every_run.overridden_by(Limits.from_config(config.get(stage, {}).get("limits"))).overridden_by(limits)
        for stage in NOTEBOOKS
    }
    runs: list[Run] = []
    for model in config["models"]:
        variants = model.get("variants", [defaults.DEFAULT_VARIANT])
        runs.append(Run("export", {"model": model["name"], "variants": variants}, limits_of["export"]))
        for variant in variants:
            for provider in chosen:
                point = {"model": model["name"], "variant": variant, "provider": provider,
                         "provider_options": options.get(provider, {})}  # fmt: skip
                if quality.get("tasks") and provider in scored:
                    scoring = {"tasks": quality["tasks"], "force": quality.get("force", False),
                               "batch_size": quality.get("batch_size", defaults.BATCH_SIZE)}  # fmt: skip
                    runs.append(Run("quality", {**point, **scoring}, limits_of["quality"]))
                if profile is not None:
                    runs.append(Run("profile", {**point, **profile}, limits_of["profile"]))
    return sorted(runs, key=lambda run: list(NOTEBOOKS).index(run.stage))
