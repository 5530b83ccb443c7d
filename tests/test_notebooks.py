"""01_export.ipynb and 02_profile.ipynb under papermill with small parameters, as a sweep runs them:
their scraps are read back and checked against the files and records they name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import papermill
import pytest
import scrapbook

from embedkit import defaults
from embedkit.latency.grid import AXES
from embedkit.latency.summary import record_summary
from embedkit.paths import project_files_dir
from embedkit.pipeline.embedder import Embedder
from embedkit.results.files import read_record
from embedkit.runs.execution import require_kernel

NOTEBOOKS = project_files_dir("notebooks")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kernel() -> str:
    require_kernel(defaults.KERNEL)
    return defaults.KERNEL


def _scraps(kernel: str, notebook: str, directory: Path, **parameters: Any) -> dict[str, Any]:
    executed = directory / f"executed-{notebook}"
    papermill.execute_notebook(str(NOTEBOOKS / notebook), str(executed), parameters=parameters, kernel_name=kernel,
                               cwd=str(directory), progress_bar=False)  # fmt: skip
    return {name: scrap.data for name, scrap in scrapbook.read_notebook(str(executed)).scraps.items()}


@pytest.mark.parametrize("notebook", ["01_export.ipynb", "02_profile.ipynb"])
def test_committed_clean_with_one_parameters_cell(notebook: str) -> None:
    cells = [cell for cell in json.loads((NOTEBOOKS / notebook).read_text())["cells"] if cell["cell_type"] == "code"]
    assert all(cell["outputs"] == [] and cell["execution_count"] is None for cell in cells)
    assert [cell for cell in cells if "parameters" in cell["metadata"].get("tags", [])] == [cells[0]]
    assert "check_parameters(" in "".join(cells[1]["source"])


def test_export_notebook_glues_variants_parity_and_the_coreml_answer(
    kernel: str, minilm: Embedder, tmp_path: Path
) -> None:
    scraps = _scraps(kernel, "01_export.ipynb", tmp_path, model="all-MiniLM-L6-v2", variants=["fp32"],
                     check_parity=True, out_dir=str(tmp_path))  # fmt: skip
    (variant,) = scraps["variants"]
    assert variant["variant"] == "fp32" and minilm.variant.sha256.startswith(variant["sha256"])
    (parity,) = scraps["parity"]
    assert parity["passed"] is True and parity["min_cosine"] >= 0.99999
    assert scraps["graph_facts"]["embedding_rows"] == 30522
    # The seed plan's CoreML claim, answered: the 30,522-row word embedding exceeds CoreML's 16,384.
    assert any(name.endswith("word_embeddings.weight") for name in scraps["coreml_oversized"])
    assert scraps["records"] == []


def test_profile_notebook_writes_valid_records_and_glues_their_summary(
    kernel: str, minilm: Embedder, tmp_path: Path
) -> None:
    scraps = _scraps(kernel, "02_profile.ipynb", tmp_path, model="all-MiniLM-L6-v2", variant="fp32", provider="CPU",
                     provider_options={}, grid={"batch_sizes": [1, 4], "seq_buckets": ["short"], "threads": [1]},
                     samples=5, min_seconds=0.0, max_seconds=5.0, out_dir=str(tmp_path / "records"))  # fmt: skip
    written = [read_record(path) for path in scraps["records"]]  # read_record validates
    assert sorted(record["grid"]["batch_size"] for record in written) == [1, 4]
    assert all(Path(path).parent == tmp_path / "records" for path in scraps["records"])
    assert all(record["grid"]["sampling"]["max_seconds"] == 5.0 for record in written)
    summary = {row["batch_size"]: row for row in scraps["summary"]}
    for record in written:
        row = summary[record["grid"]["batch_size"]]
        # The profiler's own summary of the record, beside the record's value on every grid axis.
        assert row == {**{axis.field: record["grid"][axis.field] for axis in AXES}, **record_summary(record)}
        assert row["intra_op_threads"] == 1 and row["spinning"] == defaults.SPINNING  # an axis not given: its default
    assert {row["requested"] for row in scraps["placement"]} == {"CPUExecutionProvider"}
    files = [Path(path) for formats in scraps["figures"].values() for path in formats.values()]
    assert {"cdf", "stages"} <= set(scraps["figures"]) and all(path.stat().st_size > 0 for path in files)


def test_profile_notebook_names_a_bad_parameter(kernel: str, tmp_path: Path) -> None:
    with pytest.raises(papermill.PapermillExecutionError) as caught:
        _scraps(kernel, "02_profile.ipynb", tmp_path, max_seconds=0, grid={"batch_sizes": [0]}, out_dir=str(tmp_path))
    assert caught.value.ename == "ParameterError" and "parameter 'max_seconds' = 0" in caught.value.evalue
    assert (
        "parameter 'grid' = {'batch_sizes': [0]}: batch_sizes: 0 is less than the minimum of 1" in caught.value.evalue
    )
