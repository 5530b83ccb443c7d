"""03_quality.ipynb under papermill, as a sweep runs it: its scraps name a valid score record whose score
equals a direct `score` call; a bad parameter stops it with one error naming the parameter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import papermill
import pytest
import scrapbook

from embedkit import defaults
from embedkit.paths import project_file
from embedkit.pipeline.embedder import Embedder
from embedkit.quality.scoring import score
from embedkit.results.files import read_record
from embedkit.runs.execution import require_kernel

QUALITY = project_file("notebooks", "03_quality.ipynb")
TASK = "BIOSSES"
# Exactly what embedkit.runs.plan.expand passes to a quality run, plus what execute_run adds: out_dir, and
# the run's share of the cores (threads) when it runs beside others on a LocalCluster.
SWEEP_PARAMETERS = {
    "model",
    "variant",
    "provider",
    "provider_options",
    "tasks",
    "force",
    "batch_size",
    "threads",
    "out_dir",
    "shared_results_dir",
}


@pytest.fixture(scope="module")
def kernel() -> str:
    require_kernel(defaults.KERNEL)
    return defaults.KERNEL


def _execute(kernel: str, directory: Path, **parameters: Any) -> Path:
    executed = directory / "executed.ipynb"
    papermill.execute_notebook(str(QUALITY), str(executed), parameters=parameters, kernel_name=kernel,
                               cwd=str(directory), progress_bar=False)  # fmt: skip
    return executed


def test_committed_clean_with_the_sweeps_parameters_then_validation() -> None:
    notebook = json.loads(QUALITY.read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)
    assert [cell for cell in code if "parameters" in cell["metadata"].get("tags", [])] == [code[0]]
    assigned = {line.split("=")[0].strip() for line in "".join(code[0]["source"]).splitlines() if "=" in line}
    assert assigned == SWEEP_PARAMETERS
    assert "nb.check_parameters(" in "".join(code[1]["source"])
    assert notebook["metadata"]["kernelspec"]["name"] == "embedkit"


def test_quality_notebook_scores_records_and_glues(
    kernel: str, data_root: Path, minilm: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDKIT_DATA", str(data_root))
    monkeypatch.setenv("EMBEDKIT_RESULTS", str(tmp_path / "results"))  # the results tree the deltas search
    run_dir = tmp_path / "run"
    executed = _execute(kernel, tmp_path, model="all-MiniLM-L6-v2", variant="fp32", provider="CPUExecutionProvider",
                        provider_options={}, tasks=[TASK], force=False, batch_size=32, out_dir=str(run_dir))  # fmt: skip
    scraps = {name: scrap.data for name, scrap in scrapbook.read_notebook(str(executed)).scraps.items()}

    (path,) = map(Path, scraps["records"])
    record = read_record(path)  # validates
    assert path.parent == run_dir and record["scores"] == scraps["scores"]
    assert 0 < scraps["scores"][TASK] < 1 and scraps["forced"] is False
    direct = score(minilm, [TASK], output_dir=tmp_path / "direct", use_cache=False)
    assert scraps["scores"][TASK] == pytest.approx(direct.scores[TASK], abs=1e-6)
    (delta,) = scraps["deltas"]  # the record is its own fp32 reference
    assert delta["task"] == TASK and delta["delta"] == 0 and delta["reference_record_id"] == record["record_id"]
    assert scraps["probe"]["tier"] != "below minimum" and scraps["probe"]["separation"] > 0.5


def test_a_bad_parameter_is_one_error_naming_it(kernel: str, tmp_path: Path) -> None:
    with pytest.raises(papermill.PapermillExecutionError) as caught:
        _execute(kernel, tmp_path, variant="int4", batch_size=0, out_dir=str(tmp_path / "run"))
    assert caught.value.ename == "ParameterError"
    assert "'variant' = 'int4'" in caught.value.evalue and "'batch_size' = 0" in caught.value.evalue
    assert not (tmp_path / "run").exists(), "nothing was scored"
