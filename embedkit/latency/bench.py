"""`embedkit bench`: embedkit against what people pick instead, interleaved in one process.

The contenders (embedkit.latency.contenders): embedkit's variants, raw `session.run` on one
pre-tokenized text, sentence-transformers on PyTorch (the reference) and its ONNX, ONNX int8 and
OpenVINO backends — each checked against the reference before it is timed. Three workloads: one text
of SINGLE_TEXT_TOKENS tokens; batch 32 over ~1000 real sentences; batch 32 over SciFact abstracts at
max_seq_length (the workload that dominates scoring time). Every contender runs in turn inside each
round (A B C … A B C …), so machine noise lands on all of them alike; the figures that matter are
the ratios (embedkit.latency.comparison), not the absolute times. Within a single-text round each
contender makes a block of calls and its first few are discarded: they pay for the caches the
previous contender evicted and for its runtime's workers still spinning. In a batch round each
contender embeds the same block of texts. Each runtime keeps its defaults: PyTorch's OpenMP pool as
it comes, embedkit's sessions with workers that stop spinning when a run returns.

Then the physical limit (embedkit.latency.bound): this machine's rates, measured now, against each
ONNX contender's work per workload (measured time ÷ bound), and at batch 1 where the rest of the time
goes (embedkit.latency.breakdown). The result is written as a `bench` record.

The leak check, last so it cannot disturb the timings, reads the process's resident memory before
and after many `embed` calls of mixed batch sizes, and before and after creating and closing the
session many times; each after a warm-up of the same, so what it reports is growth, not start-up.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from embedkit import defaults
from embedkit.errors import UsageError
from embedkit.latency.bound import CostModel, MachineRates, measure_rates
from embedkit.latency.breakdown import batch1_breakdown
from embedkit.latency.comparison import BATCH, LONG, SINGLE, bench_ratios
from embedkit.latency.contenders import (
    EMBEDKIT,
    RAW,
    ST_TORCH,
    Contender,
    check_parity,
    embedkit_contender,
    raw_contender,
    sentence_transformers_alternatives,
    st_contender,
)
from embedkit.latency.sampling import StopRule, measure_timing_overhead, sample_until
from embedkit.models.export import detect_quantization_arch
from embedkit.models.loading import load
from embedkit.models.parity import PARITY_TEXTS, reference_model
from embedkit.models.sources import pytorch_checkpoint
from embedkit.models.specs import reference_of
from embedkit.pipeline.embedder import Embedder
from embedkit.pipeline.session import OrtSession, SessionConfig
from embedkit.quality.sentences import benchmark_sentences, long_documents
from embedkit.system import rss_mb

SINGLE_TEXT_TOKENS = 15  # the seed plan's single-sentence case, counting [CLS] and [SEP]
WARMUP_CALLS = 30
BLOCK_CALLS = 25  # single-text calls a contender makes in a row within a round
BLOCK_WARMUP = 5  # of which the first are not kept: cold caches, the previous runtime's workers still spinning
THROUGHPUT_ROUNDS = 3  # passes over the sentences (the long documents get one: they are costly)
LEAK_SESSION_CYCLES = 200
LEAK_WARMUP_SESSION_CYCLES = 10
# Batch sizes of the leak check's calls, drawn with probability 1/size: mostly single texts, as an
# API serves them, with every size up to two embed batches met many times.
LEAK_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)


def _single_sentence(embedder: Embedder, candidates: list[str]) -> str:
    """A real sentence of exactly SINGLE_TEXT_TOKENS tokens (the closest, if none is exact)."""
    lengths = [int(embedder.tokenizer.encode([text]).attention_mask.sum()) for text in candidates]
    best = min(range(len(candidates)), key=lambda i: abs(lengths[i] - SINGLE_TEXT_TOKENS))
    return candidates[best]


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


def _block_times(contenders: list[Contender], blocks: list[list[str]], passes: int, desc: str) -> dict[str, np.ndarray]:
    """Seconds per block per contender; in each round every contender embeds the same block in turn."""
    for contender in contenders:  # arenas grown and weights packed before anything is kept
        contender.call(blocks[0])
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    for _ in range(passes):
        for block in tqdm(blocks, desc=desc, unit="round", leave=False):
            for contender in contenders:
                start = time.perf_counter()
                contender.call(block)
                times[contender.name].append(time.perf_counter() - start)
    return {name: np.array(values) for name, values in times.items()}


def _blocks(texts: list[str], size: int) -> list[list[str]]:
    return [texts[i : i + size] for i in range(0, len(texts), size)]


def call_shapes(embedder: Embedder, texts: list[str]) -> list[tuple[int, int]]:
    """The (batch, seq) of each session.run that `embedder.embed(texts)` makes (length-sorted batches)."""
    ordered = sorted(texts, key=len, reverse=True)
    batches = [ordered[i : i + defaults.BATCH_SIZE] for i in range(0, len(ordered), defaults.BATCH_SIZE)]
    shapes = [embedder.tokenizer.encode(batch).attention_mask.shape for batch in batches]
    return [(int(batch), int(seq)) for batch, seq in shapes]


def cost_models(contenders: list[Contender]) -> dict[str, CostModel]:
    """Each ONNX contender's cost model (one per graph file), read while its files exist."""
    by_path: dict[Path, CostModel] = {}
    for contender in contenders:
        if contender.model_path is not None and contender.model_path not in by_path:
            by_path[contender.model_path] = CostModel.of(contender.model_path)
    return {c.name: by_path[c.model_path] for c in contenders if c.model_path is not None}


def physical_bound(
    costs: Mapping[str, CostModel],
    shapes: Mapping[str, list[tuple[int, int]]],
    measured_ms: Mapping[str, Mapping[str, float]],
    rates: MachineRates,
) -> dict[str, Any]:
    """Per ONNX contender and workload: the bound (ms per call or per pass) and measured ÷ bound."""
    result: dict[str, Any] = {}
    for name, model in costs.items():
        per_workload = {}
        for workload, workload_shapes in shapes.items():
            if name not in measured_ms.get(workload, {}):
                continue
            bound = model.bound_ms(workload_shapes, rates)
            measured = measured_ms[workload][name]
            single_call = model.at(*workload_shapes[0]).bound(rates) if workload == SINGLE else None
            per_workload[workload] = {"bound_ms": bound, "measured_ms": measured, "measured_over_bound": measured / bound,
                                      **({"limited_by": single_call["limited_by"]} if single_call else {})}  # fmt: skip
        result[name] = {"cost": model.to_record(), "workloads": per_workload}
    return result


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


def _summary(result: Mapping[str, Any]) -> str:
    """The bench for people: parity, the three workloads, every ratio beside its goal, the bound."""
    lines = [f"embedkit bench {result['model']} — one text of {result['sentence_tokens']} tokens; "
             f"batch {defaults.BATCH_SIZE} over {result['n_sentences']} sentences; batch {defaults.BATCH_SIZE} over "
             f"{result['long_documents']['n']} SciFact abstracts ({result['long_documents']['mean_tokens']:.0f} tokens on average)",
             "", "parity against sentence-transformers torch (min / mean cosine, gate):"]  # fmt: skip
    for name, about in result["contenders"].items():
        parity = about["parity"]
        if parity is None:
            lines.append(f"  {name:44s} (no vectors of its own: replays embedkit's feeds)")
        else:
            verdict = "timed" if about["timed"] else "FAILED: not timed"
            lines.append(f"  {name:44s} {parity['min_cosine']:.6f} / {parity['mean_cosine']:.6f}  "
                         f"{parity['gate']['metric']} >= {parity['gate']['threshold']:g}: {verdict}")  # fmt: skip
    for name, reason in result["unavailable"].items():
        lines.append(f"  {name:44s} unavailable: {reason}")
    lines += ["", f"{'contender':44s} {'1 text p50 ms':>14s} {'sentences/s':>12s} {'documents/s':>12s}"]
    for name in result["single_text"]:
        batch, docs = result["batch32_texts_per_s"].get(name), result["long_texts_per_s"].get(name)
        lines.append(f"{name:44s} {result['single_text'][name]['p50_ms']:14.2f} "
                     f"{'' if batch is None else f'{batch:.0f}':>12s} {'' if docs is None else f'{docs:.1f}':>12s}")  # fmt: skip
    lines += ["", "ratios (95 % paired CI), goal, met:"]
    for name, entry in result["ratios"].items():
        ci = entry["ci"]
        vs = f"  [{entry['embedkit']} vs {entry['sentence_transformers']}]" if "embedkit" in entry else ""
        goal = f"  goal {entry['target']}: {'met' if entry['met'] else 'NOT met'}" if "target" in entry else ""
        lines.append(f"  {name:38s} {entry['value']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]{goal}{vs}")
    rates = result["rates"]
    lines += ["", f"physical bound (measured now: {rates['bandwidth_gb_s']:.1f} GB/s copy, {rates['fp32_gflops']:.1f} "
              f"GFLOP/s fp32, {rates['int8_gops']:.1f} GOP/s int8) — measured ÷ bound:"]  # fmt: skip
    for name, about in result["bound"].items():
        cells = [
            f"{w} {v['measured_over_bound']:.2f}× (bound {v['bound_ms']:.2f} ms)" for w, v in about["workloads"].items()
        ]
        lines.append(f"  {name:44s} " + "; ".join(cells))
    lines += ["", "batch 1 under ORT's profiler (median per run, µs):"]
    for name, about in result["batch1_breakdown"].items():
        top = ", ".join(f"{op['op_type']} {op['kernel_share']:.0%}" for op in about["top_ops"])
        lines.append(f"  {name:44s} run {about['run_us']:.0f}, in kernels {about['kernel_us']:.0f}, outside "
                     f"{about['outside_kernels_us']:.0f}; {about['nodes_per_run']:.0f} nodes × {about['median_small_node_us']:.1f} "
                     f"= {about['per_node_overhead_us']:.0f} per-node overhead; top: {top}")  # fmt: skip
    lines += ["", f"record: {result['record']}"]
    return "\n".join(lines)


def run_bench(
    model: str,
    variants: list[str],
    single_calls: int = defaults.BENCH_SINGLE_CALLS,
    n_sentences: int = defaults.BENCH_SENTENCES,
    seed: int = 0,
    leak_calls: int = defaults.BENCH_LEAK_CALLS,
    n_documents: int = defaults.BENCH_LONG_DOCUMENTS,
    out: Path | str | None = None,
) -> dict[str, Any]:
    from embedkit.results.files import write_record
    from embedkit.results.records import new_record

    sentences = benchmark_sentences(seed).texts
    if not 0 <= n_sentences <= len(sentences):
        raise UsageError(f"can sample 0..{len(sentences)} distinct sentences, not {n_sentences}")
    texts = sentences[:n_sentences]
    documents = long_documents(n_documents, seed)  # before any model loads: a missing mirror fails at once
    embedders = {variant: load(model, variant) for variant in variants}
    base = embedders[variants[0]]
    sentence = _single_sentence(base, texts[:200])
    reference = reference_of(base.spec)
    torch_contender = st_contender(ST_TORCH, reference_model(base.spec), "torch")
    with tempfile.TemporaryDirectory(prefix="embedkit-bench-") as work:
        alternatives, unavailable = sentence_transformers_alternatives(
            pytorch_checkpoint(reference), Path(work), detect_quantization_arch(),  # type: ignore[arg-type]
            reference.trust_remote_code if reference else False,
        )  # fmt: skip
        contenders = [raw_contender(base, sentence), *map(embedkit_contender, embedders.values()), torch_contender,
                      *alternatives]  # fmt: skip
        assert torch_contender.vectors is not None
        reference_vectors = torch_contender.vectors(list(PARITY_TEXTS))
        for contender in contenders:
            if contender.vectors is not None:
                check_parity(contender, PARITY_TEXTS, reference_vectors)
        timed = [c for c in contenders if c.timed]
        batchers = [c for c in timed if c.family != RAW]
        times = {
            SINGLE: _single_text_latency(timed, sentence, single_calls),
            BATCH: _block_times(batchers, _blocks(texts, defaults.BENCH_BLOCK_TEXTS), THROUGHPUT_ROUNDS,
                                f"batch-{defaults.BATCH_SIZE} sentences"),
            LONG: _block_times(batchers, _blocks(documents.texts, defaults.BATCH_SIZE), 1,
                               f"batch-{defaults.BATCH_SIZE} long documents"),
        }  # fmt: skip
        costs = cost_models(contenders)  # the alternatives' graphs live in `work`
    passes = {BATCH: THROUGHPUT_ROUNDS, LONG: 1}
    sizes = {BATCH: len(texts), LONG: len(documents.texts)}
    measured_ms = {SINGLE: {name: float(np.median(s) * 1e3) for name, s in times[SINGLE].items()},
                   **{w: {name: float(s.sum() / passes[w] * 1e3) for name, s in times[w].items()} for w in passes}}  # fmt: skip
    sentence_tokens = int(base.tokenizer.encode([sentence]).attention_mask.sum())
    shapes = {SINGLE: [(1, sentence_tokens)],
              BATCH: [s for block in _blocks(texts, defaults.BENCH_BLOCK_TEXTS) for s in call_shapes(base, block)],
              LONG: [s for block in _blocks(documents.texts, defaults.BATCH_SIZE) for s in call_shapes(base, block)]}  # fmt: skip
    rates = measure_rates()
    breakdown = {
        f"{EMBEDKIT} {v}": batch1_breakdown(e.variant.path, e.session.config, e.feeds(e.tokenizer.encode([sentence])),
                                            defaults.BENCH_PROFILED_RUNS)
        for v, e in embedders.items()
    }  # fmt: skip
    long_tokens = [int(base.tokenizer.encode([t]).attention_mask.sum()) for t in documents.texts]
    result: dict[str, Any] = {
        "model": model,
        "variants": variants,
        "sentence": sentence,
        "sentence_tokens": sentence_tokens,
        "n_sentences": len(texts),
        "long_documents": {
            **documents.provenance,
            "mean_tokens": float(np.mean(long_tokens)),
            "max_seq_length": base.tokenizer.max_seq_length,
        },
        "contenders": {c.name: {"family": c.family, "parity": c.parity, "timed": c.timed} for c in contenders},
        "unavailable": unavailable,
        "single_text": {
            name: {
                "p50_ms": float(np.percentile(s, 50) * 1e3),
                "p95_ms": float(np.percentile(s, 95) * 1e3),
                "n": int(s.size),
            }
            for name, s in times[SINGLE].items()
        },
        "batch32_texts_per_s": {name: passes[BATCH] * sizes[BATCH] / s.sum() for name, s in times[BATCH].items()},
        "long_texts_per_s": {name: sizes[LONG] / s.sum() for name, s in times[LONG].items()},
        "rounds": {w: len(next(iter(times[w].values()))) for w in times},
        "ratios": bench_ratios(times, variants),
        "rates": rates.to_record(),
        "bound": physical_bound(costs, shapes, measured_ms, rates),
        "batch1_breakdown": breakdown,
        # The profiler's per-stage timer against no timer, paired on one session: its overhead must stay under 2 %.
        "timing_overhead": measure_timing_overhead(base, [sentence], min_pairs=single_calls).to_record(),
        "leak_check": leak_check(base, texts, leak_calls, seed),
    }
    result["record"] = str(write_record(new_record("bench", {"bench": result}), out).resolve())
    result["summary"] = _summary(result)
    return result
