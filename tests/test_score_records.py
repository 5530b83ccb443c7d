"""Score records end to end: `embedkit score` writes them, `embedkit verify` reproduces them, a forced
score says so, and `scores_frame` turns them into per-task deltas vs fp32."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from records_factory import profile_record
from records_factory import score_record as synthetic_score_record

from embedkit.cli import main
from embedkit.errors import ParityError, UsageError
from embedkit.models.parity import run_parity
from embedkit.pipeline.embedder import Embedder
from embedkit.quality.scoring import ScoreResult, score, score_record, write_score_record
from embedkit.quality.verify import VERIFY_TOLERANCE, verify_record
from embedkit.results.files import read_record, write_record
from embedkit.results.scores import scores_frame

TASK = "BIOSSES"  # 100 pairs: the fast task


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    """Exit code and the one JSON object the command printed (json.loads refuses anything more)."""
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("score") / "records"


@pytest.fixture(scope="module")
def scored(out_dir: Path, data_root: Path, minilm: Embedder) -> dict[str, Any]:
    """`embedkit score all-MiniLM-L6-v2:fp32 --tasks BIOSSES ... --json`, once for this module, after the
    variant's parity gate has run (so this module does not depend on another having run it first)."""
    run_parity(minilm)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["score", "all-MiniLM-L6-v2:fp32", "--tasks", TASK, "--data", str(data_root),
                     "--out", str(out_dir), "--json"])  # fmt: skip
    out = json.loads(printed.getvalue())  # exactly one JSON object, nothing else on stdout
    assert code == 0, out
    return out


def test_score_prints_scores_and_writes_a_valid_record(scored: dict[str, Any], out_dir: Path, minilm: Embedder) -> None:
    assert set(scored) == {"scores", "records"}
    assert 0 < scored["scores"][TASK] < 1  # mteb's 0-1 scale
    (path,) = map(Path, scored["records"])
    assert path.parent == out_dir
    record = read_record(path)
    assert record["kind"] == "score" and record["scores"] == scored["scores"]
    assert record["provider"] == "CPUExecutionProvider" and record["forced"] is False
    variant = record["model"]["variant"]
    assert (variant["name"], variant["sha256"]) == ("fp32", minilm.variant.sha256)
    assert variant["manifest"] == minilm.variant.manifest and variant["parity"]["passed"] is True
    assert record["model"]["spec"]["name"] == "all-MiniLM-L6-v2"
    assert record["scoring"] == {"batch_size": 32, "provider_options": {}, "providers": ["CPUExecutionProvider"],
                                 "intra_op_threads": None, "embedding_cache": True,
                                 "max_seq_length": minilm.tokenizer.max_seq_length}  # fmt: skip
    assert list(record["data_sha256"]) == ["biosses/biosses.tsv"] and "data_revision" not in record
    task = record["tasks"][TASK]
    assert task["main_score"] == record["scores"][TASK] and task["main_score_name"] == "cosine_spearman"
    assert Path(task["result_path"]).is_relative_to(out_dir / "mteb")
    assert task["provenance"]["dataset"]["source"] == "local"


def test_verify_reproduces_the_record(scored: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(capsys, "--json", "verify", scored["records"][0])
    assert code == 0 and out["passed"] is True
    assert out["tasks"][TASK]["recorded"] == scored["scores"][TASK]
    assert out["tasks"][TASK]["abs_delta"] <= VERIFY_TOLERANCE == out["tolerance"]


def test_verify_refuses_a_record_whose_variant_differs_on_disk(
    scored: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    record = read_record(scored["records"][0])
    record["model"]["variant"]["sha256"] = "0" * 64  # as if the file had been re-exported since
    edited = write_record(record, tmp_path / "edited")
    code, out = run_cli(capsys, "--json", "verify", str(edited))
    assert code == 2 and out["error"]["type"] == "RecordMismatchError"
    assert "0" * 64 in out["error"]["message"] and "re-score" in out["error"]["message"]


def test_verify_of_a_file_that_is_no_record_is_one_json_error(capsys: pytest.CaptureFixture[str],
                                                              tmp_path: Path) -> None:  # fmt: skip
    broken = tmp_path / "broken.record.json"
    broken.write_text("{not json")
    code, out = run_cli(capsys, "--json", "verify", str(broken))
    assert code == 2 and out["error"]["type"] == "CorruptRecordError" and str(broken) in out["error"]["message"]


def test_verify_takes_score_records_only(tmp_path: Path) -> None:
    path = write_record(profile_record(10.0), tmp_path)
    with pytest.raises(UsageError, match="verify takes score records"):
        verify_record(path)


def test_a_forced_score_says_so_in_its_record(minilm: Embedder, data_root: Path, tmp_path: Path) -> None:
    failed_gate = {"passed": False, "gate": {"metric": "mean_cosine", "threshold": 0.98, "measured": 0.5}}
    (tmp_path / "parity.json").write_text(json.dumps(failed_gate))
    variant = replace(minilm.variant, directory=tmp_path)  # the same ONNX file, with a failed gate beside it
    failing = Embedder(minilm.tokenizer, minilm.session, minilm.pooling, minilm.normalize, minilm.spec, variant)
    with pytest.raises(ParityError):
        score(failing, [TASK], output_dir=tmp_path / "mteb")
    result = score(failing, [TASK], force=True, output_dir=tmp_path / "mteb")
    record = read_record(write_score_record(result, failing, tmp_path / "records"))
    assert record["forced"] is True and record["model"]["variant"]["parity"] == failed_gate


@pytest.fixture(scope="module")
def biosses(minilm: Embedder, data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> ScoreResult:
    return score(minilm, [TASK], output_dir=tmp_path_factory.mktemp("mteb"))


def test_a_record_must_match_its_embedder(minilm: Embedder, biosses: ScoreResult) -> None:
    with pytest.raises(UsageError, match="but the embedder is"):
        score_record(replace(biosses, variant="int8"), minilm)


def test_metrics_mteb_leaves_undefined_are_recorded_as_null(minilm: Embedder, biosses: ScoreResult) -> None:
    task = biosses.tasks[TASK]
    # as mteb reports average precision for a 77-class task
    undefined = replace(task, mteb_scores={"test": [{**task.mteb_scores["test"][0], "ap": float("nan")}]})
    record = score_record(replace(biosses, tasks={TASK: undefined}), minilm)
    assert record["tasks"][TASK]["mteb_scores"]["test"][0]["ap"] is None
    assert record["scores"][TASK] == task.main_score


@pytest.mark.parametrize(("tasks", "message"), [(",", "names no task"), ("NoSuchTask", "NoSuchTask")])
def test_bad_task_lists_are_one_json_error(capsys: pytest.CaptureFixture[str], minilm: Embedder, data_root: Path,
                                           tasks: str, message: str) -> None:  # fmt: skip
    code, out = run_cli(capsys, "--json", "score", "all-MiniLM-L6-v2:fp32", "--tasks", tasks, "--data", str(data_root))
    assert code == 2 and message in out["error"]["message"]


def test_probe_verb(capsys: pytest.CaptureFixture[str], minilm: Embedder) -> None:
    code, out = run_cli(capsys, "probe", "all-MiniLM-L6-v2:fp32", "--json")
    # all-MiniLM-L6-v2 puts the seed's similar pair at a cosine of 0.69: the "minimum" tier, not "good" (> 0.7)
    assert code == 0 and out["variant"] == "fp32" and out["tier"] != "below minimum"
    assert out["separation"] > 0.5 and abs(out["norm_max"] - 1) < 1e-3


def test_scores_frame_gives_per_task_deltas_vs_fp32(tmp_path: Path) -> None:
    base = {"STSBenchmark": 0.82, "BIOSSES": 0.81}
    made = [
        synthetic_score_record(base, variant="fp32"),
        synthetic_score_record({"STSBenchmark": 0.80, "BIOSSES": 0.78}, variant="int8"),
        synthetic_score_record({"STSBenchmark": 0.70}, model="paraphrase-MiniLM-L3-v2", variant="int8"),
    ]
    for record in made:
        write_record(record, tmp_path)
    frame = scores_frame(tmp_path, tmp_path / "not-written-yet")
    assert len(frame) == 5
    int8 = frame[(frame["model"] == "all-MiniLM-L6-v2") & (frame["variant"] == "int8")].set_index("task")
    assert int8.loc["STSBenchmark", "delta"] == pytest.approx(-0.02)
    assert int8.loc["BIOSSES", "delta"] == pytest.approx(-0.03)
    assert set(int8["reference_record_id"]) == {made[0]["record_id"]}
    fp32 = frame[frame["variant"] == "fp32"]
    assert (fp32["delta"] == 0).all()
    assert pd.isna(frame[frame["model"] == "paraphrase-MiniLM-L3-v2"]["delta"]).all(), "no fp32 record of that model"


def test_scores_frame_of_nothing_is_empty(tmp_path: Path) -> None:
    frame = scores_frame(tmp_path)
    assert frame.empty and {"task", "score", "delta"} <= set(frame.columns)
