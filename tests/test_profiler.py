"""The profiler: grid expansion, real bucket texts, worker processes, environments, comparisons."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from embedkit.cli import main
from embedkit.errors import ProfileWorkerError, ProviderUnavailableError
from embedkit.latency import environments
from embedkit.latency.environments import PYTHONS_ENV, Environments, candidate_interpreters, probe
from embedkit.latency.grid import Backend, Grid, GridPoint, ProviderConfig, Scenario, model_variants
from embedkit.latency.launcher import compare, run_grid, run_point
from embedkit.latency.summary import record_summary
from embedkit.latency.worker import MeasuredModel, cold_start, session_config, worker_main
from embedkit.latency.workload import bucket_texts
from embedkit.paths import PROJECT_ENV
from embedkit.quality.mirror import read_stsbenchmark
from embedkit.results.files import RECORD_SUFFIX, read_record

# Enough to exercise every step; the statistics need at least two samples.
TINY = {"min_samples": 6, "min_seconds": 0.0, "warmup_window": 2, "warmup_max_seconds": 0.2}
HERE_ONLY = Environments([Path(sys.executable)])


# The stock onnxruntime wheel has CoreML on macOS: there it is not a missing provider.
NOT_ON_MAC = pytest.mark.skipif(sys.platform == "darwin", reason="the stock onnxruntime wheel has CoreML on macOS")


@pytest.fixture()
def tiny(tiny_checkpoint: Path, tiny_embedder, isolated_models: Path, data_root: Path):
    """(model reference, Variant) of the exported tiny BERT, with EMBEDKIT_MODELS pointing at it."""
    return str(tiny_checkpoint), tiny_embedder.variant


def _point(model: str, provider: ProviderConfig, batch: int = 1, bucket: str = "short", threads: int | None = 1):
    return GridPoint(Backend(model, "fp32", provider, threads), Scenario(batch, bucket, **TINY))


# --- grid -------------------------------------------------------------------------------------------


def test_the_default_grid_is_batch_by_bucket_per_backend() -> None:
    grid = Grid(models=model_variants(["all-MiniLM-L6-v2"], ["fp32", "int8"]))
    points = grid.points()
    assert len(points) == 2 * 3 * 3
    first = points[:9]
    assert {p.backend for p in first} == {first[0].backend}  # one backend's points run back to back
    assert [(p.scenario.batch_size, p.scenario.seq_bucket) for p in first[:4]] == [
        (1, "short"),
        (1, "medium"),
        (1, "long"),
        (8, "short"),
    ]
    assert first[0].backend.provider.name == "CPUExecutionProvider" and first[0].backend.intra_op_threads == 2
    assert first[0].scenario.min_samples == 300 and first[0].scenario.min_seconds == 10.0


def test_grid_axes_multiply_and_measurement_settings_apply_to_every_point() -> None:
    coreml_units = ("ALL", "CPUAndNeuralEngine", "CPUAndGPU", "CPUOnly")
    coreml = tuple(
        ProviderConfig.of("CoreML", {"ModelFormat": model_format, "MLComputeUnits": units, "ModelCacheDirectory": "/c"})
        for model_format in ("MLProgram", "NeuralNetwork")
        for units in coreml_units
    )
    grid = Grid(
        providers=(ProviderConfig.of("CPU"), *coreml),
        batch_sizes=(1, 32),
        seq_buckets=("short",),
        threads=(1, None),
        spinning=("in-run", "always"),
    ).with_measurement(min_samples=50, min_seconds=2.0, max_seconds=30.0)
    points = grid.points()
    assert len(points) == 9 * 2 * 2 * 2
    assert {p.backend.spinning for p in points} == {"in-run", "always"}
    assert sum(p.backend.label().endswith("spinning=always") for p in points) == len(points) // 2
    assert {p.scenario.min_samples for p in points} == {50} and {p.scenario.max_seconds for p in points} == {30.0}
    units = {p.backend.provider.options_dict["MLComputeUnits"] for p in points if "CoreML" in p.backend.provider.name}
    assert units == set(coreml_units)


@pytest.mark.parametrize(
    ("provider", "options"),
    [
        ("CoreML", {"ModelFormat": "MLProgram", "MLComputeUnits": "CPUAndNeuralEngine", "ModelCacheDirectory": "/c"}),
        ("CUDA", {"device_id": 0, "cudnn_conv_algo_search": "HEURISTIC"}),
        ("OpenVINO", {"device_type": "CPU", "precision": "FP32"}),
    ],
)
def test_provider_options_survive_the_trip_to_a_worker_as_strings(provider: str, options: dict) -> None:
    point = GridPoint(Backend("m", "fp32", ProviderConfig.of(provider, options), 2, "never"), Scenario(8, "medium"))
    received = GridPoint.from_dict(json.loads(json.dumps(point.to_dict())))
    assert received == point
    assert received.backend.provider.options_dict == {key: str(value) for key, value in options.items()}


def test_bad_option_values_are_refused_when_the_grid_is_defined() -> None:
    with pytest.raises(ValueError, match="MLComputeUnits='GPU' is not one of"):
        ProviderConfig.of("CoreML", {"MLComputeUnits": "GPU"})
    with pytest.raises(ValueError, match="unknown sequence bucket"):
        Scenario(1, "huge")
    with pytest.raises(ValueError, match="spinning must be one of"):
        Backend("m", "fp32", spinning="sometimes")


def test_openvino_gets_the_thread_count_through_its_own_option() -> None:
    backend = Backend("m", "fp32", ProviderConfig.of("OpenVINO"), 2)
    assert session_config(backend).provider_options == {"num_of_threads": "2"}
    assert session_config(replace(backend, provider=ProviderConfig.of("CPU"))).provider_options == {}


# --- bucket texts -----------------------------------------------------------------------------------


def test_bucket_texts_are_real_sentences_of_the_target_length(minilm, data_root: Path) -> None:
    sentences = {s for pair in read_stsbenchmark(data_root) for s in (pair.sentence1, pair.sentence2)}
    corpus_words = {word for sentence in sentences for word in sentence.split()}
    max_len = minilm.tokenizer.max_seq_length
    for bucket, low, high in (("short", 16, 16), ("medium", 60, 64), ("long", max_len - 6, max_len)):
        batch = bucket_texts(minilm.tokenizer, bucket, 8)
        assert len(set(batch.texts)) == 8
        assert all(low <= count <= high for count in batch.token_counts), (bucket, batch.token_counts)
        encoded = minilm.tokenizer.encode(list(batch.texts))
        assert encoded.n_truncated == 0 and list(encoded.attention_mask.sum(axis=1)) == list(batch.token_counts)
        assert all(set(text.split()) <= corpus_words for text in batch.texts)
    assert set(bucket_texts(minilm.tokenizer, "short", 8).texts) <= sentences  # whole sentences when one fits


def test_buckets_are_capped_at_the_model_max_seq_length(tiny_embedder, data_root: Path) -> None:
    batch = bucket_texts(tiny_embedder.tokenizer, "medium", 2)
    assert batch.target_tokens == tiny_embedder.tokenizer.max_seq_length == 24


# --- environments -----------------------------------------------------------------------------------


def test_this_interpreter_comes_first_and_extra_ones_can_be_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PYTHONS_ENV, "/opt/elsewhere/bin/python")
    candidates = candidate_interpreters()
    assert candidates[0] == Path(sys.executable) and candidates[-1] == Path("/opt/elsewhere/bin/python")
    assert probe(Path("/opt/elsewhere/bin/python")) is None
    assert "CPUExecutionProvider" in HERE_ONLY.providing(["CPUExecutionProvider"]).providers


def test_accelerator_venvs_are_found_in_the_project_and_none_without_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(PYTHONS_ENV, raising=False)
    venv_python = tmp_path / ".venv-openvino" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.symlink_to(sys.executable)
    monkeypatch.setenv(PROJECT_ENV, str(tmp_path))
    assert candidate_interpreters() == [Path(sys.executable), venv_python]
    monkeypatch.setattr(environments, "project_dir", lambda: None)  # a wheel installed outside any checkout
    assert candidate_interpreters() == [Path(sys.executable)]


@pytest.mark.parametrize(
    ("provider", "hint"),
    [
        pytest.param("CoreMLExecutionProvider", "macOS", marks=NOT_ON_MAC),
        ("OpenVINOExecutionProvider", "make openvino-env"),
        ("CUDAExecutionProvider", "make cuda-env"),
    ],
)
def test_a_missing_provider_names_what_is_available(provider: str, hint: str) -> None:
    with pytest.raises(ProviderUnavailableError) as error:
        Environments([Path(sys.executable), Path("/nonexistent/python")]).providing([provider])
    message = str(error.value)
    assert provider in message and str(sys.executable) in message and "CPUExecutionProvider" in message
    assert hint in message


def test_a_grid_with_a_missing_provider_fails_before_measuring(tiny, tmp_path: Path) -> None:
    model, _ = tiny
    points = [_point(model, ProviderConfig.of("CPU")), _point(model, ProviderConfig.of("DirectML"))]
    with pytest.raises(ProviderUnavailableError, match="no environment provides DmlExecutionProvider"):
        run_grid(points, tmp_path, environments=HERE_ONLY)
    assert not list(tmp_path.iterdir())


def test_the_cli_reports_a_missing_provider_as_a_json_error(capsys) -> None:
    # DirectML exists only in Windows builds: no environment here has it.
    code = main(["--json", "profile", "all-MiniLM-L6-v2:fp32", "--provider", "DirectML"])
    error = json.loads(capsys.readouterr().out)["error"]
    assert code == 2 and "DmlExecutionProvider" in error["message"] and "available:" in error["message"]


# --- workers ----------------------------------------------------------------------------------------


def test_a_grid_point_in_a_fresh_process_writes_a_valid_record(tiny, tmp_path: Path) -> None:
    model, variant = tiny
    (record,) = run_grid([_point(model, ProviderConfig.of("CPU"), batch=2)], tmp_path, environments=HERE_ONLY)
    path = tmp_path / f"{record['record_id']}{RECORD_SUFFIX}"
    assert read_record(path) == record
    assert set(record["stages"]) == {"tokenize", "feeds", "run", "pool", "total"}
    assert record["stages"]["total"]["n"] >= TINY["min_samples"]
    assert record["stages"]["total"]["p50"] >= record["stages"]["run"]["p50"]
    cpu = record["placement"]["providers"]["CPUExecutionProvider"]
    assert cpu["node_share"] == 1.0 and cpu["time_share"] == 1.0 and not record["placement"]["fallback_nodes"]
    assert record["grid"]["provider"] == "CPUExecutionProvider" and record["grid"]["batch_size"] == 2
    assert record["grid"]["spinning"] == "in-run"
    assert record["grid"]["workload"]["tokens_per_text"]["max"] <= 16
    assert record["model"]["variant"]["sha256"] == variant.sha256
    assert record["cold_start"]["session_create_ms"] > 0 and record["peak_rss_mb"] > 0
    assert record["throughput"]["texts_per_s"] > 0 and record["warmup"]["runs"] >= 1
    assert record["provenance"]["python"]["executable"] == sys.executable
    summary = record_summary(record)
    assert summary["n"] == record["stages"]["total"]["n"] and summary["node_share"] == {"CPU": 1.0}


@pytest.mark.parametrize(
    ("provider", "options"),
    [
        pytest.param("CoreML", {"ModelFormat": "NeuralNetwork", "MLComputeUnits": "CPUOnly"}, marks=NOT_ON_MAC),
        ("CUDA", {"device_id": "0", "arena_extend_strategy": "kSameAsRequested"}),
        ("OpenVINO", {"device_type": "CPU", "precision": "FP16"}),
    ],
)
def test_options_reach_a_worker_intact_and_a_missing_provider_is_its_error(
    tiny, tmp_path: Path, provider: str, options: dict
) -> None:
    model, variant = tiny
    point = _point(model, ProviderConfig.of(provider, options))
    with pytest.raises(ProfileWorkerError, match=r"is not available in this onnxruntime build") as error:
        run_point(point, variant, Path(sys.executable), tmp_path)
    assert error.value.payload["received"]["point"]["backend"]["provider"]["options"] == sorted(
        [list(item) for item in options.items()]
    )


def test_a_broken_request_is_reported_as_json(capsys) -> None:
    assert worker_main(["--point", "{not json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["type"] == "JSONDecodeError"


def test_compare_interleaves_two_backends_and_gives_a_paired_ratio(tiny) -> None:
    model, _ = tiny
    one, two = (Backend(model, "fp32", ProviderConfig.of("CPU"), threads) for threads in (1, 2))
    result = compare(one, two, Scenario(1, "short", **TINY), environments=HERE_ONLY)
    ratio = result["ratio"]
    assert ratio["paired"] and ratio["n_a"] == ratio["n_b"] == result["rounds"] >= TINY["min_samples"]
    assert ratio["ci"][0] <= ratio["ratio"] <= ratio["ci"][1]
    assert result["a"]["backend"].endswith("threads=1") and result["b"]["placement"]["providers"]


def test_cli_profile_prints_records_without_raw_samples_and_decide_reads_them(tiny, tmp_path: Path, capsys) -> None:
    model, _ = tiny
    argv = [
        "--json",
        "profile",
        f"{model}:fp32",
        "--batch",
        "1",
        "--seq",
        "short",
        "--threads",
        "1",
        "--samples",
        "4",
        "--min-seconds",
        "0",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    (record,) = json.loads(capsys.readouterr().out)["records"]
    assert "samples" not in record and Path(record["record_path"]).is_file()
    assert set(record["stages"]["total"]) >= {"p50", "p90", "p95", "p99", "mean", "stdev", "n", "p95_ci"}
    assert {"throughput", "peak_rss_mb", "placement", "provenance"} <= set(record)
    assert main(["--json", "decide", str(tmp_path)]) == 0
    (row,) = json.loads(capsys.readouterr().out)["card"]
    assert row["verdict"] in {"GO", "TRY ALTERNATIVE", "FALLBACK"} and row["profile_record_id"] == record["record_id"]


# --- in-process measurements ------------------------------------------------------------------------


def test_a_model_cache_counts_as_hit_only_when_the_session_adds_nothing(tiny_embedder, tmp_path: Path) -> None:
    spec, variant = tiny_embedder.spec, tiny_embedder.variant
    config = replace(
        session_config(Backend("m", "fp32", ProviderConfig.of("CPU"), 1)),
        provider_options={"ModelCacheDirectory": str(tmp_path)},
    )
    model = MeasuredModel.of(spec, variant, config)
    _, empty = cold_start(model, ["a cat"])
    (tmp_path / "compiled.mlmodelc").write_text("x")
    _, filled = cold_start(model, ["a cat"])
    assert empty["model_cache"]["hit"] is False and filled["model_cache"]["hit"] is True
    assert filled["first_run_ms"] > 0
