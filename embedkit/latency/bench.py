"""`embedkit bench`: embedkit vs raw `session.run` vs sentence-transformers, interleaved in one process.

Every contender runs in turn inside each round (A B C … A B C …), so machine noise lands on all of
them alike; the figures that matter are the ratios, not the absolute times. Within a round each
contender makes a block of calls and its first few are discarded: they pay for the caches the previous
contender evicted and for its runtime's workers still spinning. Each runtime keeps its defaults:
PyTorch's OpenMP pool as it comes, embedkit's sessions with workers that stop spinning when a run
returns, so that ORT's idle workers do not hold the cores PyTorch's block needs.

The leak check, last so it cannot disturb the timings, reads the process's resident memory before
and after many `embed` calls of mixed batch sizes, and before and after creating and closing the
session many times; each after a warm-up of the same, so what it reports is growth, not start-up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from embedkit import defaults
from embedkit.errors import UsageError
from embedkit.latency.sampling import StopRule, measure_timing_overhead, sample_until
from embedkit.models.loading import load
from embedkit.pipeline.embedder import Embedder
from embedkit.pipeline.session import OrtSession, SessionConfig
from embedkit.quality.sentences import benchmark_sentences
from embedkit.stats import ratio_with_ci
from embedkit.system import rss_mb

SINGLE_TEXT_TOKENS = 15  # the seed plan's single-sentence case, counting [CLS] and [SEP]
WARMUP_CALLS = 30
BLOCK_CALLS = 25  # single-text calls a contender makes in a row within a round
BLOCK_WARMUP = 5  # of which the first are not kept: cold caches, the previous runtime's workers still spinning
THROUGHPUT_ROUNDS = 3
LEAK_SESSION_CYCLES = 200
LEAK_WARMUP_SESSION_CYCLES = 10
# Batch sizes of the leak check's calls, drawn with probability 1/size: mostly single texts, as an
# API serves them, with every size up to two embed batches met many times.
LEAK_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)


@dataclass
class Contender:
    name: str
    call: Callable[[list[str]], Any]


def _single_sentence(embedder: Embedder, candidates: list[str]) -> str:
    """A real sentence of exactly SINGLE_TEXT_TOKENS tokens (the closest, if none is exact)."""
    lengths = [int(embedder.tokenizer.encode([text]).attention_mask.sum()) for text in candidates]
    best = min(range(len(candidates)), key=lambda i: abs(lengths[i] - SINGLE_TEXT_TOKENS))
    return candidates[best]


def _contenders(model: str, variants: list[str], sentence: str) -> tuple[list[Contender], Embedder]:
    from embedkit.models.parity import reference_model

    embedders = {variant: load(model, variant) for variant in variants}
    base = embedders[variants[0]]
    raw_feeds = base.feeds(base.tokenizer.encode([sentence]))
    reference = reference_model(base.spec)
    contenders = [Contender(f"{RAW} ({variants[0]})", lambda _texts: base.session.run(raw_feeds))]
    contenders += [Contender(f"embedkit {v}", e.embed) for v, e in embedders.items()]
    contenders.append(
        Contender(ST, lambda texts: reference.encode(texts, batch_size=defaults.BATCH_SIZE, convert_to_numpy=True))
    )
    return contenders, base


def _single_text_latency(contenders: list[Contender], sentence: str, calls: int) -> dict[str, np.ndarray]:
    """At least `calls` kept samples per contender; sample i of every contender comes from one round."""
    samples: dict[str, list[float]] = {c.name: [] for c in contenders}
    for _ in range(WARMUP_CALLS):
        for contender in contenders:
            contender.call([sentence])
    kept_per_round = BLOCK_CALLS - BLOCK_WARMUP
    with tqdm(total=-(-calls // kept_per_round), desc="single text", unit="round", leave=False) as bar:

        def one_round() -> int:
            for contender in contenders:
                for call in range(BLOCK_CALLS):
                    start = time.perf_counter()
                    contender.call([sentence])
                    if call >= BLOCK_WARMUP:
                        samples[contender.name].append(time.perf_counter() - start)
            bar.update()
            return len(samples[contenders[0].name])

        sample_until(StopRule(min_samples=calls, min_seconds=0.0), one_round)
    return {name: np.array(values) for name, values in samples.items()}


def _batch_throughput(contenders: list[Contender], texts: list[str]) -> dict[str, float]:
    # embed() and encode() both sort by length and batch by defaults.BATCH_SIZE themselves. The raw contender
    # replays one pre-tokenised text, so it has no batch figure.
    batchers = [c for c in contenders if not c.name.startswith("raw")]
    elapsed = {c.name: 0.0 for c in batchers}
    for _ in tqdm(range(THROUGHPUT_ROUNDS), desc=f"batch-{defaults.BATCH_SIZE} throughput", leave=False):
        for contender in batchers:
            start = time.perf_counter()
            contender.call(texts)
            elapsed[contender.name] += time.perf_counter() - start
    return {name: THROUGHPUT_ROUNDS * len(texts) / seconds for name, seconds in elapsed.items()}


@dataclass(frozen=True)
class RssGrowth:
    """Resident memory before and after repeating one operation (after its warm-up)."""

    repeats: int
    before_mb: float
    after_mb: float

    @property
    def growth_mb(self) -> float:
        return self.after_mb - self.before_mb

    def to_record(self) -> dict[str, float]:
        return {
            "repeats": self.repeats,
            "rss_before_mb": self.before_mb,
            "rss_after_mb": self.after_mb,
            "growth_mb": self.growth_mb,
        }


def _rss_growth(step: Callable[[int], Any], repeats: int, warmup: int, desc: str) -> RssGrowth:
    """RSS around step(0 … repeats-1), after step(0 … warmup-1) filled arenas, caches and pools."""
    for i in range(warmup):
        step(i)
    before = rss_mb()
    for i in tqdm(range(repeats), desc=desc, leave=False):
        step(i)
    return RssGrowth(repeats, before, rss_mb())


def mixed_batches(texts: list[str], n_calls: int, seed: int) -> list[list[str]]:
    """n_calls batches of texts drawn from `texts`, sized from LEAK_BATCH_SIZES with probability 1/size."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.array(LEAK_BATCH_SIZES)
    sizes = rng.choice(LEAK_BATCH_SIZES, size=n_calls, p=weights / weights.sum())
    return [[texts[i] for i in rng.integers(0, len(texts), size)] for size in sizes]


def rss_over_embed_calls(embedder: Embedder, batches: list[list[str]]) -> RssGrowth:
    # The warm-up tenth meets every batch size, so ORT's arena has grown to the shapes the rest repeat.
    return _rss_growth(
        lambda i: embedder.embed(batches[i]), len(batches), len(batches) // 10, "leak check: embed calls"
    )


def rss_over_session_cycles(
    model_path: Path, config: SessionConfig, feeds: Mapping[str, np.ndarray], cycles: int
) -> RssGrowth:
    def cycle(_: int) -> None:
        with OrtSession(model_path, config) as session:
            session.run(feeds)

    return _rss_growth(cycle, cycles, LEAK_WARMUP_SESSION_CYCLES, "leak check: session create/close")


def leak_check(embedder: Embedder, texts: list[str], n_calls: int, seed: int) -> dict[str, Any]:
    """RSS growth over n_calls embed calls of mixed sizes and over LEAK_SESSION_CYCLES session cycles."""
    feeds = embedder.feeds(embedder.tokenizer.encode(texts[:1]))
    session = embedder.session
    return {
        "variant": embedder.variant.name,
        "embed_calls": rss_over_embed_calls(embedder, mixed_batches(texts, n_calls, seed)).to_record(),
        "session_cycles": rss_over_session_cycles(
            session.model_path, session.config, feeds, LEAK_SESSION_CYCLES
        ).to_record(),
    }


# The goals set for all-MiniLM-L6-v2 (goals, not measurements): (direction, bound) per ratio.
TARGETS: dict[str, tuple[str, float]] = {
    "pipeline_overhead": ("<=", 0.05),
    "single_speedup_vs_st[fp32]": (">=", 3.5),
    "single_speedup_vs_st[int8-pc]": (">=", 6.0),
    "batch32_throughput_vs_st[fp32]": (">=", 1.15),
    "batch32_throughput_vs_st[int8-pc]": (">=", 2.3),
}
RAW, ST = "raw session.run", "sentence-transformers"


def _ratio_entry(name: str, value: float, ci: tuple[float, float] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"value": value, "ci": None if ci is None else list(ci)}
    if name in TARGETS:
        direction, bound = TARGETS[name]
        entry.update(target=f"{direction} {bound:g}", met=value <= bound if direction == "<=" else value >= bound)
    return entry


def bench_ratios(
    latency: Mapping[str, np.ndarray], throughput: Mapping[str, float], variants: list[str]
) -> dict[str, dict[str, Any]]:
    """The figures the benchmark reports, each with its target where it has one.

    Single-text ratios compare medians with a paired bootstrap CI: every round timed each contender
    once, so a round's shared drift cancels. Batch throughput is one total per contender (no CI).
    """
    raw = next(name for name in latency if name.startswith(RAW))
    overhead = ratio_with_ci(latency[f"embedkit {variants[0]}"], latency[raw], paired=True)
    ratios = {
        "pipeline_overhead": _ratio_entry(
            "pipeline_overhead", overhead.ratio - 1.0, (overhead.ci[0] - 1.0, overhead.ci[1] - 1.0)
        )
    }
    for variant in variants:
        speedup = ratio_with_ci(latency[ST], latency[f"embedkit {variant}"], paired=True)
        name = f"single_speedup_vs_st[{variant}]"
        ratios[name] = _ratio_entry(name, speedup.ratio, speedup.ci)
        name = f"batch32_throughput_vs_st[{variant}]"
        ratios[name] = _ratio_entry(name, throughput[f"embedkit {variant}"] / throughput[ST], None)
    return ratios


def run_bench(
    model: str,
    variants: list[str],
    single_calls: int = defaults.BENCH_SINGLE_CALLS,
    n_sentences: int = defaults.BENCH_SENTENCES,
    seed: int = 0,
    leak_calls: int = defaults.BENCH_LEAK_CALLS,
) -> dict[str, Any]:
    sentences = benchmark_sentences(seed).texts
    if not 0 <= n_sentences <= len(sentences):
        raise UsageError(f"can sample 0..{len(sentences)} distinct sentences, not {n_sentences}")
    texts = sentences[:n_sentences]
    sentence_candidates = texts[:200]
    probe = load(model, variants[0])
    sentence = _single_sentence(probe, sentence_candidates)
    contenders, base = _contenders(model, variants, sentence)
    latency = _single_text_latency(contenders, sentence, single_calls)
    throughput = _batch_throughput(contenders, texts)
    stats = {
        name: {
            "p50_ms": float(np.percentile(s, 50) * 1e3),
            "p95_ms": float(np.percentile(s, 95) * 1e3),
            "n": int(s.size),
        }
        for name, s in latency.items()
    }
    # The profiler's per-stage timer against no timer, paired on one session: its overhead must stay under 2 %.
    timing = measure_timing_overhead(base, [sentence], min_pairs=single_calls)
    return {
        "model": model,
        "sentence": sentence,
        "sentence_tokens": int(base.tokenizer.encode([sentence]).attention_mask.sum()),
        "single_text": stats,
        "batch32_texts_per_s": throughput,
        "n_sentences": len(texts),
        "ratios": bench_ratios(latency, throughput, variants),
        "timing_overhead": timing.to_record(),
        "leak_check": leak_check(base, texts, leak_calls, seed),
    }
