"""Quality scores computed by mteb itself: its tasks, evaluators, main scores and result files.

embedkit contributes only what mteb cannot know: an encoder around an embedkit embedder (with an
embedding cache), the local data mirror in place of the hub (`embedkit.quality.mirror`), the parity gate,
and provenance. Spearman, nDCG and the classification protocol all stay mteb's.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import datasets.config
import huggingface_hub.constants
import mteb
import numpy as np
from datasets import Dataset, DatasetDict
from mteb.abstasks import AbsTask
from mteb.models import ModelMeta
from mteb.models.abs_encoder import AbsEncoder, get_prompt_name
from mteb.models.model_meta import ScoringFunction
from mteb.types import PromptType

from embedkit.quality import mirror as data
from embedkit.results import records
from embedkit.errors import ParityError, RecordMismatchError
from embedkit.models.export import get_variant
from embedkit.models.loading import embedder_for
from embedkit.paths import data_dir, models_dir, results_dir
from embedkit.pipeline.providers import build_provider_options
from embedkit.pipeline.session import OrtSession, SessionConfig
from embedkit.models.sources import file_sha256
from embedkit.models.specs import KNOWN_SPECS, get_spec

if TYPE_CHECKING:
    import pandas as pd

    from embedkit.pipeline.embedder import Embedder
    from mteb.abstasks.task_metadata import TaskMetadata
    from torch.utils.data import DataLoader

EVAL_SPLIT = "test"  # the one split mteb evaluates for every task of the local mirror


class ModelSpecLike(Protocol):
    name: str
    prompts: Mapping[str, str]


class VariantLike(Protocol):
    name: str
    sha256: str
    manifest: Mapping[str, Any]
    parity: Mapping[str, Any] | None


class EmbedderLike(Protocol):
    """What scoring needs from an embedder (embedkit's `Embedder`, or a test adapter)."""

    spec: ModelSpecLike
    variant: VariantLike

    @property
    def dim(self) -> int: ...

    @property
    def providers(self) -> Sequence[str]: ...

    def embed(self, texts: list[str], batch_size: int = 32, prompt_name: str | None = None) -> np.ndarray: ...






# ---------------------------------------------------------------------------------------------
# Embedding cache
# ---------------------------------------------------------------------------------------------


class EmbeddingCache:
    """Embeddings keyed by (variant sha256, provider, sha256 of prompt + text), in one SQLite file.

    A variant's sha256 changes whenever its weights or graph change, so a changed variant simply
    misses; the provider is part of the key because execution providers round differently. The key
    assumes a text's embedding does not depend on the other texts in its batch: `score` does not
    cache variants for which that is false (see `embeds_independently_of_batch`).
    """

    _LOOKUP_CHUNK = 500  # stays under SQLite's bound-parameter limit

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # timeout: sweep workers may score variants into the same cache at once.
        self._db = sqlite3.connect(path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS embeddings ("
            " variant_sha256 TEXT NOT NULL, provider TEXT NOT NULL, text_sha256 TEXT NOT NULL,"
            " vector BLOB NOT NULL, PRIMARY KEY (variant_sha256, provider, text_sha256)"
            ") WITHOUT ROWID"
        )

    @classmethod
    def default(cls) -> EmbeddingCache:
        return cls(models_dir() / "embedding-cache" / "embeddings.sqlite")

    def lookup(self, variant_sha256: str, provider: str, text_keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(text_keys), self._LOOKUP_CHUNK):
            chunk = list(text_keys[start : start + self._LOOKUP_CHUNK])
            placeholders = ",".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT text_sha256, vector FROM embeddings WHERE variant_sha256 = ? AND provider = ?"
                f" AND text_sha256 IN ({placeholders})",
                [variant_sha256, provider, *chunk],
            )
            found.update((key, np.frombuffer(blob, dtype="<f4")) for key, blob in rows)
        return found

    def store(self, variant_sha256: str, provider: str, vectors: Mapping[str, np.ndarray]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)",
                [
                    (variant_sha256, provider, key, np.ascontiguousarray(vector, dtype="<f4").tobytes())
                    for key, vector in vectors.items()
                ],
            )

    def close(self) -> None:
        self._db.close()


def text_key(prompt: str | None, text: str) -> str:
    """sha256 of what the model reads: the prompt and the text, unambiguously delimited."""
    return hashlib.sha256(json.dumps([prompt or "", text], ensure_ascii=False).encode("utf-8")).hexdigest()


# ONNX ops that quantize activations with one scale over the whole input tensor, i.e. over every text
# in the batch and its padding (ORT's dynamic int8 quantization): a text's embedding then changes with
# its batch mates (all-MiniLM-L6-v2 int8: cosine 0.99 between a text embedded alone and in a pair).
BATCH_DEPENDENT_OPS = frozenset({"DynamicQuantizeLinear", "DynamicQuantizeMatMul"})


def embeds_independently_of_batch(variant: VariantLike) -> bool:
    """True when each text's embedding is a function of the text alone, so that it may be cached."""
    return not BATCH_DEPENDENT_OPS & set(variant.manifest["graph"]["op_histogram"])


# ---------------------------------------------------------------------------------------------
# The mteb encoder
# ---------------------------------------------------------------------------------------------

# ModelSpec prompt keys that mteb calls differently (sentence-transformers says "passage").
_SPEC_TO_MTEB_PROMPT_KEY = {"passage": PromptType.document.value}


def provider_label(providers: Sequence[str]) -> str:
    """Short name of the primary provider: ["CPUExecutionProvider"] -> "CPU"."""
    return providers[0].removesuffix("ExecutionProvider")


def model_meta_for(embedder: EmbedderLike) -> ModelMeta:
    """An mteb ModelMeta whose name and revision identify model, variant and provider.

    Result files live under <name>/<revision>/, so distinct variants or providers never overwrite
    each other. Descriptive fields are copied from mteb's registry entry for the model when it has
    one (the checkpoint the variant was exported from).
    """
    spec, variant = embedder.spec, embedder.variant
    identity: dict[str, Any] = {
        "name": f"embedkit/{spec.name.rsplit('/', 1)[-1]}",
        "revision": f"{variant.name}-{provider_label(embedder.providers)}-{variant.sha256[:12]}",
        "loader": None,
        "loader_kwargs": {},
        "framework": ["ONNX"],
        "embed_dim": embedder.dim,
        "modalities": ["text"],
        "model_type": ["dense"],
    }
    registered = _registered_meta(spec.name)
    if registered is None:
        return ModelMeta.create_empty(
            overwrites={
                **identity,
                "similarity_fn_name": ScoringFunction.COSINE,
                "use_instructions": bool(spec.prompts),
                "max_tokens": getattr(spec, "max_seq_length", None),
            }
        )
    return registered.model_copy(
        update={
            **identity,
            "adapted_from": registered.name,
            "similarity_fn_name": registered.similarity_fn_name or ScoringFunction.COSINE,
            # measured for the registered (PyTorch) checkpoint, not for this variant
            "memory_usage_mb": None,
        }
    )


def _registered_meta(model_name: str) -> ModelMeta | None:
    """mteb's registry entry for `model_name`, matched exactly or by its part after the org.

    Specs of hub models are named "org--name" (a path-safe hub id).
    """
    metas = mteb.get_model_metas()
    hub_id = model_name.replace("--", "/", 1)
    exact = [meta for meta in metas if meta.name == hub_id]
    if exact:
        return exact[0]
    suffix = "/" + hub_id.rsplit("/", 1)[-1]
    matches = [meta for meta in metas if meta.name and meta.name.endswith(suffix)]
    return matches[0] if len(matches) == 1 else None


@dataclass
class EncodeStats:
    """What the encoder did: texts mteb asked for, texts actually embedded, time spent embedding."""

    texts_requested: int = 0
    texts_encoded: int = 0
    encode_seconds: float = 0.0

    def since(self, earlier: EncodeStats) -> EncodeStats:
        return EncodeStats(
            self.texts_requested - earlier.texts_requested,
            self.texts_encoded - earlier.texts_encoded,
            self.encode_seconds - earlier.encode_seconds,
        )


class EmbedkitEncoder(AbsEncoder):
    """mteb encoder around an embedkit embedder, with prompts from the model spec.

    The spec's prompts become mteb `model_prompts` ("passage" is mteb's "document"), so mteb's own
    precedence (task-query, task, type-query, type, query/document) picks the prompt for every
    encode call, as it does for sentence-transformers models.
    """

    def __init__(self, embedder: EmbedderLike, *, cache: EmbeddingCache | None = None) -> None:
        self.model = embedder
        self.mteb_model_meta = model_meta_for(embedder)
        self.cache = cache
        self.stats = EncodeStats()
        self.providers = list(embedder.providers)
        # the cache's provider key: every provider the session holds, since together they decide the rounding
        self.provider_key = ",".join(self.providers)
        spec_keys = {_SPEC_TO_MTEB_PROMPT_KEY.get(key, key): key for key in embedder.spec.prompts}
        prompts, _ = self.validate_task_to_prompt_name(
            {mteb_key: embedder.spec.prompts[key] for mteb_key, key in spec_keys.items()},
            raise_for_invalid_keys=False,
        )
        self.model_prompts = prompts
        self._spec_prompt_keys = {mteb_key: spec_keys[mteb_key] for mteb_key in prompts or {}}

    def encode(
        self,
        inputs: DataLoader,
        *,
        task_metadata: TaskMetadata,
        hf_split: str,
        hf_subset: str,
        prompt_type: PromptType | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        texts = [text for batch in inputs for text in batch["text"]]
        mteb_key = get_prompt_name(self.model_prompts, task_metadata, prompt_type)
        prompt_name = self._spec_prompt_keys[mteb_key] if mteb_key else None
        return self.embed(texts, prompt_name=prompt_name, batch_size=kwargs.get("batch_size", 32))

    def embed(self, texts: list[str], *, prompt_name: str | None = None, batch_size: int = 32) -> np.ndarray:
        """Embeddings of `texts`, each distinct text embedded at most once per variant and provider."""
        prompt = self.model.spec.prompts[prompt_name] if prompt_name else None
        keys = [text_key(prompt, text) for text in texts]
        variant_sha256 = self.model.variant.sha256
        distinct_keys = list(dict.fromkeys(keys))
        known = {} if self.cache is None else self.cache.lookup(variant_sha256, self.provider_key, distinct_keys)
        missing: dict[str, str] = {}  # key -> text, each distinct text once, in first-seen order
        for key, text in zip(keys, texts, strict=True):
            if key not in known:
                missing.setdefault(key, text)
        if missing:
            started = time.perf_counter()
            vectors = self.model.embed(list(missing.values()), batch_size=batch_size, prompt_name=prompt_name)
            self.stats.encode_seconds += time.perf_counter() - started
            fresh = dict(zip(missing, np.asarray(vectors, dtype=np.float32), strict=True))
            if self.cache is not None:
                self.cache.store(variant_sha256, self.provider_key, fresh)
            known.update(fresh)
        self.stats.texts_requested += len(texts)
        self.stats.texts_encoded += len(missing)
        if not texts:
            return np.zeros((0, self.model.dim), dtype=np.float32)
        return np.stack([known[key] for key in keys]).astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------
# Tasks: mteb's own, with data from the local mirror when there is one
# ---------------------------------------------------------------------------------------------


def get_task(name: str) -> AbsTask:
    """mteb's task `name`; with EMBEDKIT_DATA set, its data comes from the local mirror.

    Only `load_data` is replaced, so mteb's metadata, splits, evaluator and main score stay.
    Without EMBEDKIT_DATA the task loads from the Hugging Face hub as usual.
    """
    task = mteb.get_task(name)
    root = data_dir()
    if root is None:
        return task
    if name not in data.LOCAL_TASKS:
        raise data.LocalDataError(
            f"{name} is not in the local data mirror ({root}), which holds {list(data.LOCAL_TASKS)};"
            " unset EMBEDKIT_DATA to load it from the hub"
        )
    _hub_offline()
    task.load_data = partial(_load_local_data, task, root)  # type: ignore[method-assign]
    return task


def _hub_offline() -> None:
    """Forbid hub access for the rest of the process: the data must come from the mirror.

    huggingface_hub and datasets read these switches once, at import (mteb has imported them by
    now), so their module-level settings are updated along with the environment.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    datasets.config.HF_HUB_OFFLINE = True
    datasets.config.HF_DATASETS_OFFLINE = True


def _load_local_data(task: AbsTask, root: Path, num_proc: int | None = None, **_: Any) -> None:
    """Stand-in for `task.load_data`: the mirror's files in the layout mteb's loader produces."""
    if task.data_loaded:
        return
    name = task.metadata.name
    if name in data.STS_TASKS:
        task.dataset = _sts_dataset(data.read_sts(name, root))
    elif name == "SciFact":
        task.dataset = _retrieval_dataset(data.read_scifact(root))
    else:
        task.dataset = _classification_dataset(data.read_banking77(root))
    task.dataset_transform(num_proc=num_proc)  # as mteb's load_data does; a no-op for these tasks
    task.data_loaded = True


def _local_data_root(task: AbsTask) -> Path | None:
    """The mirror `get_task` pointed this task at, or None for a task that loads from the hub."""
    loader = task.__dict__.get("load_data")
    return loader.args[1] if isinstance(loader, partial) and loader.func is _load_local_data else None


def _sts_dataset(pairs: list[data.STSPair]) -> DatasetDict:
    return DatasetDict(
        {
            EVAL_SPLIT: Dataset.from_dict(
                {
                    "sentence1": [pair.sentence1 for pair in pairs],
                    "sentence2": [pair.sentence2 for pair in pairs],
                    "score": [pair.score for pair in pairs],
                }
            )
        }
    )


def _retrieval_dataset(retrieval: data.RetrievalData) -> dict[str, dict[str, dict[str, Any]]]:
    corpus = Dataset.from_dict(
        {
            "id": [doc.id for doc in retrieval.corpus],
            "title": [doc.title for doc in retrieval.corpus],
            "text": [doc.text for doc in retrieval.corpus],
        }
    )
    queries = Dataset.from_dict(
        {"id": [query.id for query in retrieval.queries], "text": [query.text for query in retrieval.queries]}
    )
    split = {
        "corpus": corpus,
        "queries": queries,
        "relevant_docs": retrieval.relevant_docs,
        "top_ranked": None,  # plain retrieval: no first-stage ranking to rerank
    }
    return {"default": {EVAL_SPLIT: split}}


def _classification_dataset(classification: data.ClassificationData) -> DatasetDict:
    return DatasetDict(
        {
            split: Dataset.from_dict(
                {"text": [row.text for row in rows], "label": [row.label for row in rows]}
            )
            for split, rows in (("train", classification.train), ("test", classification.test))
        }
    )


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


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
    mteb_scores: dict[str, list[dict[str, Any]]]  # every metric mteb computed: split -> per-subset scores
    provenance: dict[str, Any]


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
    batch_size: int = 32,
    use_cache: bool = True,
) -> ScoreResult:
    """Score `embedder` on mteb tasks (names, or mteb task objects) through `mteb.evaluate`.

    mteb writes one TaskResult JSON per task under `output_dir` (default results/quality) at
    results/<model name>/<revision>/<task>.json; for local data a `<task>.data.sha256` file
    (sha256sum format) beside it names the mirror files, since the JSON carries the hub revision.
    A variant whose parity gate failed is refused unless `force`. `use_cache=False` re-encodes
    everything, e.g. to time pure encoding or to re-verify a record. Variants whose embeddings depend
    on their batch (dynamic int8) are never cached: their scores depend on which texts share a batch,
    so they are reproducible only when every run batches the same texts the same way.
    """
    parity = dict(embedder.variant.parity) if embedder.variant.parity is not None else None
    parity_failed = parity is not None and parity.get("passed") is not True
    if parity_failed and not force:
        raise ParityError(
            f"variant {embedder.variant.name} of {embedder.spec.name} failed its parity gate ({parity});"
            " pass force=True to score it anyway"
        )
    cache = EmbeddingCache.default() if use_cache and embeds_independently_of_batch(embedder.variant) else None
    encoder = EmbedkitEncoder(embedder, cache=cache)
    result_cache = mteb.ResultCache(output_dir or results_dir() / "quality")
    try:
        scores = {
            task.metadata.name: _score_task(encoder, task, result_cache, batch_size) for task in _resolve_tasks(tasks)
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
        mteb_model_name=meta.name,
        mteb_revision=meta.revision,
        parity=parity,
        forced=parity_failed,
        batch_size=batch_size,
        embedding_cache=cache is not None,
        tasks=scores,
    )


def _resolve_tasks(tasks: Iterable[str | AbsTask]) -> list[AbsTask]:
    return [get_task(task) if isinstance(task, str) else task for task in tasks]


def _score_task(
    encoder: EmbedkitEncoder, task: AbsTask, result_cache: mteb.ResultCache, batch_size: int
) -> TaskScore:
    name = task.metadata.name
    before = EncodeStats(**asdict(encoder.stats))
    started = time.perf_counter()
    model_result = mteb.evaluate(
        encoder,
        task,
        cache=result_cache,
        overwrite_strategy="always",  # every call re-scores; the embedding cache makes that cheap
        encode_kwargs={"batch_size": batch_size, "show_progress_bar": False},
        show_progress_bar=False,
        co2_tracker=False,
    )
    wall_seconds = time.perf_counter() - started
    spent = encoder.stats.since(before)
    (task_result,) = model_result.task_results
    result_path = result_cache.get_task_result_path(task_name=name, model_name=encoder.mteb_model_meta)
    provenance = _provenance(encoder, task)
    local_files = provenance["dataset"].get("sha256")
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
        provenance=provenance,
    )


def _provenance(encoder: EmbedkitEncoder, task: AbsTask) -> dict[str, Any]:
    name = task.metadata.name
    root = _local_data_root(task)
    dataset: dict[str, Any] = (
        {"source": "local", "data_dir": str(root), "sha256": data.data_sha256(name, root)}
        if root is not None
        else {"source": "hub", "path": task.metadata.dataset["path"], "revision": task.metadata.revision}
    )
    embedder = encoder.model
    return {
        "mteb_version": mteb.__version__,
        "task": name,
        "eval_splits": list(task.eval_splits),
        "dataset": dataset,
        "model": embedder.spec.name,
        "variant": {"name": embedder.variant.name, "sha256": embedder.variant.sha256},
        "providers": encoder.providers,
        "mteb_model": {"name": encoder.mteb_model_meta.name, "revision": encoder.mteb_model_meta.revision},
        "prompts": dict(encoder.model_prompts or {}),
    }


# ---------------------------------------------------------------------------------------------
# Score records, their verification, and tables of them
# ---------------------------------------------------------------------------------------------

VERIFY_TOLERANCE = 1e-6  # issue 4: a re-run on the same machine and provider reproduces every main score
REFERENCE_VARIANT = "fp32"  # what the other variants of a model are compared with


def score_record(result: ScoreResult, embedder: Embedder) -> dict[str, Any]:
    """A validated `score` record of `result`, scored by `embedder` in this process."""
    variant = embedder.variant
    if (embedder.spec.name, variant.name, variant.sha256) != (result.model, result.variant, result.variant_sha256):
        raise ValueError(
            f"result is for {result.model}:{result.variant} ({result.variant_sha256[:12]}) but the embedder is "
            f"{embedder.spec.name}:{variant.name} ({variant.sha256[:12]})"
        )
    session = embedder.session
    body: dict[str, Any] = {
        "model": {
            "spec": asdict(embedder.spec),
            "variant": {"name": variant.name, "sha256": variant.sha256, "manifest": variant.manifest,
                        "parity": result.parity},
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
    return records.new_record("score", body)


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
    return records.write_record(score_record(result, embedder), out_dir)


@dataclass(frozen=True)
class Verification:
    """A score record's main scores next to a fresh, uncached re-run of the same scoring."""

    record_path: str
    record_id: str
    recorded: dict[str, float]
    rescored: dict[str, float]
    tolerance: float = VERIFY_TOLERANCE

    @property
    def abs_deltas(self) -> dict[str, float]:
        return {task: abs(self.rescored[task] - value) for task, value in self.recorded.items()}

    @property
    def passed(self) -> bool:
        return all(delta <= self.tolerance for delta in self.abs_deltas.values())

    def to_dict(self) -> dict[str, Any]:
        deltas = self.abs_deltas
        return {
            "record": self.record_path,
            "record_id": self.record_id,
            "tasks": {
                task: {"recorded": value, "rescored": self.rescored[task], "abs_delta": deltas[task]}
                for task, value in self.recorded.items()
            },
            "max_abs_delta": max(deltas.values()),
            "tolerance": self.tolerance,
            "passed": self.passed,
        }


def verify_record(path: Path | str, *, tolerance: float = VERIFY_TOLERANCE) -> Verification:
    """Re-run a score record (same model, variant file, provider, options, batch size and tasks) without
    the embedding cache, and compare each main score with the recorded one.

    Refuses (RecordMismatchError) when the variant file on disk, the model spec or the data is not
    what the record scored: the comparison would then measure the change, not reproducibility.
    The re-run's mteb result files go to a scratch directory, leaving the record's own untouched.
    """
    record = records.read_record(path)
    if record["kind"] != "score":
        raise ValueError(f"{path} is a {record['kind']} record; verify takes score records")
    tasks = list(record["scores"])
    _require_same_data(record, tasks)
    embedder = embedder_for_record(record)
    with tempfile.TemporaryDirectory(prefix="embedkit-verify-") as scratch:
        rescored = score(
            embedder,
            tasks,
            force=record["forced"],
            output_dir=Path(scratch),
            batch_size=record.get("scoring", {}).get("batch_size", 32),
            use_cache=False,
        )
    return Verification(str(path), record["record_id"], dict(record["scores"]), rescored.scores, tolerance)


def embedder_for_record(record: Mapping[str, Any]) -> Embedder:
    """An embedder on the recorded model spec, variant file, provider and provider options.

    The variant is resolved as `embedkit.load` would resolve it here, and its ONNX file is hashed:
    a file that differs from the recorded sha256 is refused.
    """
    recorded_spec, recorded_variant = record["model"]["spec"], record["model"]["variant"]
    spec = get_spec(_spec_location(recorded_spec))
    current_spec = json.loads(json.dumps(asdict(spec), default=str))
    if current_spec != recorded_spec:
        changed = sorted(key for key in {*current_spec, *recorded_spec} if current_spec.get(key) != recorded_spec.get(key))
        raise RecordMismatchError(f"the model spec of {spec.name} changed since record {record['record_id']}: {changed}")
    variant = get_variant(spec, recorded_variant["name"])
    on_disk = file_sha256(variant.path)
    if on_disk != recorded_variant["sha256"]:
        raise RecordMismatchError(
            f"variant {spec.name}:{variant.name} on disk ({variant.path}) has sha256 {on_disk}, but record "
            f"{record['record_id']} scored {recorded_variant['sha256']}: the variant changed, so re-score it"
        )
    scoring = record.get("scoring", {})
    config = SessionConfig(record["provider"], scoring.get("provider_options", {}),
                           intra_op_threads=scoring.get("intra_op_threads"))
    return embedder_for(spec, variant, OrtSession(variant.path, config))


def _spec_location(recorded_spec: Mapping[str, Any]) -> str:
    """What `get_spec` finds the recorded spec by: its name when known, else its local path or hub id."""
    source = recorded_spec.get("source", {})
    if recorded_spec["name"] in KNOWN_SPECS:
        return recorded_spec["name"]
    return str(source.get("path") or source.get("repo_id") or recorded_spec["name"])


def _require_same_data(record: Mapping[str, Any], tasks: Sequence[str]) -> None:
    """The data the record was scored on must be the data a re-run would read now."""
    hub = record.get("data_revision", {})
    if hub and data_dir() is not None:
        raise RecordMismatchError(
            f"record {record['record_id']} scored {sorted(hub)} from the hub, but EMBEDKIT_DATA names a local mirror"
            " that would replace that data: unset it"
        )
    for name, dataset in hub.items():
        current = mteb.get_task(name).metadata.dataset
        if (current["path"], current["revision"]) != (dataset["path"], dataset["revision"]):
            raise RecordMismatchError(
                f"{name} was scored on {dataset['path']}@{dataset['revision']}; this mteb pins "
                f"{current['path']}@{current['revision']}"
            )
    local_tasks = [name for name in tasks if name not in hub]
    if not local_tasks:
        return
    if data_dir() is None:
        raise RecordMismatchError(
            f"record {record['record_id']} scored {local_tasks} from a local data mirror: set EMBEDKIT_DATA to it"
        )
    current = {relative: digest for name in local_tasks for relative, digest in data.data_sha256(name).items()}
    if current != record["data_sha256"]:
        changed = sorted(key for key in {*current, *record["data_sha256"]}
                         if current.get(key) != record["data_sha256"].get(key))
        raise RecordMismatchError(f"data files differ from those record {record['record_id']} scored: {changed}")


def score_record_paths(*sources: Path | str) -> list[Path]:
    """The score records among `sources` (files, or directories searched recursively)."""
    prefix = "score-"  # records.make_record_id starts every record's file name with its kind
    return [path for path in records.record_paths(*sources) if path.name.startswith(prefix)]


_TASK_FRAME_IDENTITY = ["record_id", "machine_id", "created_at", "model", "variant", "provider", "forced", "path"]


def task_scores(frame: pd.DataFrame, reference_variant: str = REFERENCE_VARIANT) -> pd.DataFrame:
    """One row per (score record, task) of a records frame (`records.load_frame`), with the score's
    delta to the reference variant of the same model and provider (its latest record, when there is one).

    Columns: the record's identity, task, score, reference_score, delta (NaN without a reference),
    reference_record_id.
    """
    import pandas as pd

    columns = [*_TASK_FRAME_IDENTITY, "task", "score", "reference_score", "delta", "reference_record_id"]
    scored = frame[frame["kind"] == "score"] if "kind" in frame else frame.iloc[0:0]
    task_columns = [column for column in scored.columns if column.startswith("scores.")]
    if scored.empty or not task_columns:
        return pd.DataFrame(columns=columns)
    long = scored.melt(id_vars=_TASK_FRAME_IDENTITY, value_vars=task_columns, var_name="task", value_name="score")
    long = long.dropna(subset=["score"])
    long["task"] = long["task"].str.removeprefix("scores.")
    key = ["model", "provider", "task"]
    reference = (
        long[long["variant"] == reference_variant]
        .sort_values("created_at")
        .drop_duplicates(subset=key, keep="last")[[*key, "score", "record_id"]]
        .rename(columns={"score": "reference_score", "record_id": "reference_record_id"})
    )
    table = long.merge(reference, on=key, how="left")
    table["delta"] = table["score"] - table["reference_score"]
    return table[columns].sort_values(["model", "provider", "variant", "task", "created_at"], ignore_index=True)


def scores_frame(*sources: Path | str, reference_variant: str = REFERENCE_VARIANT) -> pd.DataFrame:
    """`task_scores` of every score record under `sources` (other kinds are not read).

    A source that does not exist (e.g. a results tree nothing has written to yet) holds no records.
    """
    paths = score_record_paths(*(source for source in sources if Path(source).exists()))
    return task_scores(records.load_frame(*paths) if paths else records.records_frame([]), reference_variant)


# ---------------------------------------------------------------------------------------------
# The seed plan's quick probe
# ---------------------------------------------------------------------------------------------

SEED_SIMILAR_PAIR = ("machine learning algorithms", "artificial intelligence methods")
SEED_DIFFERENT_PAIR = ("machine learning algorithms", "cooking italian pasta")


@dataclass(frozen=True)
class ProbeTier:
    name: str
    similar_above: float
    different_below: float
    separation_above: float
    norm_tolerance: float  # |L2 norm - 1| allowed


# The seed plan's "Quality Metrics", best first.
PROBE_TIERS = (
    ProbeTier("excellent", similar_above=0.75, different_below=0.2, separation_above=0.55, norm_tolerance=1e-3),
    ProbeTier("good", similar_above=0.7, different_below=0.3, separation_above=0.4, norm_tolerance=1e-3),
    ProbeTier("minimum", similar_above=0.6, different_below=0.4, separation_above=0.2, norm_tolerance=1e-2),
)


def quick_probe(
    embedder: EmbedderLike,
    similar: tuple[str, str] = SEED_SIMILAR_PAIR,
    different: tuple[str, str] = SEED_DIFFERENT_PAIR,
    prompt_name: str | None = None,
) -> dict[str, Any]:
    """Fast smoke score: cosine of a similar and a different pair, their separation, L2 norms.

    Returns the metrics and the best tier of the seed plan's thresholds they all meet
    ("excellent", "good", "minimum", or "below minimum").
    """
    vectors = np.asarray(embedder.embed([*similar, *different], prompt_name=prompt_name), dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors / norms[:, None]
    similar_cosine = float(unit[0] @ unit[1])
    different_cosine = float(unit[2] @ unit[3])
    separation = similar_cosine - different_cosine
    norm_error = float(np.max(np.abs(norms - 1.0)))
    tier = next(
        (
            t.name
            for t in PROBE_TIERS
            if similar_cosine > t.similar_above
            and different_cosine < t.different_below
            and separation > t.separation_above
            and norm_error <= t.norm_tolerance
        ),
        "below minimum",
    )
    return {
        "similar": similar_cosine,
        "different": different_cosine,
        "separation": separation,
        "norm_min": float(norms.min()),
        "norm_max": float(norms.max()),
        "tier": tier,
        "pairs": {"similar": list(similar), "different": list(different)},
    }
