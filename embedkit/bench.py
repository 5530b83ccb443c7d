"""`embedkit bench`: embedkit vs raw `session.run` vs sentence-transformers, interleaved in one process.

Every contender runs in turn inside each round (A B C … A B C …), so machine noise lands on all of
them alike; the figures that matter are the ratios, not the absolute times.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from .data import sample_sentences
from .embedder import Embedder
from .models import load
from .profiler import measure_timing_overhead

SINGLE_TEXT_TOKENS = 15  # the seed plan's single-sentence case, counting [CLS] and [SEP]
WARMUP_CALLS = 30
BATCH_SIZE = 32
THROUGHPUT_ROUNDS = 3


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
    # Neither runtime may spin its idle workers while the other runs: OpenMP (torch) is made passive
    # before torch loads, ORT sessions are created without spinning.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from .parity import reference_model

    embedders = {variant: load(model, variant, allow_spinning=False) for variant in variants}
    base = embedders[variants[0]]
    raw_feeds = base.feeds(base.tokenizer.encode([sentence]))
    reference = reference_model(base.spec)
    contenders = [Contender(f"raw session.run ({variants[0]})", lambda _texts: base.session.run(raw_feeds))]
    contenders += [Contender(f"embedkit {v}", e.embed) for v, e in embedders.items()]
    contenders.append(Contender("sentence-transformers", lambda texts: reference.encode(
        texts, batch_size=BATCH_SIZE, convert_to_numpy=True)))
    return contenders, base


def _single_text_latency(contenders: list[Contender], sentence: str, calls: int) -> dict[str, np.ndarray]:
    samples = {c.name: np.empty(calls) for c in contenders}
    for _ in range(WARMUP_CALLS):
        for contender in contenders:
            contender.call([sentence])
    for i in tqdm(range(calls), desc="single text", leave=False):
        for contender in contenders:
            start = time.perf_counter()
            contender.call([sentence])
            samples[contender.name][i] = time.perf_counter() - start
    return samples


def _batch_throughput(contenders: list[Contender], texts: list[str]) -> dict[str, float]:
    # embed() and encode() both sort by length and batch by BATCH_SIZE themselves. The raw contender
    # replays one pre-tokenised text, so it has no batch figure.
    batchers = [c for c in contenders if not c.name.startswith("raw")]
    elapsed = {c.name: 0.0 for c in batchers}
    for _ in tqdm(range(THROUGHPUT_ROUNDS), desc="batch-32 throughput", leave=False):
        for contender in batchers:
            start = time.perf_counter()
            contender.call(texts)
            elapsed[contender.name] += time.perf_counter() - start
    return {name: THROUGHPUT_ROUNDS * len(texts) / seconds for name, seconds in elapsed.items()}


def run_bench(model: str, variants: list[str], single_calls: int = 300, n_sentences: int = 1000,
              seed: int = 0) -> dict[str, Any]:
    texts = sample_sentences(n_sentences, seed)
    sentence_candidates = texts[:200]
    probe = load(model, variants[0], allow_spinning=False)
    sentence = _single_sentence(probe, sentence_candidates)
    contenders, base = _contenders(model, variants, sentence)
    latency = _single_text_latency(contenders, sentence, single_calls)
    throughput = _batch_throughput(contenders, texts)
    stats = {name: {"p50_ms": float(np.percentile(s, 50) * 1e3), "p95_ms": float(np.percentile(s, 95) * 1e3),
                    "n": int(s.size)} for name, s in latency.items()}
    raw, first, st = f"raw session.run ({variants[0]})", f"embedkit {variants[0]}", "sentence-transformers"
    # The profiler's per-stage timer against no timer, paired on one session: the issue's < 2 % bar.
    timing = measure_timing_overhead(base, [sentence], min_pairs=single_calls)
    ratios: dict[str, float] = {
        "pipeline_overhead_p50": stats[first]["p50_ms"] / stats[raw]["p50_ms"] - 1.0,
        "timing_overhead_p50": timing.ratio - 1.0,
    }
    for variant in variants:
        name = f"embedkit {variant}"
        ratios[f"single_speedup_vs_st[{variant}]"] = stats[st]["p50_ms"] / stats[name]["p50_ms"]
        ratios[f"batch32_throughput_vs_st[{variant}]"] = throughput[name] / throughput[st]
    return {
        "model": model,
        "sentence": sentence,
        "sentence_tokens": int(base.tokenizer.encode([sentence]).attention_mask.sum()),
        "single_text": stats,
        "batch32_texts_per_s": throughput,
        "n_sentences": len(texts),
        "ratios": ratios,
        "timing_overhead": timing.to_record(),
    }
