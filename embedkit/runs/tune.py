"""`embedkit tune`: search variant × provider × intra-op threads × spinning × max_seq_length cap for the
configuration that answers the user's budget, from measurements only.

Two questions: with a latency budget (`p95_ms`), the highest mean quality whose measured P95 (batch 1, short
text) fits it; with a throughput target (`min_throughput`), the cheapest configuration (fewest intra-op
threads, then the least spinning) whose measured texts/s (batch 32 at max_seq_length, so the cap counts)
reaches it above a quality floor. Latency comes from profile workers (one fresh process per point, as
`embedkit profile` measures); quality from score records when one matches (model, variant sha256, tasks,
max_seq_length), else it is scored. What need not be measured is skipped, and the log says why:

- spinning with one intra-op thread: there are no worker threads to spin, so only one mode is measured;
- a cap that no text of the tasks reaches scores exactly as the model's own length (same inputs), and at
  batch 1 short no cap below the model's own changes the inputs either, so one latency point serves them;
- with a budget: a candidate whose P95 misses it is never scored (latency is measured first: seconds, not
  minutes);
- with a throughput target: candidates under the floor are never profiled, and once a configuration meets
  the target, every costlier one is skipped.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from embedkit import defaults
from embedkit.errors import UsageError
from embedkit.pipeline.providers import short_name
from embedkit.results.files import write_record
from embedkit.results.records import new_record


@dataclass(frozen=True)
class Candidate:
    """One configuration: what `embedkit.load` and the profile grid take."""

    model: str
    variant: str
    provider: str  # ONNX Runtime's full name
    threads: int | None
    spinning: str
    max_seq_length: int | None  # None: the model's own

    def label(self) -> str:
        cap = "" if self.max_seq_length is None else f" max_seq_length={self.max_seq_length}"
        return f"{self.model}:{self.variant}@{short_name(self.provider)} threads={self.threads} {self.spinning}{cap}"

    def command(self) -> str:
        """The command that loads this configuration (`embedkit embed` takes the same options)."""
        cap = "" if self.max_seq_length is None else f" --max-seq-length {self.max_seq_length}"
        return (
            f"embedkit profile {self.model}:{self.variant} --provider {short_name(self.provider)} --batch 1 "
            f"--seq short --threads {self.threads or 0} --spinning {self.spinning}{cap}"
        )


@dataclass(frozen=True)
class Latency:
    p95_ms: float
    p50_ms: float
    texts_per_s: float
    record_id: str


@dataclass(frozen=True)
class Quality:
    mean_score: float
    scores: Mapping[str, float]
    record_id: str
    reused: bool  # from an existing score record


class Measurements(Protocol):
    """Where numbers come from: profile workers and score records (`embedkit.runs.tune_measure`), or stubs."""

    def latency(self, candidate: Candidate, batch_size: int, seq_bucket: str) -> Latency: ...

    def quality(self, model: str, variant: str, max_seq_length: int | None, tasks: Sequence[str]) -> Quality: ...

    def longest_text_tokens(self, model: str, variant: str, tasks: Sequence[str]) -> int: ...

    def own_max_seq_length(self, model: str, variant: str) -> int: ...


@dataclass(frozen=True)
class Goal:
    p95_ms: float | None = None
    min_throughput: float | None = None
    floor: float | None = None

    def __post_init__(self) -> None:
        if (self.p95_ms is None) == (self.min_throughput is None):
            raise UsageError("give exactly one of a P95 budget (--p95-ms) and a throughput target (--min-throughput)")
        if self.min_throughput is not None and self.floor is None:
            raise UsageError("a throughput target needs a quality floor (--floor): the cheapest configuration above it")
        for name, value in asdict(self).items():
            if value is not None and (not math.isfinite(value) or value <= 0):
                raise UsageError(f"{name} must be a positive number, got {value}")

    @property
    def mode(self) -> str:
        return "p95" if self.p95_ms is not None else "throughput"


@dataclass
class Outcome:
    """Every candidate with what was measured of it, or why it was skipped."""

    candidate: Candidate
    latency: Latency | None = None
    quality: Quality | None = None
    status: str = "pending"  # fits | misses | chosen | skipped
    reason: str = ""

    def to_record(self) -> dict[str, Any]:
        return {
            **asdict(self.candidate),
            "p95_ms": None if self.latency is None else self.latency.p95_ms,
            "p50_ms": None if self.latency is None else self.latency.p50_ms,
            "texts_per_s": None if self.latency is None else self.latency.texts_per_s,
            "profile_record_id": None if self.latency is None else self.latency.record_id,
            "mean_score": None if self.quality is None else self.quality.mean_score,
            "scores": None if self.quality is None else dict(self.quality.scores),
            "score_record_id": None if self.quality is None else self.quality.record_id,
            "score_reused": None if self.quality is None else self.quality.reused,
            "status": self.status,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Space:
    """The search space; every axis defaults to embedkit.defaults' TUNE_*."""

    variants: tuple[str, ...] = defaults.TUNE_VARIANTS
    providers: tuple[str, ...] = (defaults.DEFAULT_PROVIDER,)
    threads: tuple[int | None, ...] = defaults.TUNE_THREADS
    spinning: tuple[str, ...] = defaults.TUNE_SPINNING
    max_seq_lengths: tuple[int | None, ...] = defaults.TUNE_MAX_SEQ_LENGTHS


Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Search:
    model: str
    tasks: tuple[str, ...]
    goal: Goal
    measure: Measurements
    space: Space = field(default_factory=Space)
    log: Log = _stderr
    _qualities: dict[tuple[str, str, int | None], Quality] = field(default_factory=dict)
    _latencies: dict[tuple[Any, ...], Latency] = field(default_factory=dict)

    def run(self) -> tuple[Outcome | None, list[Outcome]]:
        outcomes = self._expand()
        if self.goal.mode == "p95":
            best = self._within_budget([o for o in outcomes if o.status == "pending"])
        else:
            best = self._cheapest([o for o in outcomes if o.status == "pending"])
        if best is not None:
            best.status, best.reason = "chosen", best.reason or "the answer"
        return best, outcomes

    # --- the space, minus what need not be measured --------------------------------------------------

    def _expand(self) -> list[Outcome]:
        outcomes: list[Outcome] = []
        seen: dict[Candidate, Candidate] = {}
        for variant, provider, threads, spinning, cap in itertools.product(
            self.space.variants, self.space.providers, self.space.threads, self.space.spinning,
            self.space.max_seq_lengths,
        ):  # fmt: skip
            candidate = Candidate(self.model, variant, provider, threads, spinning, cap)
            outcome = Outcome(candidate)
            outcomes.append(outcome)
            same = self._same_as(candidate)
            if same != candidate:
                outcome.status, outcome.reason = "skipped", self._same_reason(candidate, same)
            elif same in seen:
                outcome.status, outcome.reason = "skipped", f"duplicate of {seen[same].label()}"
            seen.setdefault(same, candidate)
        return outcomes

    def _same_as(self, candidate: Candidate) -> Candidate:
        """The candidate that measures exactly like this one."""
        if candidate.threads == 1 and candidate.spinning != self.space.spinning[0]:
            candidate = replace(candidate, spinning=self.space.spinning[0])
        cap = candidate.max_seq_length
        if cap is not None:
            own = self.measure.own_max_seq_length(candidate.model, candidate.variant)
            reached = self.measure.longest_text_tokens(candidate.model, candidate.variant, self.tasks)
            if cap >= own or (self.goal.mode == "p95" and cap >= reached):
                candidate = replace(candidate, max_seq_length=None)
        return candidate

    def _same_reason(self, candidate: Candidate, same: Candidate) -> str:
        if same.spinning != candidate.spinning:
            return f"one intra-op thread has no workers to spin: measures as {same.label()}"
        return (
            f"max_seq_length {candidate.max_seq_length} cuts no text of {', '.join(self.tasks)} "
            f"(or is at least the model's own): same inputs as {same.label()}"
        )

    # --- the two questions ---------------------------------------------------------------------------

    def _quality(self, outcome: Outcome) -> Quality:
        if outcome.quality is None:
            c = outcome.candidate
            outcome.quality = self._quality_of(c.model, c.variant, c.max_seq_length)
        return outcome.quality

    def _quality_of(self, model: str, variant: str, cap: int | None) -> Quality:
        key = (model, variant, cap)
        if key not in self._qualities:
            self._qualities[key] = quality = self.measure.quality(model, variant, cap, self.tasks)
            source = "score record" if quality.reused else "scored"
            self.log(f"quality {model}:{variant} max_seq_length={cap}: {quality.mean_score:.4f} ({source})")
        return self._qualities[key]

    def _latency(self, outcome: Outcome, batch_size: int, seq_bucket: str) -> Latency:
        c = outcome.candidate
        # At batch 1 short no cap changes the inputs (≈16 tokens): one point serves every cap.
        cap = c.max_seq_length if seq_bucket == "long" else None
        key = (c.model, c.variant, c.provider, c.threads, c.spinning, cap, batch_size, seq_bucket)
        if key not in self._latencies:
            measured = self.measure.latency(replace(c, max_seq_length=cap), batch_size, seq_bucket)
            self._latencies[key] = measured
            self.log(f"latency {c.label()} batch={batch_size} {seq_bucket}: p95 {measured.p95_ms:.3f} ms, "
                     f"{measured.texts_per_s:.1f} texts/s")  # fmt: skip
        outcome.latency = self._latencies[key]
        return outcome.latency

    def _within_budget(self, pending: list[Outcome]) -> Outcome | None:
        """Highest quality with P95 within budget. Latency first: a profile point costs seconds, a score
        minutes, and a candidate that misses the budget needs no score; then quality for those that fit,
        highest P95 last, so that a tie in quality goes to the faster."""
        budget, floor = self.goal.p95_ms, self.goal.floor
        assert budget is not None
        fitting = []
        for outcome in pending:
            latency = self._latency(outcome, 1, "short")
            fits = latency.p95_ms <= budget
            outcome.status = "fits" if fits else "misses"
            outcome.reason = f"p95 {latency.p95_ms:.3f} ms {'<=' if fits else '>'} budget {budget} ms"
            if fits:
                fitting.append(outcome)
            else:
                outcome.reason += "; not scored: it cannot be chosen"
        best: Outcome | None = None
        for outcome in sorted(fitting, key=lambda o: self._latency(o, 1, "short").p95_ms):
            quality = self._quality(outcome).mean_score
            if floor is not None and quality < floor:
                outcome.status = "misses"
                outcome.reason += f"; mean score {quality:.4f} under the floor {floor}"
            elif best is None or quality > self._quality(best).mean_score:
                best = outcome
        self._mark_dominated(pending)
        return best

    def _cheapest(self, pending: list[Outcome]) -> Outcome | None:
        """Fewest threads, then least spinning, then highest quality, whose throughput meets the target."""
        target, floor = self.goal.min_throughput, self.goal.floor
        assert target is not None and floor is not None
        spin_cost = {mode: i for i, mode in enumerate(defaults.TUNE_SPINNING_COST)}

        def cost(o: Outcome) -> tuple[float, int, float]:
            threads = o.candidate.threads or math.inf  # ORT's default takes every core
            return threads, spin_cost.get(o.candidate.spinning, len(spin_cost)), -self._quality(o).mean_score

        above = []
        for outcome in pending:
            quality = self._quality(outcome).mean_score
            if quality < floor:
                outcome.status, outcome.reason = "skipped", f"mean score {quality:.4f} under the floor {floor}"
            else:
                above.append(outcome)
        best: Outcome | None = None
        for outcome in sorted(above, key=cost):
            if best is not None:
                outcome.status, outcome.reason = "skipped", f"{best.candidate.label()} is cheaper and meets the target"
                continue
            latency = self._latency(outcome, defaults.TUNE_THROUGHPUT_BATCH, defaults.TUNE_THROUGHPUT_SEQ)
            fits = latency.texts_per_s >= target
            outcome.status = "fits" if fits else "misses"
            outcome.reason = f"{latency.texts_per_s:.1f} texts/s {'>=' if fits else '<'} target {target}"
            best = outcome if fits else None
        return best

    def _mark_dominated(self, outcomes: Iterable[Outcome]) -> None:
        """Say which measured candidates another measured one beats on both P95 and quality."""
        measured = [o for o in outcomes if o.latency is not None and o.quality is not None]
        for outcome in measured:
            assert outcome.latency is not None and outcome.quality is not None
            for other in measured:
                assert other.latency is not None and other.quality is not None
                if other is not outcome and (
                    other.latency.p95_ms <= outcome.latency.p95_ms
                    and other.quality.mean_score >= outcome.quality.mean_score
                    and (other.latency.p95_ms, other.quality.mean_score)
                    != (outcome.latency.p95_ms, outcome.quality.mean_score)
                ):
                    outcome.reason += f"; dominated by {other.candidate.label()}"
                    break


def tune_body(model: str, tasks: Sequence[str], goal: Goal, space: Space, best: Outcome | None,
              outcomes: Sequence[Outcome], seconds: float) -> dict[str, Any]:  # fmt: skip
    """The body of a `tune` record (and of `--json`): the question, the choice, every candidate."""
    return {
        "question": {"model": model, "tasks": list(tasks), **asdict(goal), "mode": goal.mode, "space": asdict(space)},
        "best": None if best is None else {**best.to_record(), "command": best.candidate.command()},
        "candidates": [outcome.to_record() for outcome in outcomes],
        "counts": {
            "candidates": len(outcomes),
            "measured": sum(1 for o in outcomes if o.status in ("fits", "misses", "chosen")),
            "skipped": sum(1 for o in outcomes if o.status == "skipped"),
        },
        "seconds": seconds,
    }


def tune(
    model: str,
    tasks: Sequence[str],
    goal: Goal,
    measure: Measurements,
    space: Space | None = None,
    out_dir: Path | None = None,
    log: Log = _stderr,
) -> tuple[dict[str, Any], Path]:
    """Search, then write the `tune` record; returns its body and path."""
    if not tasks:
        raise UsageError("tune needs at least one task to score quality on")
    space = space or Space()
    started = time.perf_counter()
    best, outcomes = Search(model, tuple(tasks), goal, measure, space, log).run()
    body = tune_body(model, tasks, goal, space, best, outcomes, time.perf_counter() - started)
    log(f"chose {best.candidate.label()}" if best else "no configuration meets the goal")
    return body, write_record(new_record("tune", body), out_dir)
