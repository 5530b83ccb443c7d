"""Sweeps: expansion, strict config errors, resumable papermill runs on a 2-worker dask LocalCluster."""

import json
import os
from pathlib import Path

import nbformat
import pytest

from embedkit.records import read_record
from embedkit.sweep import RUN_FILE, SweepConfigError, expand, load_config, run_complete, run_sweep

# Stand-ins for the real notebooks: the same parameters cell and scraps, a synthetic score record, and a
# failure on demand. They keep this test about the sweep machinery; the real notebooks have their own.
_RECORD_CELL = """
import os
import scrapbook as sb
from embedkit.records import new_record, write_record
if variant == "broken":
    raise RuntimeError("this variant is made to fail")
body = {"model": {"spec": {"name": model}, "variant": {"name": variant, "sha256": "0" * 64, "manifest": {}}},
        "provider": provider, "scores": {"STSBenchmark": 0.8}, "tasks": {"STSBenchmark": {}}, "forced": False,
        "data_sha256": {"sts-test.csv": "1" * 64}}
sb.glue("records", [str(write_record(new_record("score", body), out_dir))])
sb.glue("pid", os.getpid())
"""


def _notebook(directory: Path, name: str, parameters: str, body: str) -> None:
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    notebook.cells = [cell, nbformat.v4.new_code_cell(body)]
    notebook.metadata["kernelspec"] = {"name": "embedkit", "display_name": "embedkit", "language": "python"}
    nbformat.write(notebook, directory / name)


@pytest.fixture()
def stand_in_notebooks(tmp_path: Path) -> Path:
    directory = tmp_path / "notebooks"
    directory.mkdir()
    _notebook(directory, "01_export.ipynb", 'model = ""\nvariants = []\nout_dir = "."',
              'import scrapbook as sb\nsb.glue("records", [])')
    quality = 'model = ""\nvariant = ""\nprovider = ""\nprovider_options = {}\ntasks = []\nforce = False\n' \
              'batch_size = 32\nout_dir = "."'
    _notebook(directory, "03_quality.ipynb", quality, _RECORD_CELL)
    _notebook(directory, "02_profile.ipynb", 'out_dir = "."', 'raise RuntimeError("no profile runs here")')
    return directory


def _sweep_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


SWEEP = """
name: three-runs
models:
  - name: tiny
    variants: [good, broken]
providers: [CPU]
quality:
  tasks: [STSBenchmark]
"""


def test_expansion_orders_phases_and_names_runs(tmp_path):
    config = load_config(_sweep_file(tmp_path, SWEEP + "profile:\n  batch_sizes: [1, 32]\n"))
    runs = expand(config, ["CPU"])
    assert [r.stage for r in runs] == ["export", "quality", "quality", "profile", "profile"]
    assert len({r.run_id for r in runs}) == 5
    assert runs[1].parameters["provider"] == "CPUExecutionProvider" and runs[3].parameters["batch_sizes"] == [1, 32]


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: x\nmodels: [{name: m}]\ncolour: red\n", r"\(top level\): Additional properties .*'colour'"),
        ("name: x\nmodels: [{name: m}]\nprofile: {batch_sizes: [1, 'eight']}\n", r"profile.batch_sizes.1: 'eight'"),
        ("name: x\nmodels: [{name: m, variant: fp32}]\n", r"models.0: Additional properties .*'variant'"),
        ("name: x\nmodels: [{name: m}\n", "not valid YAML"),
    ],
)
def test_bad_sweep_files_name_the_file_and_key(tmp_path, text, message):
    with pytest.raises(SweepConfigError, match=message):
        load_config(_sweep_file(tmp_path, text))


@pytest.mark.slow
def test_sweep_records_failures_goes_on_and_resumes(tmp_path, stand_in_notebooks):
    config = _sweep_file(tmp_path, SWEEP)
    summary = run_sweep(config, notebooks_dir=stand_in_notebooks, output_root=tmp_path / "results")
    by_variant = {o.run_id.split("-tiny-")[1].split("-CPU")[0] if o.stage == "quality" else o.stage: o
                  for o in summary.outcomes}
    assert summary.counts() == {"done": 2, "skipped": 0, "failed": 1}
    good, broken = by_variant["good"], by_variant["broken"]
    sweep_dir = Path(summary.directory)
    record = read_record(sweep_dir / good.run_id / good.records[0])
    assert record["scores"] == {"STSBenchmark": 0.8} and record["model"]["variant"]["name"] == "good"
    assert broken.error["type"] == "RuntimeError" and "made to fail" in broken.error["message"]
    status = json.loads((sweep_dir / broken.run_id / RUN_FILE).read_text())
    assert status["state"] == "failed" and (sweep_dir / broken.run_id / "executed.ipynb").is_file()
    # The quality runs ran on the LocalCluster's worker processes, not here.
    import scrapbook

    pid = scrapbook.read_notebook(str(sweep_dir / good.run_id / "executed.ipynb")).scraps["pid"].data
    assert pid != os.getpid()

    again = run_sweep(config, notebooks_dir=stand_in_notebooks, output_root=tmp_path / "results")
    assert again.counts() == {"done": 0, "skipped": 2, "failed": 1}
    assert run_complete(sweep_dir / good.run_id) and not run_complete(sweep_dir / broken.run_id)


def test_a_listed_record_that_no_longer_validates_makes_the_run_incomplete(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "r.record.json").write_text("{truncated")
    (run_dir / RUN_FILE).write_text(json.dumps({"state": "done", "records": ["r.record.json"]}))
    assert not run_complete(run_dir)
