"""The ladder's sweep side: a `weights: random` model entry is exported and profiled as a twin and takes
its quality from a `published` run, never from a score run; experiments/ladder.yaml reads as such."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from embedkit import defaults
from embedkit.errors import SweepConfigError
from embedkit.paths import project_file
from embedkit.runs.config import load_config
from embedkit.runs.plan import expand

SWEEP = """name: s
models:
  - {name: all-MiniLM-L6-v2, variants: [fp32, int8-pc]}
  - {name: bge-small-en-v1.5, weights: random, variants: [fp32, int8-pc]}
profile: {batch_sizes: [1]}
quality: {tasks: [STSBenchmark, BIOSSES]}
"""


def _runs(tmp_path: Path, text: str = SWEEP) -> list:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return expand(load_config(path), ["CPU"])


def test_a_random_weights_model_has_a_published_run_and_no_score_run(tmp_path: Path) -> None:
    runs = _runs(tmp_path)
    twin = [run for run in runs if run.parameters["model"] == "bge-small-en-v1.5"]
    assert sorted(run.stage for run in twin) == ["export", "profile", "profile", "published"]
    (published,) = [run for run in twin if run.stage == "published"]
    assert published.parameters == {"model": "bge-small-en-v1.5", "tasks": ["STSBenchmark", "BIOSSES"]}
    assert all(run.parameters["weights"] == "random" for run in twin if run.stage in ("export", "profile"))
    checkpoint = [run for run in runs if run.parameters["model"] == "all-MiniLM-L6-v2"]
    assert sorted(run.stage for run in checkpoint) == ["export", "profile", "profile", "quality", "quality"]
    assert all("weights" not in run.parameters for run in checkpoint)  # a checkpoint's run ids do not change
    stages = [run.stage for run in runs]
    assert stages.index("published") > max(i for i, stage in enumerate(stages) if stage == "export")


def test_the_notebooks_take_what_the_sweep_passes(tmp_path: Path) -> None:
    for run in _runs(tmp_path):
        notebook = nbformat.read(project_file("notebooks", run.notebook), as_version=4)
        (cell,) = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
        assigned = {line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line}
        assert set(run.parameters) <= assigned, run.notebook


def test_weights_must_be_checkpoint_or_random(tmp_path: Path) -> None:
    with pytest.raises(SweepConfigError, match=r"sweep.yaml:4: models.1.weights"):
        _runs(tmp_path, SWEEP.replace("weights: random", "weights: pretrained"))


def test_the_ladder_file_is_the_plans_ladder(tmp_path: Path) -> None:
    ladder = project_file("experiments", "ladder.yaml")
    config = load_config(ladder)
    models = [model["name"] for model in config["models"]]
    assert models == [name for rung in defaults.LADDER for name in rung]
    assert [model.get("weights", "checkpoint") for model in config["models"]] == ["checkpoint"] + ["random"] * 3
    assert {run.parameters["model"] for run in expand(config, ["CPU"]) if run.stage == "published"} == set(models[1:])
    # The same file with checkpoints (a machine with the hub): every rung is scored, nothing is published.
    runs = _runs(tmp_path, ladder.read_text().replace("weights: random", "weights: checkpoint"))
    assert "published" not in {run.stage for run in runs}
    assert {run.parameters["model"] for run in runs if run.stage == "quality"} == set(models)
