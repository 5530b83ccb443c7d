"""Which execution provider really ran what: an audit from ONNX Runtime's own evidence.

Two sources:
- the profiling JSON (`SessionOptions.enable_profiling = True`; `session.end_profiling()` returns
  its path): one "Node" event per kernel execution, each naming its provider. It gives node and
  time shares per provider and the partitions. A compiling provider (CoreML, OpenVINO, TensorRT)
  turns each partition it takes into one fused node, so a partition is one event there.
- the session log at verbose level (`SessionOptions.log_severity_level = 0`), written by ORT's
  native logger to stderr: the providers' capability checks say why a node was refused (e.g.
  CUDA's "kernel not found in registries for Op type: X node name: Y", CoreML's "Operator type:
  [X] … supported: [0]"). `capture_native_stderr` collects that text.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedkit.errors import PlacementError

CPU_PROVIDER = "CPUExecutionProvider"
_KERNEL_SUFFIX = "_kernel_time"


@dataclass(frozen=True)
class NodeRun:
    """One kernel execution from the profile."""

    name: str
    op_type: str
    provider: str
    node_index: str
    start_us: int
    duration_us: int

    @property
    def key(self) -> tuple[str, str, str]:
        # Node names may be empty in ONNX; the index keeps such nodes apart.
        return (self.node_index, self.name, self.op_type)


@dataclass(frozen=True)
class ProviderShare:
    nodes: int
    node_share: float
    time_us: int
    time_share: float
    partitions: int

    def to_record(self) -> dict[str, object]:
        return {
            "nodes": self.nodes,
            "node_share": self.node_share,
            "time_us": self.time_us,
            "time_share": self.time_share,
            "partitions": self.partitions,
        }


@dataclass(frozen=True)
class FallbackNode:
    """A node that ran on CPU although a non-CPU provider was requested, with ORT's reason if logged."""

    name: str
    op_type: str
    reason: str | None

    def to_record(self) -> dict[str, object]:
        return {"name": self.name, "op_type": self.op_type, "reason": self.reason}


@dataclass(frozen=True)
class Placement:
    requested_providers: tuple[str, ...]
    runs: int
    providers: dict[str, ProviderShare]
    fallback_nodes: tuple[FallbackNode, ...] = ()

    def to_record(self) -> dict[str, object]:
        """The `placement` section of a profile record."""
        return {
            "requested_providers": list(self.requested_providers),
            "runs": self.runs,
            "providers": {name: share.to_record() for name, share in self.providers.items()},
            "fallback_nodes": [node.to_record() for node in self.fallback_nodes],
        }


# --- profiling JSON -----------------------------------------------------------------------------


def load_profile_events(profile: Path | str | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Events of an ORT profile: a path to its JSON (a list, or Chrome's {"traceEvents": [...]}) or
    the already-loaded events."""
    if not isinstance(profile, (str, Path)):
        return list(profile)
    data = json.loads(Path(profile).read_text(encoding="utf-8"))
    return list(data["traceEvents"] if isinstance(data, dict) else data)


def node_runs_per_session_run(events: Sequence[Mapping[str, Any]]) -> list[list[NodeRun]]:
    """Kernel executions grouped by the `model_run` (one session.run) that contains them, in time order."""
    model_runs = sorted(
        (int(event["ts"]), int(event["ts"]) + int(event["dur"]))
        for event in events
        if event.get("cat") == "Session" and event.get("name") == "model_run"
    )
    kernels = sorted(
        (
            NodeRun(
                name=str(event["name"])[: -len(_KERNEL_SUFFIX)],
                op_type=str(event["args"].get("op_name", "")),
                provider=str(event["args"]["provider"]),
                node_index=str(event["args"].get("node_index", "")),
                start_us=int(event["ts"]),
                duration_us=int(event["dur"]),
            )
            for event in events
            if event.get("cat") == "Node"
            and str(event.get("name", "")).endswith(_KERNEL_SUFFIX)
            and "provider" in event.get("args", {})
        ),
        key=lambda run: run.start_us,
    )
    starts = [start for start, _ in model_runs]
    grouped: list[list[NodeRun]] = [[] for _ in model_runs]
    for kernel in kernels:
        position = bisect.bisect_right(starts, kernel.start_us) - 1
        if position >= 0 and kernel.start_us <= model_runs[position][1]:
            grouped[position].append(kernel)
    return [group for group in grouped if group]


def _partitions(sequence: Sequence[NodeRun]) -> dict[str, int]:
    """Maximal runs of consecutive nodes on one provider, in execution order, per provider."""
    counts: dict[str, int] = {}
    previous: str | None = None
    for node in sequence:
        if node.provider != previous:
            counts[node.provider] = counts.get(node.provider, 0) + 1
            previous = node.provider
    return counts


def audit_profile(
    profile: Path | str | Sequence[Mapping[str, Any]],
    requested_providers: Sequence[str],
    *,
    session_log: str | None = None,
    skip_runs: int = 0,
) -> Placement:
    """Per-provider node and time shares, partitions, and CPU fallbacks of a profiled session.

    `requested_providers`: the providers the session was asked for, by ORT's full name.
    `session_log`: the verbose session log, when captured, to attach ORT's reasons to fallbacks.
    `skip_runs`: leading session.run calls to leave out of the time shares (e.g. a first run
    that includes lazy initialization or compilation).
    Node shares and partitions come from the first counted run: placement is fixed when the
    session is created, so every run executes the same nodes on the same providers.
    """
    runs = node_runs_per_session_run(load_profile_events(profile))[skip_runs:]
    if not runs:
        raise PlacementError(
            f"no node executions in the profile after skipping {skip_runs} run(s): was the session created "
            "with enable_profiling and was session.run called before end_profiling?"
        )
    distinct = {node.key: node for node in runs[0]}
    node_counts: dict[str, int] = {}
    for node in distinct.values():
        node_counts[node.provider] = node_counts.get(node.provider, 0) + 1
    time_us: dict[str, int] = {}
    for run in runs:
        for node in run:
            time_us[node.provider] = time_us.get(node.provider, 0) + node.duration_us
    total_time = sum(time_us.values())
    partitions = _partitions(runs[0])
    providers = {
        provider: ProviderShare(
            nodes=node_counts.get(provider, 0),
            node_share=node_counts.get(provider, 0) / len(distinct),
            time_us=time_us.get(provider, 0),
            time_share=time_us.get(provider, 0) / total_time if total_time else 0.0,
            partitions=partitions.get(provider, 0),
        )
        for provider in sorted(time_us)
    }
    accelerators = {provider for provider in requested_providers if provider != CPU_PROVIDER}
    cpu_nodes = [node for node in distinct.values() if node.provider == CPU_PROVIDER] if accelerators else []
    whole_graph_refused = not any(node_counts.get(provider) for provider in accelerators)
    reasons = fallback_reasons(session_log, cpu_nodes, whole_graph_refused=whole_graph_refused) if session_log else {}
    fallbacks = tuple(FallbackNode(node.name, node.op_type, reasons.get(node.key)) for node in cpu_nodes)
    return Placement(tuple(requested_providers), len(runs), providers, fallbacks)


# --- session log --------------------------------------------------------------------------------

# "2026-01-01 00:00:00.000 [V:onnxruntime:logid, session_state.cc:1601 VerifyEachNodeIsAssignedToAnEp] msg"
_LOG_LINE = re.compile(r"^\S+ \S+ \[[VIWEF]:onnxruntime:[^,]*, \S+ [^\]]*\] ?")
# Provider capability messages that refuse a node and name it.
_NAMED_REFUSALS = (
    re.compile(r"kernel not found in registries for Op type: (?P<op_type>\S+) node name: (?P<name>.*)$"),
    re.compile(r"Operator type: \[(?P<op_type>[^\]]+)\] index: \[\d+\] name: \[(?P<name>[^\]]*)\] supported: \[0\]"),
)
# Other refusals name at most the op type, e.g. "[Erf] is not supported"; attributed by op type.
_REFUSAL_WORDS = re.compile(r"not supported|unsupported|does not support|cannot be supported|not implemented", re.I)


def log_messages(log_text: str) -> list[str]:
    """The message of each ORT log line, its prefix removed; an unprefixed line (the continuation
    of a multi-line entry) is a message of its own."""
    messages: list[str] = []
    for line in log_text.splitlines():
        match = _LOG_LINE.match(line)
        if match:
            messages.append(line[match.end() :])
        elif messages and line.strip():
            messages.append(line)
    return messages


def _mentions(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(word)}(?![\w.])", text) is not None


def fallback_reasons(
    log_text: str, nodes: Sequence[NodeRun], *, whole_graph_refused: bool = False
) -> dict[tuple[str, str, str], str]:
    """ORT's logged reason per node key.

    In order of preference: a refusal that names the node; one that names its op type; and, only
    when the requested provider took no node at all (`whole_graph_refused`), the first refusal
    that names neither, since then it is about the graph (e.g. CoreML's "Dynamic shape is not
    supported for now, for input:…").
    """
    by_name: dict[str, str] = {}
    by_op_type: dict[str, str] = {}
    about_graph: list[str] = []
    op_types = {node.op_type for node in nodes}
    for message in log_messages(log_text):
        text = message.strip()
        named = next((match for pattern in _NAMED_REFUSALS if (match := pattern.search(text))), None)
        if named:
            by_name.setdefault(named.group("name").strip(), text)
        elif _REFUSAL_WORDS.search(text):
            mentioned = [op_type for op_type in op_types if _mentions(text, op_type)]
            for op_type in mentioned:
                by_op_type.setdefault(op_type, text)
            if not mentioned:
                about_graph.append(text)
    graph_reason = about_graph[0] if whole_graph_refused and about_graph else None
    reasons = {}
    for node in nodes:
        reason = by_name.get(node.name) or by_op_type.get(node.op_type) or graph_reason
        if reason:
            reasons[node.key] = reason
    return reasons


@contextlib.contextmanager
def capture_native_stderr() -> Iterator[list[str]]:
    """Collect what native code writes to file descriptor 2 (ORT's log sink) inside the block.

    Yields a list that holds the captured text once the block exits. Python's sys.stderr is
    flushed on entry, so that output buffered before the block does not land in the capture.
    """
    captured: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", errors="replace"))
