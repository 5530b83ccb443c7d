"""Per-stage latency profiler: one fresh worker process per grid point, one validated record per point.

The parent (`run_grid`, `compare`) resolves each point's model variant and the environment whose
onnxruntime provides the point's execution provider, then starts `python -m embedkit.latency.profiler` in
that environment, one point at a time (in-process runs were measured to interfere). The worker
measures, in this order:

1. cold start: session creation and the first call (plus CoreML's ModelCacheDirectory hit or miss);
2. warm-up until the median settles (`stats.warm_up_until_stable`);
3. samples: at least `min_samples` calls and `min_seconds` (whichever is longer, unless the
   scenario's `max_seconds` cap stops it first), each call timed end to end ("total") and per stage
   (tokenize, feeds, run, pool) by the embedder's StageTimer;
4. peak RSS of the worker;
5. the placement audit, in a separate profiled session created after sampling, so that ORT's
   profiler never runs during the timed samples;

and writes one record (`records.new_record("profile", ...)`) in the worker, so its provenance names
the onnxruntime build that ran. `compare` runs two backends interleaved (A B A B …) in one worker
and reports the paired ratio of their median latencies with a bootstrap CI.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.latency import placement
from embedkit.results import provenance
from embedkit.results import records
from embedkit.analysis import stats
from embedkit.pipeline.embedder import STAGES, Embedder, StageTimer
from embedkit.latency.environments import Environments
from embedkit.errors import ProfileWorkerError
from embedkit.models.export import Variant, get_variant, read_variant
from embedkit.latency.grid import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_SEQ_BUCKETS,
    DEFAULT_THREADS,
    MIN_SAMPLES,
    MIN_SECONDS,
    Backend,
    Grid,
    GridPoint,
    ProviderConfig,
    Scenario,
)
from embedkit.models.loading import embedder_for, tokenizer_for
from embedkit import defaults
from embedkit.pipeline.session import OrtSession, SessionConfig
from embedkit.models.specs import ModelSpec, get_spec
from embedkit.latency.workload import BucketTexts, bucket_texts

WORKER_MODULE = "embedkit.latency.profiler"
# Profiled runs for the placement audit, after one more that it skips (lazy initialisation).
PLACEMENT_RUNS = 2
# Graph optimisation of every profiled session: ORT's default, so a variant is measured as shipped.
GRAPH_OPTIMIZATION = "all"
# Lines of a failed worker's stderr quoted in the error.
STDERR_TAIL_LINES = 20




# --- sessions and embedders (worker side) -------------------------------------------------------


def session_config(backend: Backend) -> SessionConfig:
    return SessionConfig(
        provider=backend.provider.name,
        provider_options=backend.session_options(),
        graph_optimization=GRAPH_OPTIMIZATION,
        intra_op_threads=backend.intra_op_threads,
        spinning=backend.spinning,
    )


def open_embedder(spec: ModelSpec, variant: Variant, config: SessionConfig) -> tuple[Embedder, float]:
    """An embedder on a new session, and the session's creation time in ms."""
    start = time.perf_counter()
    session = OrtSession(variant.path, config)
    created_ms = (time.perf_counter() - start) * 1e3
    return embedder_for(spec, variant, session), created_ms


def _file_count(directory: Path) -> int:
    return sum(1 for path in directory.rglob("*") if path.is_file()) if directory.is_dir() else 0


def cold_start(spec: ModelSpec, variant: Variant, config: SessionConfig, texts: list[str]) -> tuple[Embedder, dict]:
    """Session creation and first call of a fresh session, and CoreML's model cache hit or miss.

    The cache counts as hit when it held files before and creating the session added none (the
    compiled model was reused); files added mean the EP compiled and stored the model: a miss.
    """
    cache = config.provider_options.get("ModelCacheDirectory")
    files_before = _file_count(Path(cache)) if cache else 0
    embedder, created_ms = open_embedder(spec, variant, config)
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


# --- measuring ----------------------------------------------------------------------------------


def _call_ms(embedder: Embedder, texts: list[str], timer: StageTimer | None = None) -> float:
    start = time.perf_counter()
    embedder.embed(texts, batch_size=len(texts), timer=timer)
    return (time.perf_counter() - start) * 1e3


def warm_up(embedder: Embedder, texts: list[str], scenario: Scenario) -> stats.WarmUp:
    return stats.warm_up_until_stable(
        lambda: _call_ms(embedder, texts),
        window=scenario.warmup_window,
        max_runs=max(stats.WARMUP_MAX_RUNS, 2 * scenario.warmup_window),
        max_seconds=scenario.warmup_max_seconds,
    )


@dataclass(frozen=True)
class Sampled:
    """Per-stage and end-to-end latency samples (ms) and why sampling stopped."""

    stage_ms: dict[str, np.ndarray]
    seconds: float
    stopped_by: str  # "target" (min_samples and min_seconds reached) or "max_seconds"


def sample_stages(embedder: Embedder, texts: list[str], scenario: Scenario) -> Sampled:
    """Timed calls of one batch until the scenario's sample count and duration are both reached.

    One call embeds exactly one batch, so each call adds one sample to every stage; "total" is
    timed around the whole call and so includes what lies between the stages.
    """
    timer = StageTimer()
    totals: list[float] = []
    gc.collect()  # start from a clean heap rather than inherit a collection from set-up
    start = time.perf_counter()
    while True:
        totals.append(_call_ms(embedder, texts, timer))
        elapsed = time.perf_counter() - start
        if len(totals) >= scenario.min_samples and elapsed >= scenario.min_seconds:
            stopped_by = "target"
            break
        if scenario.max_seconds is not None and elapsed >= scenario.max_seconds and len(totals) >= 2:
            stopped_by = "max_seconds"
            break
    stage_ms = {stage: np.asarray(timer.samples[stage]) * 1e3 for stage in STAGES}
    stage_ms["total"] = np.asarray(totals)
    return Sampled(stage_ms, elapsed, stopped_by)


def throughput(total_ms: np.ndarray, batch: BucketTexts) -> dict[str, Any]:
    """Texts and tokens per second of sequential calls, one batch each, from the mean latency."""
    seconds_per_call = float(np.mean(total_ms)) / 1e3
    return {
        "texts_per_s": len(batch.texts) / seconds_per_call,
        "tokens_per_s": sum(batch.token_counts) / seconds_per_call,
        "basis": "sequential calls of one batch; mean end-to-end latency",
    }


def peak_rss_mb() -> float:
    """This process's peak resident set size: ru_maxrss is in KiB on Linux and bytes on macOS."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def audit_placement(spec: ModelSpec, variant: Variant, config: SessionConfig, texts: list[str]) -> dict[str, Any]:
    """Which provider ran which node, from a separate, profiled and verbosely logged session."""
    with tempfile.TemporaryDirectory(prefix="embedkit-placement-") as scratch:
        profiled = replace(config, enable_profiling=True, log_severity=0, profile_prefix=str(Path(scratch) / "ort"))
        with placement.capture_native_stderr() as log:
            embedder, _ = open_embedder(spec, variant, profiled)
            for _ in range(1 + PLACEMENT_RUNS):
                embedder.embed(texts, batch_size=len(texts))
            profile = embedder.session.end_profiling()
        audit = placement.audit_profile(profile, embedder.session.requested_providers, session_log=log[0], skip_runs=1)
    return {**audit.to_record(), "active_providers": embedder.session.active_providers}


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
    backend, scenario = point.backend, point.scenario
    spec = get_spec(backend.model)
    config = session_config(backend)
    # The workload is built before any session exists, so that the first session is the cold one.
    batch = bucket_texts(tokenizer_for(spec, variant), scenario.seq_bucket, scenario.batch_size)
    texts = list(batch.texts)
    embedder, cold = cold_start(spec, variant, config, texts)
    warm = warm_up(embedder, texts, scenario)
    sampled = sample_stages(embedder, texts, scenario)
    peak = peak_rss_mb()
    audit = audit_placement(spec, variant, config, texts)
    body = {
        "model": {"spec": spec_record(spec), "variant": variant_record(variant)},
        "grid": {
            "model": spec.name,
            "variant": variant.name,
            "provider": backend.provider.name,
            "provider_options": config.provider_options,
            "batch_size": scenario.batch_size,
            "seq_bucket": scenario.seq_bucket,
            "seq_tokens": batch.target_tokens,
            "intra_op_threads": backend.intra_op_threads,
            "graph_optimization": config.graph_optimization,
            "spinning": config.spinning,
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
        **records.latency_sections(sampled.stage_ms),
        "throughput": throughput(sampled.stage_ms["total"], batch),
        "peak_rss_mb": peak,
        "cold_start": cold,
        "warmup": warm.to_record(),
        "placement": audit,
    }
    return records.write_record(records.new_record("profile", body), out_dir)


# --- the timer's own cost -------------------------------------------------------------------------


def measure_timing_overhead(
    embedder: Embedder, texts: list[str], *, min_pairs: int = 300, min_seconds: float = 0.0
) -> stats.RatioEstimate:
    """End-to-end latency with the per-stage StageTimer over without it, on one session, paired.

    The two calls of a pair alternate their order from pair to pair, so neither always runs on
    the caches the other warmed. A ratio of 1.01 means the instrumentation costs 1 %.
    """
    timer = StageTimer()
    timed: list[float] = []
    plain: list[float] = []
    start = time.perf_counter()
    while len(timed) < min_pairs or time.perf_counter() - start < min_seconds:
        for instrumented in (True, False) if len(timed) % 2 == 0 else (False, True):
            (timed if instrumented else plain).append(_call_ms(embedder, texts, timer if instrumented else None))
    return stats.ratio_with_ci(timed, plain, paired=True)


# --- comparing two backends in one process --------------------------------------------------------


@dataclass(frozen=True)
class _Side:
    """One backend of a comparison, ready to call."""

    backend: Backend
    spec: ModelSpec
    variant: Variant
    config: SessionConfig
    embedder: Embedder
    texts: list[str]


def compare_in_process(sides: list[tuple[Backend, Variant]], scenario: Scenario) -> dict[str, Any]:
    """Two backends timed alternately (A B A B …) on the same workload; ratio A/B of median latency.

    Give both sides workers that stop spinning when a run returns (embedkit's default), or one
    side's workers steal the cores the other runs on.
    """
    prepared = []
    for backend, variant in sides:
        spec = get_spec(backend.model)
        config = session_config(backend)
        embedder, _ = open_embedder(spec, variant, config)
        batch = bucket_texts(embedder.tokenizer, scenario.seq_bucket, scenario.batch_size)
        prepared.append(_Side(backend, spec, variant, config, embedder, list(batch.texts)))
    warm = [warm_up(side.embedder, side.texts, scenario) for side in prepared]
    samples: list[list[float]] = [[] for _ in prepared]
    start = time.perf_counter()
    while True:
        for side, collected in zip(prepared, samples):
            collected.append(_call_ms(side.embedder, side.texts))
        elapsed = time.perf_counter() - start
        if len(samples[0]) >= scenario.min_samples and elapsed >= scenario.min_seconds:
            break
        if scenario.max_seconds is not None and elapsed >= scenario.max_seconds and len(samples[0]) >= 2:
            break
    ratio = stats.ratio_with_ci(samples[0], samples[1], paired=True)
    reports = [_side_report(side, collected, warmed) for side, collected, warmed in zip(prepared, samples, warm)]
    return {
        "a": reports[0],
        "b": reports[1],
        "ratio": ratio.to_record(),
        "meaning": "median end-to-end latency of A over B from paired rounds; above 1 means A is slower",
        "scenario": asdict(scenario),
        "rounds": len(samples[0]),
        "seconds": elapsed,
        "provenance": provenance.collect(),
    }


def _side_report(side: _Side, samples_ms: list[float], warm: stats.WarmUp) -> dict[str, Any]:
    return {
        "backend": side.backend.label(),
        "provider": side.backend.provider.name,
        "provider_options": dict(side.config.provider_options),
        "variant_sha256": side.variant.sha256,
        "total": stats.summarize(samples_ms).to_record(),
        "warmup": warm.to_record(),
        "placement": audit_placement(side.spec, side.variant, side.config, side.texts),
    }


# --- worker entry point ---------------------------------------------------------------------------


def _variant_from(request: Mapping[str, Any]) -> Variant:
    return read_variant(request["name"], Path(request["path"]), Path(request["directory"]))


def worker_main(argv: list[str] | None = None) -> int:
    """`python -m embedkit.latency.profiler --point JSON | --compare JSON [--out DIR]`: prints one JSON line."""
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


# --- parent side ----------------------------------------------------------------------------------


def _variant_request(variant: Variant) -> dict[str, str]:
    return {"name": variant.name, "path": str(variant.path), "directory": str(variant.directory)}


def _run_worker(python: Path, job: list[str], label: str) -> dict[str, Any]:
    completed = subprocess.run([str(python), "-m", WORKER_MODULE, *job], capture_output=True, text=True, check=False)
    lines = completed.stdout.strip().splitlines()
    try:
        payload = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        payload = {}
    if completed.returncode != 0 or "error" in payload or not payload:
        error = payload.get("error", {})
        stderr_tail = "\n".join(completed.stderr.strip().splitlines()[-STDERR_TAIL_LINES:])
        detail = f"{error['type']}: {error['message']}" if error else f"exit {completed.returncode}\n{stderr_tail}"
        raise ProfileWorkerError(f"{label} failed in {python}: {detail}", payload)
    return payload


class VariantResolver:
    """Each (model, variant) resolved (exported if need be) once, in the parent's environment."""

    def __init__(self) -> None:
        self._variants: dict[tuple[str, str], Variant] = {}

    def __call__(self, backend: Backend) -> Variant:
        key = (backend.model, backend.variant)
        if key not in self._variants:
            self._variants[key] = get_variant(get_spec(backend.model), backend.variant)
        return self._variants[key]


def run_point(point: GridPoint, variant: Variant, python: Path, out_dir: Path | None = None) -> dict[str, Any]:
    """Measure one point in a fresh `python` process; returns its record, read back and validated."""
    request = json.dumps({"point": point.to_dict(), "variant": _variant_request(variant)})
    job = ["--point", request, *(["--out", str(out_dir)] if out_dir is not None else [])]
    return records.read_record(_run_worker(python, job, point.label())["record_path"])


def run_grid(
    grid: Grid | Iterable[GridPoint],
    out_dir: Path | None = None,
    *,
    environments: Environments | None = None,
    progress: Callable[[int, int, GridPoint, dict[str, Any] | None], None] | None = None,
) -> list[dict[str, Any]]:
    """Measure every point, one fresh process at a time; returns the records written under `out_dir`.

    Every point's environment and variant are resolved before the first measurement, so a missing
    provider fails the run at once rather than after an hour of measuring.
    `progress(i, n, point, record)` is called before (record None) and after each point.
    """
    points = grid.points() if isinstance(grid, Grid) else list(grid)
    environments = environments or Environments()
    resolve = VariantResolver()
    plans = [(point, environments.providing([point.backend.provider.name]), resolve(point.backend)) for point in points]
    written = []
    for index, (point, environment, variant) in enumerate(plans):
        if progress:
            progress(index, len(plans), point, None)
        record = run_point(point, variant, environment.python, out_dir)
        written.append(record)
        if progress:
            progress(index, len(plans), point, record)
    return written


def profile(
    models: Iterable[tuple[str, str]],
    providers: Iterable[ProviderConfig] = (ProviderConfig.of("CPU"),),
    *,
    batch_sizes: Iterable[int] = DEFAULT_BATCH_SIZES,
    seq_buckets: Iterable[str] = DEFAULT_SEQ_BUCKETS,
    threads: Iterable[int | None] = DEFAULT_THREADS,
    spinning: Iterable[str] = (defaults.SPINNING,),
    min_samples: int = MIN_SAMPLES,
    min_seconds: float = MIN_SECONDS,
    max_seconds: float | None = None,
    out_dir: Path | None = None,
    progress: Callable[[int, int, GridPoint, dict[str, Any] | None], None] | None = None,
) -> list[dict[str, Any]]:
    """The front door: profile (model, variant) pairs over a grid; returns the records written."""
    grid = Grid(
        models=tuple(models),
        providers=tuple(providers),
        batch_sizes=tuple(batch_sizes),
        seq_buckets=tuple(seq_buckets),
        intra_op_threads=tuple(threads),
        spinning=tuple(spinning),
    ).with_measurement(min_samples=min_samples, min_seconds=min_seconds, max_seconds=max_seconds)
    return run_grid(grid, out_dir, progress=progress)


def compare(
    a: Backend, b: Backend, scenario: Scenario, *, environments: Environments | None = None
) -> dict[str, Any]:
    """A and B interleaved in one fresh worker, in an environment that provides both providers."""
    environments = environments or Environments()
    environment = environments.providing([a.provider.name, b.provider.name])
    resolve = VariantResolver()
    request = {
        "sides": [{"backend": side.to_dict(), "variant": _variant_request(resolve(side))} for side in (a, b)],
        "scenario": asdict(scenario),
    }
    result = _run_worker(environment.python, ["--compare", json.dumps(request)], f"{a.label()} vs {b.label()}")
    return {**result, "python": str(environment.python)}


def record_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """One profile record in a line's worth: p50/p95 per stage (ms), throughput, placement, noise."""
    stages = record["stages"]
    return {
        "label": record["grid"]["label"],
        **{f"{stage}_p50": stages[stage]["p50"] for stage in stages},
        **{f"{stage}_p95": stages[stage]["p95"] for stage in stages},
        "n": stages["total"]["n"],
        "noisy": [stage for stage in stages if stages[stage]["noisy"]],
        "texts_per_s": record["throughput"]["texts_per_s"],
        "peak_rss_mb": record["peak_rss_mb"],
        "node_share": {
            provider.removesuffix("ExecutionProvider"): share["node_share"]
            for provider, share in record["placement"]["providers"].items()
        },
    }


if __name__ == "__main__":
    sys.exit(worker_main())
