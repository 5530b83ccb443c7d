"""Quality scores computed by mteb itself: its tasks, evaluators, main scores and result files.

embedkit contributes only what mteb cannot know: an encoder around an embedkit embedder
(`embedkit.quality.encoder`, with the embedding cache of `embedkit.quality.cache`), the local data
mirror in place of the hub (`embedkit.quality.tasks`), the parity gate, and provenance. Spearman, nDCG
and the classification protocol all stay mteb's. A score becomes a `score` record here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import mteb
from mteb.abstasks import AbsTask

from embedkit import defaults
from embedkit.errors import UsageError
from embedkit.models.loading import weights_and_tokenizer
from embedkit.models.parity import require_parity
from embedkit.models.twins import refuse_random
from embedkit.paths import results_dir
from embedkit.pipeline.providers import build_provider_options
from embedkit.quality import mirror
from embedkit.quality.cache import CachedEncoder, EmbeddingCache, embeds_independently_of_batch
from embedkit.quality.encoder import EmbedderLike, EmbedkitEncoder
from embedkit.quality.tasks import get_task, local_data_root
from embedkit.results.files import write_record
from embedkit.results.records import new_record

if TYPE_CHECKING:
    import pandas as pd

    from embedkit.pipeline.embedder import Embedder


@dataclass(frozen=True)
class TaskScore:
    task: str
    main_score_name: str  # mteb's main metric for the task, e.g. "cosine_spearman"
    main_score: float  # on mteb's 0-1 scale
    result_path: str  # mteb's TaskResult JSON
    wall_seconds: float  # the whole mteb.evaluate call: data loading, encoding, scoring
    encode_seconds: float  # time inside the embedder; 0 when every text came from the cache
    texts_requested: int
    texts_encoded: int
    mteb_scores: dict[str, list[Mapping[str, Any]]]  # every metric mteb computed: split -> per-subset scores
    provenance: dict[str, Any]
    # The result came from an earlier evaluation of this exact variant and provider (see `score`).
    reused_result: bool = False


@dataclass(frozen=True)
class ScoreResult:
    """Main scores of one variant on one provider, with provenance; plain JSON-able data."""

    model: str
    variant: str
    variant_sha256: str
    provider: str  # the session's first (primary) provider, under ONNX Runtime's full name
    providers: list[str]  # every provider the session holds, in order
    mteb_model_name: str
    mteb_revision: str
    parity: dict[str, Any] | None
    forced: bool  # scored although the variant failed its parity gate
    batch_size: int
    embedding_cache: bool  # whether embeddings could come from (and went to) the embedding cache
    tasks: dict[str, TaskScore] = field(default_factory=dict)

    @property
    def scores(self) -> dict[str, float]:
        return {name: task.main_score for name, task in self.tasks.items()}

    @property
    def data_sha256(self) -> dict[str, str]:
        """sha256 of every local mirror file the scores came from, keyed by its path in the mirror."""
        return {
            relative: digest
            for task in self.tasks.values()
            for relative, digest in task.provenance["dataset"].get("sha256", {}).items()
        }

    @property
    def data_revision(self) -> dict[str, dict[str, str]]:
        """{task: {path, revision}} of the tasks that loaded from the hub (no local files to hash)."""
        return {
            name: {"path": dataset["path"], "revision": dataset["revision"]}
            for name, task in self.tasks.items()
            if (dataset := task.provenance["dataset"])["source"] == "hub"
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "scores": self.scores,
            "data_sha256": self.data_sha256,
            "data_revision": self.data_revision,
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per task: a tidy table for notebooks."""
        import pandas as pd

        identity = {
            "model": self.model,
            "variant": self.variant,
            "provider": self.provider,
            "variant_sha256": self.variant_sha256,
            "forced": self.forced,
        }
        return pd.DataFrame(
            [
                {
                    **identity,
                    "task": task.task,
                    "metric": task.main_score_name,
                    "score": task.main_score,
                    "reused_result": task.reused_result,
                    "wall_seconds": task.wall_seconds,
                    "encode_seconds": task.encode_seconds,
                    "texts_requested": task.texts_requested,
                    "texts_encoded": task.texts_encoded,
                }
                for task in self.tasks.values()
            ]
        )


def score(
    embedder: EmbedderLike,
    tasks: Iterable[str | AbsTask],
    *,
    force: bool = False,
    output_dir: Path | None = None,
    batch_size: int = defaults.BATCH_SIZE,
    use_cache: bool = True,
    reuse_results: bool = False,
) -> ScoreResult:
    """Score `embedder` on mteb tasks (names, or mteb task objects) through `mteb.evaluate`.

    mteb writes one TaskResult JSON per task under `output_dir` (default results/quality) at
    results/<model name>/<revision>/<task>.json; for local data a `<task>.data.sha256` file
    (sha256sum format) beside it names the mirror files, since the JSON carries the hub revision.
    A variant whose parity gate failed is refused unless `force`. `use_cache=False` re-encodes
    everything, e.g. to time pure encoding or to re-verify a record. Variants whose embeddings depend
    on their batch (dynamic int8) are never cached: their scores depend on which texts share a batch,
    so they are reproducible only when every run batches the same texts the same way.
    `reuse_results`: a task whose result mteb already holds under `output_dir` for this model meta
    (its revision names the variant's sha256 and the provider) is taken from there, by mteb's own
    "only-missing" strategy, and its score says `reused_result`; a sweep's rounds use it so that a
    task scored in round 1 is not scored again in round 2.
    """
    refuse_random(embedder.spec, "score")
    parity_failed = not require_parity(embedder.variant, force)
    parity = dict(embedder.variant.parity) if embedder.variant.parity is not None else None
    encoder = EmbedkitEncoder(embedder)
    cache = EmbeddingCache.default() if use_cache and embeds_independently_of_batch(embedder.variant) else None
    evaluated = encoder if cache is None else CachedEncoder(encoder, cache)
    result_cache = mteb.ResultCache(output_dir or results_dir() / "quality")
    model_provenance = _model_provenance(encoder)
    try:
        scores = {
            task.metadata.name: _score_task(evaluated, task, result_cache, batch_size, model_provenance, reuse_results)
            for task in _resolve_tasks(tasks)
        }
    finally:
        if cache is not None:
            cache.close()
    meta = encoder.mteb_model_meta
    return ScoreResult(
        model=embedder.spec.name,
        variant=embedder.variant.name,
        variant_sha256=embedder.variant.sha256,
        provider=encoder.providers[0],
        providers=list(encoder.providers),
        mteb_model_name=cast("str", meta.name),  # model_meta_for always sets both
        mteb_revision=cast("str", meta.revision),
        parity=parity,
        forced=parity_failed,
        batch_size=batch_size,
        embedding_cache=cache is not None,
        tasks=scores,
    )


def _resolve_tasks(tasks: Iterable[str | AbsTask]) -> list[AbsTask]:
    return [get_task(task) if isinstance(task, str) else task for task in tasks]


def _score_task(
    model: EmbedkitEncoder | CachedEncoder,
    task: AbsTask,
    result_cache: mteb.ResultCache,
    batch_size: int,
    model_provenance: dict[str, Any],
    reuse_result: bool = False,
) -> TaskScore:
    name = task.metadata.name
    before = model.stats
    held = (
        reuse_result and result_cache.get_task_result_path(task_name=name, model_name=model.mteb_model_meta).is_file()
    )
    started = time.perf_counter()
    model_result = mteb.evaluate(
        model,
        task,
        cache=result_cache,
        # Otherwise every call re-scores (the embedding cache makes that cheap where it applies).
        overwrite_strategy="only-missing" if reuse_result else "always",
        encode_kwargs={"batch_size": batch_size, "show_progress_bar": False},
        show_progress_bar=False,
        co2_tracker=False,
    )
    wall_seconds = time.perf_counter() - started
    spent = model.stats.since(before)
    reused = held and spent.texts_requested == 0  # mteb took the result it held: nothing was encoded
    (task_result,) = model_result.task_results
    result_path = result_cache.get_task_result_path(task_name=name, model_name=model.mteb_model_meta)
    dataset = _dataset_provenance(task)
    local_files = dataset.get("sha256")
    if local_files:
        lines = [f"{digest}  {relative}\n" for relative, digest in local_files.items()]
        result_path.with_name(f"{name}.data.sha256").write_text("".join(lines), encoding="utf-8")
    return TaskScore(
        task=name,
        main_score_name=task.metadata.main_score,
        main_score=float(task_result.get_score()),
        result_path=str(result_path),
        wall_seconds=wall_seconds,
        encode_seconds=spent.encode_seconds,
        texts_requested=spent.texts_requested,
        texts_encoded=spent.texts_encoded,
        mteb_scores=task_result.scores,
        provenance={
            "mteb_version": mteb.__version__,
            "task": name,
            "eval_splits": list(task.eval_splits),
            "dataset": dataset,
            **model_provenance,
        },
        reused_result=reused,
    )


def _dataset_provenance(task: AbsTask) -> dict[str, Any]:
    """Where a task's data came from: the local mirror's files with their sha256, or the hub's revision."""
    root = local_data_root(task)
    if root is not None:
        return {"source": "local", "data_dir": str(root), "sha256": mirror.data_sha256(task.metadata.name, root)}
    return {"source": "hub", "path": task.metadata.dataset["path"], "revision": task.metadata.revision}


def _model_provenance(encoder: EmbedkitEncoder) -> dict[str, Any]:
    """What scored: model, variant, providers, mteb's name for them, and the prompts mteb could pick."""
    embedder, meta = encoder.model, encoder.mteb_model_meta
    return {
        "model": embedder.spec.name,
        "variant": {"name": embedder.variant.name, "sha256": embedder.variant.sha256},
        "providers": encoder.providers,
        "mteb_model": {"name": meta.name, "revision": meta.revision},
        "prompts": dict(encoder.model_prompts or {}),
    }


def score_record(result: ScoreResult, embedder: Embedder) -> dict[str, Any]:
    """A validated `score` record of `result`, scored by `embedder` in this process."""
    variant = embedder.variant
    if (embedder.spec.name, variant.name, variant.sha256) != (result.model, result.variant, result.variant_sha256):
        raise UsageError(
            f"result is for {result.model}:{result.variant} ({result.variant_sha256[:12]}) but the embedder is "
            f"{embedder.spec.name}:{variant.name} ({variant.sha256[:12]})"
        )
    session = embedder.session
    body: dict[str, Any] = {
        "model": {
            "spec": asdict(embedder.spec),
            "variant": {
                "name": variant.name,
                "sha256": variant.sha256,
                "manifest": variant.manifest,
                "parity": result.parity,
            },
            **weights_and_tokenizer(embedder.spec, embedder.tokenizer),
        },
        "provider": result.provider,
        "scores": result.scores,
        "tasks": {name: _undefined_as_null(asdict(task)) for name, task in result.tasks.items()},
        "forced": result.forced,
        "data_sha256": result.data_sha256,
        "scoring": {
            "batch_size": result.batch_size,
            "provider_options": build_provider_options(session.requested_providers[0], session.config.provider_options),
            "providers": result.providers,
            "intra_op_threads": session.config.intra_op_threads,  # null: ONNX Runtime's default
            "embedding_cache": result.embedding_cache,
        },
    }
    if result.data_revision:
        body["data_revision"] = result.data_revision
    return new_record("score", body)


def _undefined_as_null(value: Any) -> Any:
    """`value` with NaN and infinities replaced by None, through dicts and lists.

    mteb reports a metric that is undefined for a task as NaN (e.g. average precision of the 77-class
    Banking77); JSON has no NaN, and mteb's own per-experiment entries write such metrics as null.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _undefined_as_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_undefined_as_null(item) for item in value]
    return value


def write_score_record(result: ScoreResult, embedder: Embedder, out_dir: Path | str | None = None) -> Path:
    """Write `score_record(result, embedder)` into `out_dir` (default results/records); returns its path."""
    return write_record(score_record(result, embedder), out_dir)
