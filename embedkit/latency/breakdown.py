"""Where a batch-1 call's time goes beyond the physical bound, from ONNX Runtime's profiling JSON.

A separate profiled session (the profiler never runs during timed samples) repeats `session.run` on
one tokenized text. Per run: the time ORT reports for the whole run, the time inside kernels, and
what lies outside them (scheduling, allocation, thread hand-offs); the nodes run, and a per-node
overhead estimate — node count × the median time of the nodes that multiply no matrices, whose work
is tiny, so their time is mostly the cost of being a node; and the op types that take the most time.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.latency.placement import load_profile_events, node_runs_per_session_run
from embedkit.pipeline.session import OrtSession, SessionConfig

# Op types that multiply matrices (their time is work, not per-node overhead).
_PRODUCT_OPS = ("MatMul", "Gemm", "Attention", "Conv", "Einsum")
_TOP_OPS = 5
_DROPPED_RUNS = 5  # the first runs allocate ORT's arena and pack weights


def _is_product(op_type: str) -> bool:
    return any(marker in op_type for marker in _PRODUCT_OPS)


def profile_breakdown(events: list[Mapping[str, Any]], dropped: int = _DROPPED_RUNS) -> dict[str, Any]:
    """The breakdown of the profile's session runs after the first `dropped`."""
    run_durations = sorted(
        (int(e["ts"]), int(e["dur"])) for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"
    )
    grouped = node_runs_per_session_run(events)
    pairs = list(zip([d for _, d in run_durations], grouped, strict=False))[dropped:]
    if not pairs:
        raise ValueError("the profile holds no session runs beyond the dropped warm-up")
    runs_us = np.array([run for run, _ in pairs], dtype=float)
    kernels_us = np.array([sum(node.duration_us for node in nodes) for _, nodes in pairs], dtype=float)
    nodes_per_run = float(np.median([len(nodes) for _, nodes in pairs]))
    small = [node.duration_us for _, nodes in pairs for node in nodes if not _is_product(node.op_type)]
    median_small = float(np.median(small)) if small else 0.0
    by_op: dict[str, float] = {}
    for _, nodes in pairs:
        for node in nodes:
            by_op[node.op_type] = by_op.get(node.op_type, 0.0) + node.duration_us
    total_kernel = sum(by_op.values()) or 1.0
    top = sorted(by_op.items(), key=lambda item: -item[1])[:_TOP_OPS]
    return {
        "runs": len(pairs),
        "run_us": float(np.median(runs_us)),
        "kernel_us": float(np.median(kernels_us)),
        "outside_kernels_us": float(np.median(runs_us - kernels_us)),
        "nodes_per_run": nodes_per_run,
        "median_small_node_us": median_small,
        "per_node_overhead_us": nodes_per_run * median_small,
        "top_ops": [
            {"op_type": op, "kernel_share": us / total_kernel, "us_per_run": us / len(pairs)} for op, us in top
        ],
    }


def batch1_breakdown(
    model_path: Path, config: SessionConfig, feeds: Mapping[str, np.ndarray], runs: int
) -> dict[str, Any]:
    """Profile `runs` session runs of `feeds` (plus the dropped warm-up) in a fresh session of `config`."""
    with tempfile.TemporaryDirectory() as work:
        profiled = replace(config, enable_profiling=True, profile_prefix=str(Path(work) / "bench"))
        with OrtSession(model_path, profiled) as session:
            for _ in range(runs + _DROPPED_RUNS):
                session.run(feeds)
            events = load_profile_events(session.end_profiling())
    return profile_breakdown(events)
