"""The measurements `embedkit tune` searches over: profile workers for latency, score records (or mteb
scoring when none matches) for quality. `embedkit.runs.tune` decides; this module only measures."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from embedkit import defaults
from embedkit.latency.environments import Environments
from embedkit.latency.grid import Backend, GridPoint, ProviderConfig, Scenario
from embedkit.latency.launcher import VariantResolver, run_point
from embedkit.models.export import Variant
from embedkit.models.loading import ModelFiles, load
from embedkit.models.specs import get_spec
from embedkit.paths import results_dir
from embedkit.pipeline.providers import CPU
from embedkit.quality import mirror
from embedkit.results.files import read_record
from embedkit.results.scores import score_record_paths
from embedkit.runs.tune import Candidate, Latency, Quality


class WorkerMeasurements:
    """Latency from a fresh profile worker per point; quality from score records under `results`, else scored."""

    def __init__(self, records_dir: Path, results: Path | None = None) -> None:
        self.records_dir = records_dir
        self.results = results or results_dir()
        self.environments = Environments()
        self.resolve = VariantResolver()

    def _variant(self, model: str, variant: str) -> Variant:
        return self.resolve(Backend(model, variant))

    def latency(self, candidate: Candidate, batch_size: int, seq_bucket: str) -> Latency:
        backend = Backend(
            candidate.model,
            candidate.variant,
            ProviderConfig.of(candidate.provider),
            intra_op_threads=candidate.threads,
            spinning=candidate.spinning,
            max_seq_length=candidate.max_seq_length,
        )
        long = seq_bucket == defaults.TUNE_THROUGHPUT_SEQ
        scenario = Scenario(
            batch_size,
            seq_bucket,
            min_samples=defaults.TUNE_THROUGHPUT_SAMPLES if long else defaults.TUNE_MIN_SAMPLES,
            min_seconds=defaults.TUNE_MIN_SECONDS,
            max_seconds=defaults.TUNE_MAX_SECONDS,
        )
        python = self.environments.providing([backend.provider.name]).python
        record = run_point(GridPoint(backend, scenario), self._variant(candidate.model, candidate.variant), python,
                           self.records_dir)  # fmt: skip
        total = record["stages"]["total"]
        return Latency(total["p95"], total["p50"], record["throughput"]["texts_per_s"], record["record_id"])

    def own_max_seq_length(self, model: str, variant: str) -> int:
        return ModelFiles.of(get_spec(model)).max_seq_length(self._variant(model, variant))

    def longest_text_tokens(self, model: str, variant: str, tasks: Sequence[str]) -> int:
        """Tokens of the longest text the tasks embed; a task outside the mirror's STS tasks counts as long."""
        return _longest_text_tokens(model, variant, tuple(tasks), self.own_max_seq_length(model, variant))

    def quality(self, model: str, variant: str, max_seq_length: int | None, tasks: Sequence[str]) -> Quality:
        resolved = self._variant(model, variant)
        own = self.own_max_seq_length(model, variant)
        length = own if max_seq_length is None else min(own, max_seq_length)
        found = self._score_record(model, resolved, length, own, tasks)
        if found is None:
            found = self._score(model, variant, max_seq_length, length, tasks)
            reused = False
        else:
            reused = True
        scores = {task: float(found["scores"][task]) for task in tasks}
        return Quality(sum(scores.values()) / len(scores), scores, found["record_id"], reused)

    def _score_record(
        self, model: str, variant: Variant, length: int, own: int, tasks: Sequence[str]
    ) -> dict[str, Any] | None:
        """The latest unforced CPU score record of this exact variant file, these tasks and this length."""
        matching = []
        for path in score_record_paths(self.results) if self.results.exists() else []:
            record = read_record(path)
            if (
                record["model"]["spec"]["name"] == model
                and record["model"]["variant"]["sha256"] == variant.sha256
                and record["provider"] == CPU
                and not record["forced"]
                and set(tasks) <= set(record["scores"])
                # Records written before the field existed scored at the model's own length.
                and record.get("scoring", {}).get("max_seq_length", own) == length
            ):
                matching.append(record)
        return max(matching, key=lambda record: record["created_at"]) if matching else None

    def _score(self, model: str, variant: str, cap: int | None, length: int, tasks: Sequence[str]) -> dict[str, Any]:
        from embedkit.quality.scoring import score, write_score_record

        embedder = load(model, variant, CPU, max_seq_length=cap)
        capped = length < self.own_max_seq_length(model, variant)
        # mteb's result files key by model name and revision, not by length: a capped run keeps its own.
        mteb_dir = self.results / "quality" / (f"max_seq_length-{length}" if capped else "")
        result = score(embedder, list(tasks), output_dir=mteb_dir)
        return read_record(write_score_record(result, embedder, self.records_dir))


@lru_cache(maxsize=16)
def _longest_text_tokens(model: str, variant: str, tasks: tuple[str, ...], own: int) -> int:
    files = ModelFiles.of(get_spec(model))
    tokenizer = files.tokenizer(VariantResolver()(Backend(model, variant)))
    longest = 0
    for task in tasks:
        if task not in mirror.STS_TASKS:
            return own + 1
        texts = [text for pair in mirror.read_sts(task) for text in pair[:2]]
        batch = tokenizer.encode(texts)
        longest = max(longest, int(batch.attention_mask.sum(axis=1).max()) + (1 if batch.n_truncated else 0))
    return longest
