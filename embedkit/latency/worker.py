"""What runs inside a profile worker process: `python -m embedkit.latency.worker`.

The launcher (embedkit.latency.launcher) starts one worker per grid point, in the environment whose
onnxruntime provides the point's execution provider. The worker measures, in this order:

1. cold start: session creation and the first call (plus CoreML's ModelCacheDirectory hit or miss);
2. warm-up until the median settles (embedkit.latency.sampling);
3. samples until the stop rule says stop (embedkit.latency.sampling), each call timed end to end
   ("total") and per stage (tokenize, feeds, run, pool) by the embedder's StageTimer;
4. peak RSS of the worker;
5. the placement audit, in a separate profiled session created after sampling, so that ORT's
   profiler never runs during the timed samples;

and writes one record (`new_record("profile", ...)`) itself, so that its provenance names
the onnxruntime build that ran. A `--compare` job times two backends interleaved (A B A B …) in one
worker and reports the paired ratio of their median latencies with a bootstrap CI.

A model's files and tokenizer are resolved once per backend (`MeasuredModel`) and shared by the
cold start, the workload, the samples and the placement audit.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from embedkit import stats
from embedkit.latency import placement
from embedkit.latency.grid import Backend, GridPoint, Scenario
from embedkit.latency.sampling import StopRule, WarmUp, call_ms, sample_rounds, sample_stages, warm_up
from embedkit.latency.workload import BucketTexts, bucket_texts
from embedkit.models.export import Variant, read_variant
from embedkit.models.loading import ModelFiles, embedder_for, weights_and_tokenizer
from embedkit.models.specs import ModelSpec
from embedkit.models.twins import resolve_spec
from embedkit.pipeline.embedder import Embedder
from embedkit.pipeline.session import OrtSession, SessionConfig
from embedkit.pipeline.tokenizer import Tokenizer
from embedkit.results import provenance
from embedkit.results.files import write_record
from embedkit.results.records import new_record
from embedkit.results.samples import latency_sections
from embedkit.system import peak_rss_mb

WORKER_MODULE = "embedkit.latency.worker"
# Profiled runs for the placement audit, after one more that it skips (lazy initialisation).
PLACEMENT_RUNS = 2
# Graph optimisation of every profiled session: ORT's default, so a variant is measured as shipped.
GRAPH_OPTIMIZATION = "all"


# --- the model under measurement ------------------------------------------------------------------


def session_config(backend: Backend) -> SessionConfig:
    return SessionConfig(
        provider=backend.provider.name,
        provider_options=backend.session_options(),
        graph_optimization=GRAPH_OPTIMIZATION,
        intra_op_threads=backend.intra_op_threads,
        spinning=backend.spinning,
    )


@dataclass(frozen=True)
class MeasuredModel:
    """One backend's model in the worker: spec, variant and session config, with the model's files
    and tokenizer resolved once for every session the worker opens on it."""

    spec: ModelSpec
    variant: Variant
    config: SessionConfig
    files: ModelFiles
    tokenizer: Tokenizer

    @classmethod
    def of(cls, spec: ModelSpec, variant: Variant, config: SessionConfig) -> MeasuredModel:
        files = ModelFiles.of(spec)
        return cls(spec, variant, config, files, files.tokenizer(variant))

    @classmethod
    def for_backend(cls, backend: Backend, variant: Variant) -> MeasuredModel:
        return cls.of(resolve_spec(backend.model, backend.weights), variant, session_config(backend))


def open_embedder(model: MeasuredModel, config: SessionConfig | None = None) -> tuple[Embedder, float]:
    """An embedder on a new session (`config`, else the model's own), and the session's creation time in ms."""
    start = time.perf_counter()
    session = OrtSession(model.variant.path, config or model.config)
    created_ms = (time.perf_counter() - start) * 1e3
    return embedder_for(model.spec, model.variant, session, model.files, model.tokenizer), created_ms


def _file_count(directory: Path) -> int:
    return sum(1 for path in directory.rglob("*") if path.is_file()) if directory.is_dir() else 0


def cold_start(model: MeasuredModel, texts: list[str]) -> tuple[Embedder, dict[str, Any]]:
    """Session creation and first call of a fresh session, and CoreML's model cache hit or miss.

    The cache counts as hit when it held files before and creating the session added none (the
    compiled model was reused); files added mean the EP compiled and stored the model: a miss.
    """
    cache = model.config.provider_options.get("ModelCacheDirectory")
    files_before = _file_count(Path(cache)) if cache else 0
    embedder, created_ms = open_embedder(model)
    start = time.perf_counter()
    embedder.embed(texts, batch_size=len(texts))
    first_ms = (time.perf_counter() - start) * 1e3
    record: dict[str, Any] = {"session_create_ms": created_ms, "first_run_ms": first_ms}
    if cache:
        files_after = _file_count(Path(cache))
        record["model_cache"] = {
            "directory": cache,
            "files_before": files_before,
            "files_after": files_after,
            "hit": files_before > 0 and files_after == files_before,
        }
    return embedder, record


def audit_placement(model: MeasuredModel, texts: list[str]) -> dict[str, Any]:
    """Which provider ran which node, from a separate, profiled and verbosely logged session."""
    with tempfile.TemporaryDirectory(prefix="embedkit-placement-") as scratch:
        profiled = replace(
            model.config, enable_profiling=True, log_severity=0, profile_prefix=str(Path(scratch) / "ort")
        )
        with placement.capture_native_stderr() as log:
            embedder, _ = open_embedder(model, profiled)
            for _ in range(1 + PLACEMENT_RUNS):
                embedder.embed(texts, batch_size=len(texts))
            profile = embedder.session.end_profiling()
        audit = placement.audit_profile(profile, embedder.session.requested_providers, session_log=log[0], skip_runs=1)
    return {**audit.to_record(), "active_providers": embedder.session.active_providers}


# --- one grid point -------------------------------------------------------------------------------


def throughput(total_ms: np.ndarray, batch: BucketTexts) -> dict[str, Any]:
    """Texts and tokens per second of sequential calls, one batch each, from the mean latency."""
    seconds_per_call = float(np.mean(total_ms)) / 1e3
    return {
        "texts_per_s": len(batch.texts) / seconds_per_call,
        "tokens_per_s": sum(batch.token_counts) / seconds_per_call,
        "basis": "sequential calls of one batch; mean end-to-end latency",
    }


def spec_record(spec: ModelSpec) -> dict[str, Any]:
    return {**asdict(spec), "source_type": type(spec.source).__name__}


def variant_record(variant: Variant) -> dict[str, Any]:
    return {
        "name": variant.name,
        "sha256": variant.sha256,
        "manifest": variant.manifest,
        "path": str(variant.path),
        "directory": str(variant.directory),
    }


def measure_point(point: GridPoint, variant: Variant, out_dir: Path | None) -> Path:
    """Measure one grid point in this process and write its record; returns the record's path."""
    scenario = point.scenario
    model = MeasuredModel.for_backend(point.backend, variant)
    # The workload is built before any session exists, so that the first session is the cold one.
    batch = bucket_texts(model.tokenizer, scenario.seq_bucket, scenario.batch_size)
    texts = list(batch.texts)
    embedder, cold = cold_start(model, texts)
    warm = warm_up(embedder, texts, scenario)
    sampled = sample_stages(embedder, texts, scenario)
    peak = peak_rss_mb()
    audit = audit_placement(model, texts)
    body = {
        "model": {
            "spec": spec_record(model.spec),
            "variant": variant_record(variant),
            **weights_and_tokenizer(model.spec, model.tokenizer),
        },
        "grid": {
            "model": model.spec.name,
            "variant": variant.name,
            "provider": point.backend.provider.name,
            "provider_options": model.config.provider_options,
            **point.axes(),
            "seq_tokens": batch.target_tokens,
            "graph_optimization": model.config.graph_optimization,
            "label": point.label(),
            "sampling": {
                "min_samples": scenario.min_samples,
                "min_seconds": scenario.min_seconds,
                "max_seconds": scenario.max_seconds,
                "seconds": sampled.seconds,
                "stopped_by": sampled.stopped_by,
            },
            "workload": batch.to_record(),
        },
        **latency_sections(sampled.stage_ms),
        "throughput": throughput(sampled.stage_ms["total"], batch),
        "peak_rss_mb": peak,
        "cold_start": cold,
        "warmup": warm.to_record(),
        "placement": audit,
    }
    return write_record(new_record("profile", body), out_dir)


# --- two backends in one process ------------------------------------------------------------------


@dataclass(frozen=True)
class _Side:
    """One backend of a comparison, ready to call."""

    backend: Backend
    model: MeasuredModel
    embedder: Embedder
    texts: list[str]


def compare_in_process(sides: list[tuple[Backend, Variant]], scenario: Scenario) -> dict[str, Any]:
    """Two backends timed alternately (A B A B …) on the same workload; ratio A/B of median latency.

    Give both sides workers that stop spinning when a run returns (embedkit's default), or one
    side's workers steal the cores the other runs on.
    """
    prepared = []
    for backend, variant in sides:
        model = MeasuredModel.for_backend(backend, variant)
        embedder, _ = open_embedder(model)
        batch = bucket_texts(model.tokenizer, scenario.seq_bucket, scenario.batch_size)
        prepared.append(_Side(backend, model, embedder, list(batch.texts)))
    warm = [warm_up(side.embedder, side.texts, scenario) for side in prepared]
    rounds = sample_rounds([partial(call_ms, side.embedder, side.texts) for side in prepared], StopRule.of(scenario))
    ratio = stats.ratio_with_ci(rounds.samples_ms[0], rounds.samples_ms[1], paired=True)
    reports = [
        _side_report(side, collected, warmed)
        for side, collected, warmed in zip(prepared, rounds.samples_ms, warm, strict=True)
    ]
    return {
        "a": reports[0],
        "b": reports[1],
        "ratio": ratio.to_record(),
        "meaning": "median end-to-end latency of A over B from paired rounds; above 1 means A is slower",
        "scenario": asdict(scenario),
        "rounds": rounds.rounds,
        "seconds": rounds.seconds,
        "provenance": provenance.collect(),
    }


def _side_report(side: _Side, samples_ms: list[float], warm: WarmUp) -> dict[str, Any]:
    return {
        "backend": side.backend.label(),
        "provider": side.backend.provider.name,
        "provider_options": dict(side.model.config.provider_options),
        "variant_sha256": side.model.variant.sha256,
        "total": stats.summarize(samples_ms).to_record(),
        "warmup": warm.to_record(),
        "placement": audit_placement(side.model, side.texts),
    }


# --- entry point ----------------------------------------------------------------------------------


def _variant_from(request: Mapping[str, Any]) -> Variant:
    return read_variant(request["name"], Path(request["path"]), Path(request["directory"]))


def worker_main(argv: list[str] | None = None) -> int:
    """`python -m embedkit.latency.worker --point JSON | --compare JSON [--out DIR]`: prints one JSON line."""
    parser = argparse.ArgumentParser(prog=f"python -m {WORKER_MODULE}")
    job = parser.add_mutually_exclusive_group(required=True)
    job.add_argument("--point", help='{"point": GridPoint, "variant": {name, path, directory}}')
    job.add_argument("--compare", help='{"sides": [{"backend": Backend, "variant": ...}] * 2, "scenario": Scenario}')
    parser.add_argument("--out", default=None, help="records directory (default results/records)")
    args = parser.parse_args(argv)
    received: dict[str, Any] = {}
    try:
        if args.point:
            request = json.loads(args.point)
            point = GridPoint.from_dict(request["point"])
            received = {"point": point.to_dict()}
            path = measure_point(point, _variant_from(request["variant"]), Path(args.out) if args.out else None)
            result: dict[str, Any] = {"record_path": str(path)}
        else:
            request = json.loads(args.compare)
            sides = [(Backend.from_dict(side["backend"]), _variant_from(side["variant"])) for side in request["sides"]]
            received = {"sides": [backend.to_dict() for backend, _ in sides]}
            result = compare_in_process(sides, Scenario(**request["scenario"]))
    except Exception as exc:  # the process boundary: report every failure to the parent, with what arrived
        print(json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}, "received": received}))
        return 2
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
