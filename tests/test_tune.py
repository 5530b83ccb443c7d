"""`embedkit tune`'s search over stub measurements: the choice, budget and floor, pruning, the record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from embedkit.errors import UsageError
from embedkit.pipeline.providers import CPU
from embedkit.results.files import read_record
from embedkit.runs.tune import Candidate, Goal, Latency, Quality, Space, tune

# p95 (ms) at batch 1 short by (variant, threads, spinning); throughput at batch 32 long by (variant, threads, cap).
P95 = {
    ("fp32", 1, "in-run"): 6.0, ("fp32", 2, "in-run"): 4.0, ("fp32", 2, "always"): 3.8,
    ("int8-pc", 1, "in-run"): 2.6, ("int8-pc", 2, "in-run"): 1.9, ("int8-pc", 2, "always"): 2.2,
    ("int8", 1, "in-run"): 2.0, ("int8", 2, "in-run"): 1.5, ("int8", 2, "always"): 1.4,
}  # fmt: skip
QUALITY = {("fp32", None): 0.80, ("int8-pc", None): 0.795, ("int8", None): 0.70,
           ("fp32", 128): 0.79, ("int8-pc", 128): 0.785, ("int8", 128): 0.70,
           ("fp32", 64): 0.78, ("int8-pc", 64): 0.77, ("int8", 64): 0.69}  # fmt: skip
LONGEST = 100  # tokens of the longest task text: cap 128 cuts nothing, cap 64 does


@dataclass
class Stub:
    latencies: list[tuple[Candidate, int, str]] = field(default_factory=list)
    scored: list[tuple[str, int | None]] = field(default_factory=list)

    def latency(self, candidate: Candidate, batch_size: int, seq_bucket: str) -> Latency:
        self.latencies.append((candidate, batch_size, seq_bucket))
        p95 = P95[(candidate.variant, candidate.threads, candidate.spinning)]
        cap_speedup = 256 / (candidate.max_seq_length or 256) if seq_bucket == "long" else 1.0
        texts_per_s = 100.0 * (candidate.threads or 2) * cap_speedup * (3 if "int8" in candidate.variant else 1)
        return Latency(p95, p95 * 0.8, texts_per_s, f"profile-{len(self.latencies)}")

    def quality(self, model: str, variant: str, max_seq_length: int | None, tasks: Sequence[str]) -> Quality:
        self.scored.append((variant, max_seq_length))
        mean = QUALITY[(variant, max_seq_length)]
        return Quality(mean, dict.fromkeys(tasks, mean), f"score-{variant}-{max_seq_length}", reused=False)

    def longest_text_tokens(self, model: str, variant: str, tasks: Sequence[str]) -> int:
        return LONGEST

    def own_max_seq_length(self, model: str, variant: str) -> int:
        return 256


SPACE = Space(variants=("fp32", "int8-pc", "int8"), providers=(CPU,), threads=(1, 2),
              spinning=("in-run", "always"), max_seq_lengths=(None, 256, 128, 64))  # fmt: skip
TASKS = ("STSBenchmark", "SICK-R")


def run(goal: Goal, tmp_path, stub: Stub | None = None):
    stub = stub or Stub()
    body, path = tune("m", TASKS, goal, stub, SPACE, tmp_path, log=lambda message: None)
    return body, read_record(path), stub


def by_status(body, status):
    return [c for c in body["candidates"] if c["status"] == status]


def test_budget_picks_the_best_quality_that_fits(tmp_path):
    body, record, _ = run(Goal(p95_ms=3.0), tmp_path)
    best = body["best"]
    # fp32 (0.80) never fits 3 ms; int8-pc (0.795) does, fastest at 2 threads in-run; int8 is lower quality.
    assert (best["variant"], best["threads"], best["spinning"], best["max_seq_length"]) == (
        "int8-pc",
        2,
        "in-run",
        None,
    )
    assert best["p95_ms"] == 1.9 and best["mean_score"] == 0.795 and best["p95_ms"] <= 3.0
    assert all(c["p95_ms"] > 3.0 for c in body["candidates"] if c["variant"] == "fp32" and c["p95_ms"] is not None)
    assert "--threads 2 --spinning in-run" in best["command"]
    assert record["kind"] == "tune" and record["best"] == best and len(record["candidates"]) == 3 * 2 * 2 * 4


def test_what_cannot_be_chosen_is_never_measured(tmp_path):
    body, _, stub = run(Goal(p95_ms=3.0), tmp_path)
    profiled = {(c.variant, c.threads, c.spinning, c.max_seq_length) for c, _, _ in stub.latencies}
    assert ("int8-pc", 1, "always", None) not in profiled  # one thread: nothing to spin
    assert len(stub.latencies) == len(profiled)  # each point once, whatever the cap
    assert all(cap is None for *_, cap in profiled)  # at batch 1 short a cap changes no input
    assert not any(variant == "fp32" for variant, _ in stub.scored)  # fp32 misses the budget: never scored
    reasons = {c["reason"] for c in by_status(body, "skipped")}
    assert any("no workers to spin" in reason for reason in reasons)
    assert any("cuts no text" in reason for reason in reasons)  # caps 256 and 128 >= the longest text
    assert not any(cap in (128, 256) for _, cap in stub.scored)  # same inputs: never scored
    assert ("int8-pc", 64) in stub.scored  # cap 64 cuts texts and int8-pc fits: scored
    assert all("not scored" in c["reason"] for c in body["candidates"] if c["status"] == "misses")


def test_measured_candidates_beaten_on_both_axes_say_by_whom(tmp_path):
    body, _, _ = run(Goal(p95_ms=10.0), tmp_path)
    (slower,) = [c for c in body["candidates"] if (c["variant"], c["threads"], c["spinning"], c["max_seq_length"])
                 == ("fp32", 2, "in-run", None)]  # fmt: skip
    assert slower["status"] == "fits" and "dominated by m:fp32@CPU threads=2 always" in slower["reason"]
    assert body["best"]["variant"] == "fp32" and body["best"]["spinning"] == "always"  # 3.8 ms, 0.80


def test_floor_rejects_and_nothing_fits_gives_no_best(tmp_path):
    body, record, _ = run(Goal(p95_ms=1.0), tmp_path)
    assert body["best"] is None and record["best"] is None and not by_status(body, "chosen")
    body, _, _ = run(Goal(p95_ms=3.0, floor=0.799), tmp_path)
    assert body["best"] is None  # only fp32 reaches the floor, and it misses the budget
    assert any("under the floor" in c["reason"] for c in by_status(body, "misses"))


def test_throughput_target_takes_the_cheapest_above_the_floor(tmp_path):
    body, _, stub = run(Goal(min_throughput=1000.0, floor=0.76), tmp_path)
    best = body["best"]
    # One thread: int8-pc 300 texts/s at 256 tokens, 600 at cap 128, 1200 at cap 64 (0.77 >= floor).
    assert (best["variant"], best["threads"], best["max_seq_length"]) == ("int8-pc", 1, 64)
    assert best["texts_per_s"] >= 1000.0
    assert all(bucket == "long" and batch == 32 for _, batch, bucket in stub.latencies)
    assert not any(c.threads == 2 for c, _, _ in stub.latencies)  # a cheaper configuration met the target
    assert any("cheaper and meets the target" in c["reason"] for c in by_status(body, "skipped"))
    assert all(c["variant"] != "int8" or c["status"] == "skipped" for c in body["candidates"])  # under the floor


@pytest.mark.parametrize("goal", [dict(), dict(p95_ms=3.0, min_throughput=10.0), dict(min_throughput=10.0),
                                  dict(p95_ms=-1.0)])  # fmt: skip
def test_a_goal_is_one_budget_or_one_target(goal):
    with pytest.raises(UsageError):
        Goal(**goal)


def test_a_cap_truncates_where_the_model_would_not(tiny_checkpoint, isolated_models):
    import embedkit

    text = " ".join(["cat"] * 40)
    capped = embedkit.load(str(tiny_checkpoint), max_seq_length=8)
    own = embedkit.load(str(tiny_checkpoint))
    assert capped.tokenizer.max_seq_length == 8 < own.tokenizer.max_seq_length
    assert capped.embed_with_info([text]).n_truncated == 1
    assert (
        embedkit.load(str(tiny_checkpoint), max_seq_length=1000).tokenizer.max_seq_length
        == own.tokenizer.max_seq_length
    )


def test_the_choice_is_marked_on_the_pareto_plot(tmp_path, tradeoff):
    import pandas as pd

    from embedkit.analysis.tradeoff import tune_choices
    from embedkit.publish import plots
    from embedkit.results.tables import load_frame

    run(Goal(p95_ms=3.0), tmp_path)
    (choice,) = tune_choices(load_frame(tmp_path)).to_dict("records")
    assert (choice["model"], choice["variant"], choice["provider"]) == ("m", "int8-pc", CPU)
    assert choice["command"].startswith("embedkit profile m:int8-pc")
    point = tradeoff.points.iloc[0]
    on_plot = pd.DataFrame([{**choice, "machine_id": point["machine_id"], "model": point["model"],
                             "variant": point["variant"], "provider": point["provider"]}])  # fmt: skip
    figure = plots.plot_pareto(tradeoff)
    assert plots.mark_tuned(figure, tradeoff, on_plot) == 1
    assert any(line.get_gid() == f"tuned-{choice['record_id']}" for ax in figure.axes for line in ax.lines)
    assert plots.mark_tuned(plots.plot_pareto(tradeoff), tradeoff, on_plot.assign(variant="nowhere")) == 0
