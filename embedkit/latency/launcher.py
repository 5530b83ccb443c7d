"""Launching profile workers: one fresh process per grid point, one validated record per point.

The parent resolves each point's model variant (exporting it if need be) and the environment whose
onnxruntime provides the point's execution provider, then starts `python -m embedkit.latency.worker`
in that environment, one point at a time: points measured side by side in one process interfere.
`profile` is the front door for a grid, `compare` for two backends interleaved in one worker.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from embedkit import defaults
from embedkit.errors import ProfileWorkerError
from embedkit.latency.environments import Environments
from embedkit.latency.grid import Backend, Grid, GridPoint, ProviderConfig, Scenario
from embedkit.latency.worker import WORKER_MODULE
from embedkit.models.export import Variant, get_variant
from embedkit.models.twins import resolve_spec
from embedkit.results.files import read_record

# Lines of a failed worker's stderr quoted in the error.
STDERR_TAIL_LINES = 20

# progress(i, n, point, record): before a point (record None) and after it.
Progress = Callable[[int, int, GridPoint, dict[str, Any] | None], None]


def _variant_request(variant: Variant) -> dict[str, str]:
    return {"name": variant.name, "path": str(variant.path), "directory": str(variant.directory)}


def _run_worker(python: Path, job: list[str], label: str) -> dict[str, Any]:
    completed = subprocess.run([str(python), "-m", WORKER_MODULE, *job], capture_output=True, text=True, check=False)
    lines = completed.stdout.strip().splitlines()
    try:
        payload = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        payload = {}
    if completed.returncode != 0 or "error" in payload or not payload:
        error = payload.get("error", {})
        stderr_tail = "\n".join(completed.stderr.strip().splitlines()[-STDERR_TAIL_LINES:])
        detail = f"{error['type']}: {error['message']}" if error else f"exit {completed.returncode}\n{stderr_tail}"
        raise ProfileWorkerError(f"{label} failed in {python}: {detail}", payload)
    return dict(payload)


class VariantResolver:
    """Each (model, variant) resolved (exported if need be) once, in the parent's environment."""

    def __init__(self) -> None:
        self._variants: dict[tuple[str, str, str], Variant] = {}

    def __call__(self, backend: Backend) -> Variant:
        key = (backend.model, backend.variant, backend.weights)
        if key not in self._variants:
            self._variants[key] = get_variant(resolve_spec(backend.model, backend.weights), backend.variant)
        return self._variants[key]


def run_point(point: GridPoint, variant: Variant, python: Path, out_dir: Path | None = None) -> dict[str, Any]:
    """Measure one point in a fresh `python` process; returns its record, read back and validated."""
    request = json.dumps({"point": point.to_dict(), "variant": _variant_request(variant)})
    job = ["--point", request, *(["--out", str(out_dir)] if out_dir is not None else [])]
    return read_record(_run_worker(python, job, point.label())["record_path"])


def run_grid(
    grid: Grid | Iterable[GridPoint],
    out_dir: Path | None = None,
    *,
    environments: Environments | None = None,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Measure every point, one fresh process at a time; returns the records written under `out_dir`.

    Every point's environment and variant are resolved before the first measurement, so a missing
    provider fails the run at once rather than after an hour of measuring.
    """
    points = grid.points() if isinstance(grid, Grid) else list(grid)
    environments = environments or Environments()
    resolve = VariantResolver()
    plans = [(point, environments.providing([point.backend.provider.name]), resolve(point.backend)) for point in points]
    written = []
    for index, (point, environment, variant) in enumerate(plans):
        if progress:
            progress(index, len(plans), point, None)
        record = run_point(point, variant, environment.python, out_dir)
        written.append(record)
        if progress:
            progress(index, len(plans), point, record)
    return written


def profile(
    models: Iterable[tuple[str, str]],
    providers: Iterable[ProviderConfig] = (ProviderConfig.of(defaults.DEFAULT_PROVIDER),),
    axes: Mapping[str, Iterable[Any] | None] | None = None,
    *,
    min_samples: int = defaults.MIN_SAMPLES,
    min_seconds: float = defaults.MIN_SECONDS,
    max_seconds: float | None = None,
    out_dir: Path | None = None,
    progress: Progress | None = None,
    weights: str = defaults.DEFAULT_WEIGHTS,
) -> list[dict[str, Any]]:
    """The front door: profile (model, variant) pairs over a grid; returns the records written.

    `axes`: values by axis key (embedkit.latency.grid.AXES, e.g. {"batch_sizes": [1], "threads": [2]});
    an axis not given takes its default values. `weights="random"`: the models' architecture twins.
    """
    grid = Grid.of(models, providers, axes, weights).with_measurement(
        min_samples=min_samples, min_seconds=min_seconds, max_seconds=max_seconds
    )
    return run_grid(grid, out_dir, progress=progress)


def compare(a: Backend, b: Backend, scenario: Scenario, *, environments: Environments | None = None) -> dict[str, Any]:
    """A and B interleaved in one fresh worker, in an environment that provides both providers."""
    environments = environments or Environments()
    environment = environments.providing([a.provider.name, b.provider.name])
    resolve = VariantResolver()
    request = {
        "sides": [{"backend": side.to_dict(), "variant": _variant_request(resolve(side))} for side in (a, b)],
        "scenario": asdict(scenario),
    }
    result = _run_worker(environment.python, ["--compare", json.dumps(request)], f"{a.label()} vs {b.label()}")
    return {**result, "python": str(environment.python)}
