"""Sweeps: expansion, strict config errors, resumable papermill runs on a 2-worker dask LocalCluster."""

import json
import os
from pathlib import Path

import psutil
import pytest
from sweep_stand_ins import TWO_VARIANTS_SCORED, WRITE_SCORE_RECORD, stand_ins
from sweep_stand_ins import sweep_file as _sweep_file

from embedkit.errors import SweepConfigError
from embedkit.latency.grid import AXES
from embedkit.results.files import read_record
from embedkit.runs.config import SWEEP_SCHEMA, load_config
from embedkit.runs.limits import Limits
from embedkit.runs.plan import expand
from embedkit.runs.sweep import RUN_FILE, check_run, run_sweep

FAIL_INT8 = 'if variant == "int8":\n    raise RuntimeError("this variant is made to fail")'


@pytest.fixture()
def stand_in_notebooks(tmp_path: Path) -> Path:
    return stand_ins(tmp_path / "notebooks", quality=(FAIL_INT8, WRITE_SCORE_RECORD))


SWEEP = "name: three-runs\n" + TWO_VARIANTS_SCORED


def test_expansion_orders_phases_and_names_runs(tmp_path):
    config = load_config(_sweep_file(tmp_path, SWEEP + "profile:\n  batch_sizes: [1, 32]\n"))
    runs = expand(config, ["CPU"])
    assert [r.stage for r in runs] == ["export", "quality", "quality", "profile", "profile"]
    assert len({r.run_id for r in runs}) == 5
    assert runs[1].parameters["provider"] == "CPUExecutionProvider" and runs[3].parameters["grid"] == {
        "batch_sizes": [1, 32]
    }


@pytest.mark.parametrize(
    "text, line, key, message",
    [
        ("name: x\nmodels: [{name: m}]\ncolour: red\n", 3, "colour", "unknown key; allowed here: name, description"),
        (
            "name: x\nmodels: [{name: m}]\nprofile: {batch_sizes: [1, 'eight']}\n",
            3,
            "profile.batch_sizes.1",
            "'eight' is not of type 'integer'",
        ),
        ("name: x\nmodels:\n  - name: m\n    variant: fp32\n", 4, "models.0.variant", "unknown key"),
        (
            "name: x\nmodels: [{name: m}]\nprofile:\n  limits: {minutes: 3}\n",
            4,
            "profile.limits.minutes",
            "unknown key; allowed here: memory_mb, seconds",
        ),
        (
            "name: x\nmodels: [{name: m}]\nlimits:\n  memory_mb: lots\n",
            4,
            "limits.memory_mb",
            "'lots' is not of type 'number'",
        ),
        (
            "name: x\nmodels: [{name: m}]\nquality: {limits: {seconds: 0}}\n",
            3,
            "quality.limits.seconds",
            "less than or equal to the minimum of 0",
        ),
        (
            "name: x\nmodels:\n  - name: m\n    variants: [fp32, fp64]\n",
            4,
            "models.0.variants.1",
            "'fp64' is not one of ['fp32', 'O1'",
        ),
        (
            "name: x\nmodels: [{name: m}]\nprofile: {seq_buckets: [enormous]}\n",
            3,
            "profile.seq_buckets.0",
            "'enormous' is not one of ['short', 'medium', 'long']",
        ),
        (
            "name: x\nmodels: [{name: m}]\nprofile: {spinning: [sometimes]}\n",
            3,
            "profile.spinning.0",
            "'sometimes' is not one of ['always', ",
        ),
        ("name: ../../x\nmodels: [{name: m}]\n", 1, "name", "'../../x' does not match"),
        ("name: ..\nmodels: [{name: m}]\n", 1, "name", "'..' does not match"),
        ("name: x\n", 1, "(top level)", "'models' is a required property"),
        ("", 1, "(top level)", "None is not of type 'object'"),
        (
            "name: x\nmodels:\n  - name: m\n  - name: n\n  - name: m\n",
            5,
            "models.2.name",
            "'m' is listed twice (first as models.0)",
        ),
        (
            "name: x\nmodels: [{name: m}]\nproviders: [CPU, Quantum]\n",
            3,
            "providers.1",
            "unknown execution provider 'Quantum'",
        ),
        (
            "name: x\nmodels: [{name: m}]\nquality:\n  tasks: [STSBenchmark]\n  providers: [CUDA]\n",
            5,
            "quality.providers.0",
            "'CUDA' is not among providers or optional_providers",
        ),
        (
            "name: x\nmodels: [{name: m}]\nprovider_options:\n  CoreML: {ModelFormat: MLProgram}\n",
            4,
            "provider_options.CoreML",
            "'CoreML' is not among providers",
        ),
    ],
)
def test_bad_sweep_files_name_the_file_line_and_key(tmp_path, text, line, key, message):
    path = _sweep_file(tmp_path, text)
    with pytest.raises(SweepConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}:{line}: {key}: ") and message in str(caught.value)


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("name: x\nmodels: [{name: m}\n", 3, "not valid YAML: expected ',' or ']'"),
        ("name: x\nmodels: [{name: m}]\nname: y\n", 3, "not valid YAML: key 'name' given twice (first on line 1)"),
    ],
)
def test_sweep_files_that_are_not_yaml_mappings_name_the_file_and_line(tmp_path, text, line, message):
    path = _sweep_file(tmp_path, text)
    with pytest.raises(SweepConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}:{line}: {message}")


def test_every_grid_axis_is_a_profile_key_of_the_sweep_file(tmp_path):
    profile = SWEEP_SCHEMA["properties"]["profile"]["properties"]
    assert {axis.key for axis in AXES} <= set(profile)
    config = load_config(_sweep_file(tmp_path, SWEEP + "profile:\n  spinning: [never, always]\n  samples: 5\n"))
    (profile_run, *_) = [run for run in expand(config, ["CPU"]) if run.stage == "profile"]
    assert (
        profile_run.parameters["grid"] == {"spinning": ["never", "always"]} and profile_run.parameters["samples"] == 5
    )


def test_limits_come_from_the_file_sections_and_the_command_line(tmp_path):
    config = load_config(
        _sweep_file(tmp_path, SWEEP + "limits: {memory_mb: 500}\nprofile: {batch_sizes: [1], limits: {seconds: 60}}\n")
    )
    config["quality"]["limits"] = {"memory_mb": 900}
    by_stage = {run.stage: run for run in expand(config, ["CPU"])}
    assert by_stage["export"].limits == Limits(memory_mb=500)
    assert by_stage["quality"].limits == Limits(memory_mb=900)
    assert by_stage["profile"].limits == Limits(memory_mb=500, seconds=60)
    assert "limits" not in by_stage["profile"].parameters
    overridden = {run.stage: run for run in expand(config, ["CPU"], Limits(seconds=5))}
    assert overridden["quality"].limits == Limits(memory_mb=900, seconds=5)
    assert overridden["profile"].limits == Limits(memory_mb=500, seconds=5)
    # Limits guard a run; they are not what it measures: the same run, the same id, nothing redone.
    assert {run.run_id for run in overridden.values()} == {run.run_id for run in by_stage.values()}


@pytest.mark.slow
def test_sweep_records_failures_goes_on_and_resumes(tmp_path, stand_in_notebooks, capfd):
    config = _sweep_file(tmp_path, SWEEP)
    summary = run_sweep(config, notebooks_dir=stand_in_notebooks, output_root=tmp_path / "results")
    # One progress bar per phase that has runs; kernels talk over IPC, so ipykernel's warning per TCP
    # kernel start never reaches the terminal.
    terminal = capfd.readouterr().err
    assert "exports " in terminal and "1/1" in terminal and "scoring " in terminal and "2/2" in terminal
    assert "profiles" not in terminal and "failed: " in terminal
    assert "Kernel is running over TCP" not in terminal
    by_variant = {
        o.run_id.split("-tiny-")[1].split("-CPU")[0] if o.stage == "quality" else o.stage: o for o in summary.outcomes
    }
    assert summary.counts() == {"done": 2, "skipped": 0, "failed": 1}
    good, broken = by_variant["fp32"], by_variant["int8"]
    sweep_dir = Path(summary.directory)
    record = read_record(sweep_dir / good.run_id / good.records[0])
    assert record["scores"] == {"STSBenchmark": 0.8} and record["model"]["variant"]["name"] == "fp32"
    assert broken.error["type"] == "RuntimeError" and "made to fail" in broken.error["message"]
    status = json.loads((sweep_dir / broken.run_id / RUN_FILE).read_text())
    assert status["state"] == "failed" and (sweep_dir / broken.run_id / "executed.ipynb").is_file()
    # Two runs side by side on the LocalCluster share the cores out (at least one thread each); the share
    # is recorded, not part of the run id.
    threads = status["execution"]["threads"]
    assert threads >= 1 and 2 * threads <= max(2, psutil.cpu_count(logical=False) or 1)
    # The quality runs ran on the LocalCluster's worker processes, not here.
    import scrapbook

    pid = scrapbook.read_notebook(str(sweep_dir / good.run_id / "executed.ipynb")).scraps["pid"].data
    assert pid != os.getpid()

    again = run_sweep(config, notebooks_dir=stand_in_notebooks, output_root=tmp_path / "results")
    assert again.counts() == {"done": 0, "skipped": 2, "failed": 1}
    assert check_run(sweep_dir / good.run_id)[0] and not check_run(sweep_dir / broken.run_id)[0]
    assert again.quarantined == []


def test_a_listed_record_that_no_longer_validates_makes_the_run_incomplete(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "r.record.json").write_text(json.dumps({"schema_version": 1, "kind": "score"}))
    (run_dir / RUN_FILE).write_text(json.dumps({"state": "done", "records": ["r.record.json"]}))
    assert check_run(run_dir) == (False, [])


ROUNDS = (
    "name: rounds\n"
    + TWO_VARIANTS_SCORED.replace("tasks: [STSBenchmark]", "tasks: [STSBenchmark, SciFact]")
    + "profile:\n  batch_sizes: [1, 32]\nfirst_report:\n  batch_sizes: [1]\n  tasks: [STSBenchmark]\n"
)


def test_a_first_report_section_makes_round_1_of_its_batch_sizes_and_tasks(tmp_path):
    runs = expand(load_config(_sweep_file(tmp_path, ROUNDS)), ["CPU"])
    shape = [(r.round, r.stage, r.parameters.get("tasks"), r.parameters.get("grid")) for r in runs]
    assert shape == [
        (1, "export", None, None),
        (1, "quality", ["STSBenchmark"], None),
        (1, "quality", ["STSBenchmark"], None),
        (1, "profile", None, {"batch_sizes": [1]}),
        (1, "profile", None, {"batch_sizes": [1]}),
        # Round 2 scores every task: each variant ends with one complete score record.
        (2, "quality", ["STSBenchmark", "SciFact"], None),
        (2, "quality", ["STSBenchmark", "SciFact"], None),
        (2, "profile", None, {"batch_sizes": [32]}),
        (2, "profile", None, {"batch_sizes": [32]}),
    ]
    assert len({r.run_id for r in runs}) == len(runs)


def test_a_first_report_names_only_the_sweeps_own_batch_sizes_and_tasks(tmp_path):
    bad = ROUNDS.replace("first_report:\n  batch_sizes: [1]", "first_report:\n  batch_sizes: [8]")
    with pytest.raises(SweepConfigError, match=r"first_report\.batch_sizes\.0: 8 is not among the sweep's"):
        load_config(_sweep_file(tmp_path, bad))


@pytest.mark.slow
def test_round_1_is_done_and_reported_before_round_2_starts(tmp_path):
    notebooks = stand_ins(tmp_path / "notebooks", quality=(WRITE_SCORE_RECORD,),
                          profile=('import scrapbook as sb\nsb.glue("records", [])',))  # fmt: skip
    config = _sweep_file(tmp_path, ROUNDS)
    seen = []

    def first_report(summary, pending):
        sweep_dir = Path(summary.directory)
        seen.append((summary.counts(), sorted(run.round for run in pending),
                     [(sweep_dir / run.run_id / RUN_FILE).exists() for run in pending]))  # fmt: skip

    summary = run_sweep(
        config, notebooks_dir=notebooks, output_root=tmp_path / "results", after_first_round=first_report
    )
    assert seen == [({"done": 5, "skipped": 0, "failed": 0}, [2, 2, 2, 2], [False] * 4)]
    assert summary.counts() == {"done": 9, "skipped": 0, "failed": 0}
    # The quality runs share the sweep's mteb results tree: round 2 takes what round 1 scored.
    quality = [o for o in summary.outcomes if o.stage == "quality"]
    shared = {json.loads((Path(summary.directory) / o.run_id / RUN_FILE).read_text())["execution"].get(
        "shared_results_dir") for o in quality}  # fmt: skip
    assert shared == {str(Path(summary.directory) / "mteb")}
    # Everything done: a rerun has no round 2 left, so no first report either.
    again = run_sweep(config, notebooks_dir=notebooks, output_root=tmp_path / "results", after_first_round=first_report)
    assert again.counts() == {"done": 0, "skipped": 9, "failed": 0} and len(seen) == 1
