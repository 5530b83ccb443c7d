"""The notebooks' parameters: their defaults are the library's, and their checks (embedkit.runs.notebook)
accept what a sweep passes and name what is wrong."""

from __future__ import annotations

import ast
from typing import Any

import nbformat
import pytest

from embedkit import defaults
from embedkit.errors import ParameterError
from embedkit.latency.grid import AXES
from embedkit.paths import project_file, project_files_dir
from embedkit.runs import notebook as nb
from embedkit.runs.config import load_config
from embedkit.runs.plan import expand

_MODEL = {"model": defaults.DEFAULT_MODEL, "variant": defaults.DEFAULT_VARIANT, "provider": defaults.DEFAULT_PROVIDER}
# Every parameter whose default is a library default, by notebook. A notebook's own choices (the
# quickstart's sentences, a directory) are not defaults anything else shares.
LIBRARY_DEFAULTS: dict[str, dict[str, Any]] = {
    "00_quickstart.ipynb": _MODEL,
    "01_export.ipynb": {
        "model": defaults.DEFAULT_MODEL,
        "variants": list(defaults.EXPORT_NOTEBOOK_VARIANTS),
        "weights": defaults.DEFAULT_WEIGHTS,
    },
    # An empty grid is every axis at its default (embedkit.latency.grid.AXES).
    "02_profile.ipynb": {
        **_MODEL,
        "grid": {},
        "samples": defaults.MIN_SAMPLES,
        "min_seconds": defaults.MIN_SECONDS,
        "weights": defaults.DEFAULT_WEIGHTS,
    },
    "03_quality.ipynb": {**_MODEL, "tasks": list(defaults.DEFAULT_TASKS), "batch_size": defaults.BATCH_SIZE},
    "04_tradeoff.ipynb": {"sweep": defaults.DEFAULT_SWEEP, "seq_bucket": defaults.DECISION_SEQ_BUCKET},
    "05_tune.ipynb": {
        "model": defaults.DEFAULT_MODEL,
        "p95_ms": defaults.TUNE_P95_MS,
        "tasks": list(defaults.TUNE_TASKS),
        "variants": list(defaults.TUNE_VARIANTS),
        "providers": [defaults.DEFAULT_PROVIDER],
    },
    "06_published.ipynb": {"tasks": list(defaults.DEFAULT_TASKS)},
}


def _parameters(name: str) -> dict[str, Any]:
    """The literal values the notebook's `parameters` cell assigns."""
    notebook = nbformat.read(project_file("notebooks", name), as_version=4)
    (cell,) = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    return {
        target.id: ast.literal_eval(statement.value)
        for statement in ast.parse(cell.source).body
        if isinstance(statement, ast.Assign)
        for target in statement.targets
        if isinstance(target, ast.Name)
    }


def test_every_notebook_is_listed() -> None:
    assert sorted(path.name for path in project_files_dir("notebooks").glob("*.ipynb")) == sorted(LIBRARY_DEFAULTS)


@pytest.mark.parametrize("name", sorted(LIBRARY_DEFAULTS))
def test_parameter_defaults_are_the_library_defaults(name: str) -> None:
    parameters = _parameters(name)
    expected = LIBRARY_DEFAULTS[name]
    assert {key: parameters.get(key, "(missing)") for key in expected} == expected


def test_the_profile_grid_parameter_takes_what_a_sweep_passes(tmp_path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("name: s\nmodels: [{name: m}]\nprofile:\n  batch_sizes: [1, 4]\n  spinning: [never]\n"
                    "  samples: 5\n")  # fmt: skip
    (run,) = [run for run in expand(load_config(path), ["CPU"]) if run.stage == "profile"]
    assert set(_parameters("02_profile.ipynb")) >= set(run.parameters)
    grid = nb.grid_axes(run.parameters["grid"])
    assert grid["batch_sizes"] == (1, 4) and grid["spinning"] == ("never",)
    assert {axis.key: grid[axis.key] for axis in AXES if axis.key not in run.parameters["grid"]} == {
        axis.key: axis.default for axis in AXES if axis.key not in run.parameters["grid"]
    }


@pytest.mark.parametrize(
    "grid, problem",
    [
        ({"batch_sizes": []}, "batch_sizes: give at least one value"),
        ({"batch_sizes": [0]}, "batch_sizes: 0 is less than the minimum of 1"),
        ({"seq_buckets": ["huge"]}, "seq_buckets: 'huge' is not one of"),
        ({"threads": [1, 1]}, "threads: a value is given twice"),
        ({"colour": ["red"]}, "unknown grid axis ['colour']"),
        ("[1, 2", "expected a dict of grid axes or its JSON text"),
    ],
)
def test_a_bad_grid_is_named_with_its_axis(grid: Any, problem: str) -> None:
    with pytest.raises(ParameterError) as caught:
        nb.check_parameters(grid=(grid, nb.grid_axes))
    assert str(caught.value).startswith("parameter 'grid' = ") and problem in str(caught.value)


def test_papermill_strings_are_accepted() -> None:
    checked = nb.check_parameters(
        grid=('{"batch_sizes": "1,8", "threads": [1]}', nb.grid_axes),
        variants=("fp32, int8", nb.variant_names),
        provider=("cpu", nb.provider_name),
    )
    assert checked.grid["batch_sizes"] == (1, 8) and checked.grid["threads"] == (1,)
    assert checked.variants == ["fp32", "int8"] and checked.provider == "CPUExecutionProvider"


def test_every_bad_parameter_is_named_at_once() -> None:
    with pytest.raises(ParameterError) as caught:
        nb.check_parameters(
            force=("yes", nb.flag),
            variants=(["fp32", "fp64"], nb.variant_names),
            provider=("Quantum", nb.provider_name),
            provider_options=({1: "x"}, nb.provider_options),
            min_seconds=(-1, nb.seconds),
            max_seconds=(0, nb.optional(nb.positive_seconds)),
        )
    message = str(caught.value)
    for name, problem in [("force", "expected True or False"), ("variants", "unknown variant(s) ['fp64']"),
                          ("provider", "unknown execution provider 'Quantum'"),
                          ("provider_options", "expected a dict"), ("min_seconds", ">= 0"),
                          ("max_seconds", "> 0")]:  # fmt: skip
        assert f"parameter {name!r}" in message and problem in message
    assert nb.check_parameters(max_seconds=(None, nb.optional(nb.positive_seconds))).max_seconds is None


def test_an_unknown_task_is_a_parameter_problem() -> None:
    pytest.importorskip("mteb")
    with pytest.raises(ParameterError, match=r"parameter 'tasks' = \['NoSuchTask'\]: .*NoSuchTask"):
        nb.check_parameters(tasks=(["NoSuchTask"], nb.task_names))
