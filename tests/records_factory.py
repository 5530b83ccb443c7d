"""Synthetic profile and score records with known latencies, scores and placement, for plot and report tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from embedkit.results import provenance
from embedkit.results.files import write_record
from embedkit.results.records import new_record
from embedkit.results.samples import latency_sections

CPU = "CPUExecutionProvider"
OPENVINO = "OpenVINOExecutionProvider"
TASKS = ("STSBenchmark", "SICK-R", "BIOSSES", "SciFact")


def on_machine(machine_id: str, cpu: str = "Synthetic CPU @ 2.0GHz") -> dict[str, Any]:
    collected = provenance.collect()
    return {**collected, "machine_id": machine_id, "cpu": {**collected["cpu"], "model": cpu}}


def profile_record(
    p95_ms: float,
    *,
    model: str = "all-MiniLM-L6-v2",
    variant: str = "fp32",
    provider: str = CPU,
    machine: str = "linux-box",
    batch_size: int = 1,
    seq_bucket: str = "short",
    threads: int | None = 2,
    cpu_share: float = 1.0,
    spread: float = 0.01,
    seed: int = 0,
    random_weights: bool = False,
) -> dict[str, Any]:
    """A profile record whose total-stage P95 is close to `p95_ms`; `cpu_share` of nodes fall back to CPU;
    `random_weights`: an architecture twin's.

    Its samples are normal with a standard deviation of `spread` × `p95_ms`."""
    rng = np.random.default_rng(seed)
    total = rng.normal(p95_ms / (1 + 1.645 * spread), p95_ms * spread, 300)
    stages = {
        "tokenize": total * 0.06,
        "feeds": total * 0.02,
        "run": total * 0.88,
        "pool": total * 0.04,
        "total": total,
    }
    shares = {CPU: cpu_share} if provider == CPU else {provider: 1.0 - cpu_share, CPU: cpu_share}
    body = {
        "model": {
            "spec": {"name": model},
            "variant": {"name": variant, "sha256": "ab" * 32, "manifest": {}},
            "weights": {"kind": "random", "seed": 0, "config_sha256": "ef" * 32}
            if random_weights
            else {"kind": "checkpoint"},
        },
        "grid": {
            "model": model,
            "variant": variant,
            "provider": provider,
            "provider_options": {"num_of_threads": "2"} if provider == OPENVINO else {},
            "batch_size": batch_size,
            "seq_bucket": seq_bucket,
            "intra_op_threads": threads,
        },
        **latency_sections(stages, resamples=200),
        "throughput": {"texts_per_s": 1000.0 * batch_size / float(np.mean(total)), "tokens_per_s": 16_000.0},
        "peak_rss_mb": 150.0,
        "cold_start": {"session_create_ms": 100.0, "first_run_ms": 20.0},
        "warmup": {"runs": 40, "stable": True},
        "placement": {
            "requested_providers": [provider],
            "runs": 10,
            "providers": {
                name: {
                    "nodes": round(100 * share),
                    "node_share": share,
                    "time_us": round(1000 * share),
                    "time_share": share,
                    "partitions": 1 if share else 0,
                }
                for name, share in shares.items()
            },
            "fallback_nodes": [],
        },
    }
    return new_record("profile", body, provenance=on_machine(machine))


def score_record(
    scores: dict[str, float],
    *,
    model: str = "all-MiniLM-L6-v2",
    variant: str = "fp32",
    forced: bool = False,
    machine: str = "linux-box",
) -> dict[str, Any]:
    body = {
        "model": {"spec": {"name": model}, "variant": {"name": variant, "sha256": "ab" * 32, "manifest": {}}},
        "provider": CPU,
        "scores": scores,
        "tasks": {task: {"main_score": value} for task, value in scores.items()},
        "forced": forced,
        "data_sha256": {task: "cd" * 32 for task in scores},
    }
    return new_record("score", body, provenance=on_machine(machine))


def published_record(
    scores: dict[str, float], *, model: str, repo_id: str, revision: str = "external", machine: str = "linux-box"
) -> dict[str, Any]:
    """A `published` record: `scores` as if read from the MTEB results repository's `revision` folder."""
    body = {
        "model": {"spec": {"name": model}, "hub": {"repo_id": repo_id, "revision": None}},
        "scores": scores,
        "sources": {task: {"file": f"remote/results/{repo_id.replace('/', '__')}/{revision}/{task}.json",
                           "revision": revision, "split": "test", "subsets": ["default"], "mteb_version": None,
                           "dataset_revision": None} for task in scores},
        "results": {"repository": "embeddings-benchmark/results", "results_dir": "/published", "commit": None},
    }  # fmt: skip
    return new_record("published", body, provenance=on_machine(machine))


def shifted(base: dict[str, float], delta: float, jitter: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)) -> dict[str, float]:
    """`base` moved by `delta`, plus a per-task `jitter` (in task order) so that tasks disagree a little."""
    return {task: value + delta + wiggle for (task, value), wiggle in zip(base.items(), jitter, strict=True)}


MINILM_SCORES = {"STSBenchmark": 0.82, "SICK-R": 0.78, "BIOSSES": 0.81, "SciFact": 0.64}


# The frontier of `small_sweep`, per machine, as the tradeoff names its points.
SMALL_SWEEP_FRONTIER = {
    "linux-box": [
        "paraphrase-MiniLM-L3-v2:int8 · CPU",
        "all-MiniLM-L6-v2:int8 · CPU",
        "all-MiniLM-L6-v2:int8-pc · CPU",
        "all-MiniLM-L6-v2:fp32 · OpenVINO",
    ],
    # Slower than everything on linux-box would make it dominated there; on its own machine it is not.
    "mac-m2": ["all-MiniLM-L6-v2:int8 · CPU", "all-MiniLM-L6-v2:fp32 · CPU"],
}


def small_sweep(directory: Path) -> dict[str, dict[str, Any]]:
    """A sweep on two machines, written under `directory`; returns the records by a short name.

    On linux-box (CPU): fp32 14 ms, O2 11 ms (same quality), int8 6 ms (-0.03), int8-pc 8 ms
    (-0.005), L3 4 ms (-0.06), and OpenVINO fp32 9 ms with a CPU fallback. The frontier there is
    L3, int8, int8-pc and O2. On mac-m2 only fp32 (5 ms) and int8 (3 ms). Plus batch-32 runs.
    """
    made = {
        "fp32": profile_record(14.0, variant="fp32", seed=1),
        "O2": profile_record(11.0, variant="O2", seed=2),
        "int8": profile_record(6.0, variant="int8", seed=3),
        "int8-pc": profile_record(8.0, variant="int8-pc", seed=4),
        "L3": profile_record(4.0, model="paraphrase-MiniLM-L3-v2", variant="int8", seed=5),
        "openvino": profile_record(9.0, provider=OPENVINO, cpu_share=0.1, seed=6),
        "fp32-b32": profile_record(120.0, variant="fp32", batch_size=32, seed=7),
        "int8-b32": profile_record(70.0, variant="int8", batch_size=32, seed=8),
        "mac-fp32": profile_record(5.0, variant="fp32", machine="mac-m2", seed=9),
        "mac-int8": profile_record(3.0, variant="int8", machine="mac-m2", seed=10),
        "score-fp32": score_record(MINILM_SCORES, variant="fp32"),
        "score-O2": score_record(shifted(MINILM_SCORES, 0.0, (0.0005, -0.0005, 0.0, 0.0)), variant="O2"),
        "score-int8": score_record(shifted(MINILM_SCORES, -0.03, (0.01, -0.012, 0.004, -0.002)), variant="int8"),
        "score-int8-pc": score_record(
            shifted(MINILM_SCORES, -0.005, (0.002, -0.002, 0.001, -0.001)), variant="int8-pc"
        ),
        "score-L3": score_record(
            shifted(MINILM_SCORES, -0.06, (0.02, -0.03, 0.015, -0.005)), model="paraphrase-MiniLM-L3-v2", variant="int8"
        ),
    }
    for record in made.values():
        write_record(record, directory / record["machine_id"])
    return made
