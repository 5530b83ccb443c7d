"""Published MTEB quality: the reader (through mteb's ResultCache) on a small copy of the results repository
made here, the `published` record, and the CLI verb."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from embedkit.cli import main
from embedkit.errors import InvalidRecordError, PublishedResultsError, UsageError
from embedkit.quality.published import published_record, published_scores
from embedkit.results.files import read_record
from embedkit.results.schema import validate_record

REPO = "tiny-org/tiny-embedder"
SHA = "0123456789abcdef0123456789abcdef01234567"


def _task_file(directory: Path, task: str, splits: dict[str, float]) -> None:
    scores = {split: [{"hf_subset": "default", "languages": ["eng-Latn"], "main_score": value, "spearman": value}]
              for split, value in splits.items()}  # fmt: skip
    body = {"dataset_revision": "d" * 40, "mteb_version": "1.20.0", "evaluation_time": 1.0,
            "kg_co2_emissions": None, "scores": scores, "task_name": task}  # fmt: skip
    (directory / f"{task}.json").write_text(json.dumps(body))


@pytest.fixture(scope="module")
def results_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two revision folders: the commit one holds STSBenchmark and SciFact (test 0.70 and train 0.90 splits),
    `external` holds BIOSSES and an older STSBenchmark that must not win."""
    root = tmp_path_factory.mktemp("published")
    for revision, tasks in ((SHA, {"STSBenchmark": {"test": 0.85}, "SciFact": {"test": 0.70, "train": 0.90}}),
                            ("external", {"BIOSSES": {"test": 0.80}, "STSBenchmark": {"test": 0.11}})):  # fmt: skip
        folder = root / "remote" / "results" / REPO.replace("/", "__") / revision
        folder.mkdir(parents=True)
        (folder / "model_meta.json").write_text(json.dumps({"name": REPO, "revision": revision}))
        for task, splits in tasks.items():
            _task_file(folder, task, splits)
    return root


def test_reader_takes_the_test_split_and_names_each_source(results_copy: Path) -> None:
    published = published_scores(REPO, ["SciFact", "BIOSSES", "STSBenchmark"], results_copy)
    # SciFact's test split, not the mean over test and train that TaskResult.get_score() gives (0.80).
    assert published.main_scores() == {"SciFact": 0.70, "BIOSSES": 0.80, "STSBenchmark": 0.85}
    sources = published.source()["tasks"]
    assert sources["SciFact"]["file"] == f"remote/results/tiny-org__tiny-embedder/{SHA}/SciFact.json"
    assert sources["SciFact"]["split"] == "test"
    assert sources["BIOSSES"]["revision"] == "external"
    assert sources["BIOSSES"]["file"].endswith("external/BIOSSES.json")
    assert sources["STSBenchmark"]["revision"] == SHA  # the commit folder wins over `external`
    assert (results_copy / sources["SciFact"]["file"]).is_file()


def test_reader_refuses_what_is_not_there(results_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(PublishedResultsError, match="Banking77Classification"):
        published_scores(REPO, ["STSBenchmark", "Banking77Classification"], results_copy)
    with pytest.raises(PublishedResultsError, match="no published"):
        published_scores("tiny-org/unknown", None, results_copy)
    with pytest.raises(PublishedResultsError, match="ResultCache layout"):
        published_scores(REPO, None, tmp_path)
    with pytest.raises(UsageError, match="hub id"):
        published_scores("all-MiniLM-L6-v2", None, results_copy)  # a pip-packaged spec has no results repo name


def test_published_record_is_validated(results_copy: Path) -> None:
    record = published_record(published_scores(REPO, ["SciFact", "BIOSSES"], results_copy))
    assert record["kind"] == "published"
    assert record["model"]["hub"] == {"repo_id": REPO, "revision": None}
    assert record["sources"]["BIOSSES"]["revision"] == "external"
    missing_source = copy.deepcopy(record)
    del missing_source["sources"]["BIOSSES"]
    with pytest.raises(InvalidRecordError, match="sources for"):
        validate_record(missing_source)
    bad_score = copy.deepcopy(record)
    bad_score["scores"]["SciFact"] = "0.7"
    with pytest.raises(InvalidRecordError, match="scores"):
        validate_record(bad_score)
    with_variant = copy.deepcopy(record)
    with_variant["model"]["variant"] = {"name": "int8"}  # published quality names no export variant
    with pytest.raises(InvalidRecordError):
        validate_record(with_variant)


def test_cli_prints_scores_and_sources_and_writes_the_record(
    results_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--json", "published", REPO, "--tasks", "SciFact,BIOSSES", "--results", str(results_copy),
                 "--record", "--out", str(tmp_path)])  # fmt: skip
    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    assert printed["scores"] == {"SciFact": 0.70, "BIOSSES": 0.80}
    assert printed["source"]["tasks"]["SciFact"]["split"] == "test"
    assert read_record(Path(printed["records"][0]))["scores"] == printed["scores"]
    assert main(["--json", "published", REPO, "--tasks", "STS12", "--results", str(results_copy)]) == 2
    assert "PublishedResultsError" in capsys.readouterr().out


def test_the_sweeps_published_notebook_writes_the_record(results_copy: Path, tmp_path: Path) -> None:
    import papermill
    import scrapbook

    from embedkit import defaults
    from embedkit.paths import project_file
    from embedkit.runs.execution import require_kernel

    require_kernel(defaults.KERNEL)
    executed = tmp_path / "executed.ipynb"
    papermill.execute_notebook(str(project_file("notebooks", "06_published.ipynb")), str(executed),
                               parameters={"model": REPO, "tasks": ["SciFact"], "results": str(results_copy),
                                           "out_dir": str(tmp_path)},
                               kernel_name=defaults.KERNEL, progress_bar=False)  # fmt: skip
    (path,) = scrapbook.read_notebook(str(executed)).scraps["records"].data
    record = read_record(Path(path))
    assert record["kind"] == "published" and record["scores"] == {"SciFact": 0.70}
