"""Scoring through mteb: the encoder, its embedding cache, local tasks, the parity gate, the probe,
and the reference check against mteb's own sentence-transformers path."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from types import SimpleNamespace

import datasets.config
import mteb
import numpy as np
import pytest
from mteb.types import PromptType

from embedkit.errors import LocalDataError, ParityError, UsageError
from embedkit.quality import mirror as data
from embedkit.quality.cache import CachedEncoder, CacheKey, EmbeddingCache
from embedkit.quality.encoder import EmbedkitEncoder, model_meta_for
from embedkit.quality.probe import quick_probe
from embedkit.quality.scoring import score
from embedkit.quality.tasks import get_task

REFERENCE_TOLERANCE = 1e-4  # embedkit's path equals mteb's sentence-transformers path


@pytest.fixture(autouse=True)
def scratch_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the embedding cache and mteb result files of every test out of the repository."""
    monkeypatch.setenv("EMBEDKIT_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("EMBEDKIT_RESULTS", str(tmp_path / "results"))


@pytest.fixture
def mirror(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The local data mirror (conftest's `data_root`, which skips without one), as EMBEDKIT_DATA."""
    monkeypatch.setenv("EMBEDKIT_DATA", str(data_root))
    return data_root


class HashingEmbedder:
    """A fast, deterministic bag-of-words embedder that records every call it gets."""

    def __init__(
        self,
        sha256: str = "a" * 64,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
        prompts: dict[str, str] | None = None,
        parity: dict | None = None,
        name: str = "test-org/hashing-model",
        ops: dict[str, int] | None = None,
        max_seq_length: int = 256,
    ) -> None:
        self.spec = SimpleNamespace(name=name, prompts=prompts or {})
        self.tokenizer = SimpleNamespace(max_seq_length=max_seq_length)
        manifest = {"graph": {"op_histogram": ops or {"MatMul": 1}}}
        self.variant = SimpleNamespace(name="fp32", sha256=sha256, manifest=manifest, parity=parity)
        self.dim = 64
        self.providers = list(providers)
        self.calls: list[tuple[list[str], str | None]] = []

    def embed(self, texts: list[str], batch_size: int = 32, prompt_name: str | None = None) -> np.ndarray:
        self.calls.append((list(texts), prompt_name))
        vectors = np.full((len(texts), self.dim), 1e-3, dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                vectors[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    @property
    def texts_embedded(self) -> int:
        return sum(len(texts) for texts, _ in self.calls)


# --- embedding cache -------------------------------------------------------------------------


def test_cache_hit_miss_and_invalidation_when_the_variant_changes() -> None:
    texts = ["a cat sits", "a dog runs", "a cat sits"]
    first = HashingEmbedder(sha256="1" * 64)
    cache = EmbeddingCache.default()

    cold = CachedEncoder(EmbedkitEncoder(first), cache).embed(texts)
    assert first.calls == [(["a cat sits", "a dog runs"], None)], "a repeated text is embedded once"

    warm_encoder = CachedEncoder(EmbedkitEncoder(first), cache)
    warm = warm_encoder.embed(texts)
    assert first.texts_embedded == 2, "second run is served from the cache"
    assert (warm_encoder.stats.texts_requested, warm_encoder.stats.texts_encoded) == (3, 0)
    np.testing.assert_array_equal(warm, cold)
    assert warm.dtype == np.float32 and warm.shape == (3, 64)

    changed = HashingEmbedder(sha256="2" * 64)
    CachedEncoder(EmbedkitEncoder(changed), cache).embed(texts)
    assert changed.texts_embedded == 2, "a different variant sha256 misses"

    other_provider = HashingEmbedder(sha256="1" * 64, providers=("CoreMLExecutionProvider",))
    CachedEncoder(EmbedkitEncoder(other_provider), cache).embed(texts)
    assert other_provider.texts_embedded == 2, "a different provider misses"

    prompted = HashingEmbedder(sha256="1" * 64, prompts={"query": "query: "})
    CachedEncoder(EmbedkitEncoder(prompted), cache).embed(texts, prompt_name="query")
    assert prompted.texts_embedded == 2, "the prompt is part of the text key"

    capped = HashingEmbedder(sha256="1" * 64, max_seq_length=64)
    CachedEncoder(EmbedkitEncoder(capped), cache).embed(texts)
    assert capped.texts_embedded == 2, "a different truncation length misses"
    cache.close()


def test_the_encoder_alone_embeds_each_distinct_text_once_per_call_and_keeps_nothing() -> None:
    texts = ["a cat sits", "a dog runs", "a cat sits"]
    embedder = HashingEmbedder()
    encoder = EmbedkitEncoder(embedder)
    first, again = encoder.embed(texts), encoder.embed(texts)
    assert embedder.calls == [(["a cat sits", "a dog runs"], None)] * 2, "no cache: the second call embeds again"
    assert (encoder.stats.texts_requested, encoder.stats.texts_encoded) == (6, 4)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first[0], first[2])


def test_cache_persists_exact_float32_vectors(tmp_path: Path) -> None:
    vector = np.array([0.1, -2.5, 3e-8], dtype=np.float32)
    key = CacheKey("v", "CPU", 256)
    EmbeddingCache(tmp_path / "c.sqlite").store(key, {"k": vector})
    reopened = EmbeddingCache(tmp_path / "c.sqlite")
    found = reopened.lookup(key, ["k", "absent"])
    assert list(found) == ["k"]
    np.testing.assert_array_equal(found["k"], vector)


def test_a_cache_written_without_the_length_in_its_key_is_dropped(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "c.sqlite"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE embeddings (variant_sha256 TEXT NOT NULL, provider TEXT NOT NULL,"
            " text_sha256 TEXT NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (variant_sha256, provider, text_sha256))"
        )
        old.execute("INSERT INTO embeddings VALUES ('v', 'CPU', 'k', ?)", [np.ones(3, "<f4").tobytes()])
    old.close()
    cache = EmbeddingCache(path)
    assert cache.lookup(CacheKey("v", "CPU", 256), ["k"]) == {}, "its rows may come from any length"
    cache.store(CacheKey("v", "CPU", 256), {"k": np.zeros(3, np.float32)})
    assert list(cache.lookup(CacheKey("v", "CPU", 256), ["k"])) == ["k"]
    cache.close()


# --- the encoder's identity and prompts --------------------------------------------------------


def test_model_meta_name_and_revision_encode_model_variant_and_provider() -> None:
    meta = model_meta_for(HashingEmbedder(sha256="0123456789abcdef" * 4))
    assert meta.name == "embedkit/hashing-model"
    assert meta.revision == "fp32-CPU-0123456789ab"
    assert meta.embed_dim == 64 and meta.framework == ["ONNX"]
    other = model_meta_for(HashingEmbedder(sha256="f" * 64, providers=("CUDAExecutionProvider",)))
    assert other.revision != meta.revision, "result files of distinct runs never collide"


def test_model_meta_inherits_mtebs_registry_entry() -> None:
    meta = model_meta_for(HashingEmbedder(name="all-MiniLM-L6-v2"))
    assert meta.name == "embedkit/all-MiniLM-L6-v2"
    assert meta.adapted_from == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta.n_parameters == mteb.get_model_meta("sentence-transformers/all-MiniLM-L6-v2").n_parameters


def test_spec_prompts_reach_the_embedder_as_mteb_selects_them() -> None:
    embedder = HashingEmbedder(prompts={"query": "query: ", "passage": "passage: "})
    encoder = EmbedkitEncoder(embedder)
    assert encoder.model_prompts == {"query": "query: ", "document": "passage: "}
    retrieval = mteb.get_task("SciFact").metadata
    sts = mteb.get_task("BIOSSES").metadata
    batches = [{"text": ["some text"]}]
    common = {"hf_split": "test", "hf_subset": "default", "batch_size": 8}
    encoder.encode(batches, task_metadata=retrieval, prompt_type=PromptType.query, **common)
    encoder.encode(batches, task_metadata=retrieval, prompt_type=PromptType.document, **common)
    encoder.encode(batches, task_metadata=sts, prompt_type=None, **common)
    assert [prompt for _, prompt in embedder.calls] == ["query", "passage", None]


# --- local tasks -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["BIOSSES", "SICK-R", "Banking77Classification"])
def test_local_task_is_mtebs_own_task_with_local_data(mirror: Path, name: str) -> None:
    task = get_task(name)
    hub_task = mteb.get_task(name)
    assert type(task) is type(hub_task)
    assert task.metadata == hub_task.metadata and task.eval_splits == ["test"]
    task.load_data()
    assert os.environ["HF_HUB_OFFLINE"] == os.environ["HF_DATASETS_OFFLINE"] == "1"
    assert datasets.config.HF_DATASETS_OFFLINE, "datasets read its switch at import: it is updated too"
    if name == "Banking77Classification":
        assert {split: len(task.dataset[split]) for split in task.dataset} == {"train": 10003, "test": 3080}
        assert task.dataset["train"].column_names == ["text", "label"]
    else:
        assert len(task.dataset["test"]) == len(data.read_sts(name))
        assert task.dataset["test"].column_names == ["sentence1", "sentence2", "score"]


def test_local_scifact_has_mtebs_retrieval_layout(mirror: Path) -> None:
    task = get_task("SciFact")
    task.load_data()
    split = task.dataset["default"]["test"]
    assert split["corpus"].column_names == ["id", "title", "text"] and len(split["corpus"]) == 5183
    assert split["queries"].column_names == ["id", "text"] and len(split["queries"]) == 300
    assert len(split["relevant_docs"]) == 300 and split["top_ranked"] is None


def test_task_outside_the_mirror_is_refused_while_offline(mirror: Path) -> None:
    with pytest.raises(LocalDataError, match="not in the local data mirror"):
        get_task("NFCorpus")


def test_a_task_mteb_does_not_know_is_a_usage_error_naming_it() -> None:
    with pytest.raises(UsageError, match="NoSuchTask"):
        get_task("NoSuchTask")


def test_without_a_mirror_tasks_load_from_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMBEDKIT_DATA", raising=False)
    task = get_task("NFCorpus")
    assert "load_data" not in vars(task), "mteb's own hub loader is left in place"


# --- scoring ---------------------------------------------------------------------------------


def test_score_writes_mteb_results_with_provenance(mirror: Path, tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    result = score(embedder, ["BIOSSES"])
    task = result.tasks["BIOSSES"]
    assert task.main_score_name == "cosine_spearman" and -1 <= task.main_score <= 1
    assert task.mteb_scores["test"][0]["cosine_spearman"] == task.main_score
    assert result.scores == {"BIOSSES": task.main_score}
    path = Path(task.result_path)
    revision_dir = tmp_path / "results/quality/results/embedkit__hashing-model/fp32-CPU-aaaaaaaaaaaa"
    assert path == revision_dir / "BIOSSES.json"
    on_disk = mteb.TaskResult.from_disk(path)
    assert on_disk.get_score() == pytest.approx(task.main_score, abs=1e-6)
    sidecar = path.with_name("BIOSSES.data.sha256").read_text(encoding="utf-8")
    assert sidecar == f"{data.data_sha256('BIOSSES')['biosses/biosses.tsv']}  biosses/biosses.tsv\n"
    assert task.provenance["dataset"]["source"] == "local"
    assert task.provenance["mteb_version"] == mteb.__version__
    assert task.provenance["variant"] == {"name": "fp32", "sha256": "a" * 64}
    assert (task.texts_requested, task.texts_encoded) == (200, embedder.texts_embedded)
    assert task.wall_seconds >= task.encode_seconds > 0
    as_dict = json.loads(json.dumps(result.to_dict()))  # plain JSON, for the records module to wrap
    assert as_dict["scores"] == result.scores and set(as_dict["tasks"]) == {"BIOSSES"}
    assert as_dict["data_sha256"] == data.data_sha256("BIOSSES")
    assert (as_dict["provider"], as_dict["providers"]) == ("CPUExecutionProvider", ["CPUExecutionProvider"])
    frame = result.to_frame()
    assert list(frame["task"]) == ["BIOSSES"] and frame["score"][0] == task.main_score

    rescored = score(embedder, ["BIOSSES"])
    assert rescored.tasks["BIOSSES"].texts_encoded == 0 and rescored.tasks["BIOSSES"].encode_seconds == 0
    assert rescored.scores == result.scores


def test_variants_whose_embeddings_depend_on_the_batch_are_not_cached(mirror: Path) -> None:
    dynamic_int8 = HashingEmbedder(ops={"DynamicQuantizeLinear": 12, "MatMulInteger": 36})
    first = score(dynamic_int8, ["BIOSSES"])
    again = score(dynamic_int8, ["BIOSSES"])
    assert first.embedding_cache is again.embedding_cache is False
    assert again.tasks["BIOSSES"].texts_encoded == first.tasks["BIOSSES"].texts_encoded > 0
    assert score(HashingEmbedder(), ["BIOSSES"]).embedding_cache is True


def test_a_task_held_for_this_exact_variant_is_reused_only_when_asked(mirror: Path, tmp_path: Path) -> None:
    dynamic_int8 = HashingEmbedder(ops={"DynamicQuantizeLinear": 12, "MatMulInteger": 36})  # never cached
    shared = tmp_path / "mteb"
    first = score(dynamic_int8, ["BIOSSES"], output_dir=shared, reuse_results=True)
    assert first.tasks["BIOSSES"].reused_result is False and first.tasks["BIOSSES"].texts_encoded > 0
    second = score(dynamic_int8, ["BIOSSES", "STSBenchmark"], output_dir=shared, reuse_results=True)
    biosses, sts = second.tasks["BIOSSES"], second.tasks["STSBenchmark"]
    # mteb's result files keep six decimals: the reused score is the stored one.
    assert biosses.reused_result and biosses.texts_requested == 0
    assert biosses.main_score == pytest.approx(first.scores["BIOSSES"], abs=1e-6)
    assert not sts.reused_result and sts.texts_encoded > 0
    rescored = score(dynamic_int8, ["BIOSSES"], output_dir=shared)  # the default re-scores
    assert rescored.tasks["BIOSSES"].reused_result is False and rescored.tasks["BIOSSES"].texts_encoded > 0
    other = HashingEmbedder(ops={"DynamicQuantizeLinear": 12, "MatMulInteger": 36}, sha256="f" * 64)
    assert score(other, ["BIOSSES"], output_dir=shared, reuse_results=True).tasks["BIOSSES"].reused_result is False


def test_failed_parity_is_refused_unless_forced(mirror: Path) -> None:
    failing = HashingEmbedder(parity={"passed": False, "max_abs_diff": 0.2})
    with pytest.raises(ParityError, match="parity"):
        score(failing, ["BIOSSES"])
    forced = score(failing, ["BIOSSES"], force=True)
    assert forced.forced is True and forced.parity == {"passed": False, "max_abs_diff": 0.2}
    assert forced.to_dict()["forced"] is True
    passing = score(HashingEmbedder(parity={"passed": True}), ["BIOSSES"], force=True)
    assert passing.forced is False


# --- quick probe -----------------------------------------------------------------------------


class FixedEmbedder(HashingEmbedder):
    """Returns preset vectors for the probe's four texts."""

    def __init__(self, vectors: list[list[float]]) -> None:
        super().__init__()
        self.vectors = np.array(vectors, dtype=np.float32)

    def embed(self, texts: list[str], batch_size: int = 32, prompt_name: str | None = None) -> np.ndarray:
        return self.vectors


def _probe_vectors(similar: float, different: float, norm: float = 1.0) -> list[list[float]]:
    """Unit vectors whose pairs have the given cosines, all scaled to `norm`."""

    def at(cosine: float) -> list[float]:
        return [norm * cosine, norm * float(np.sqrt(1 - cosine**2))]

    return [[norm, 0.0], at(similar), [norm, 0.0], at(different)]


@pytest.mark.parametrize(
    ("similar", "different", "norm", "tier"),
    [
        (0.8, 0.1, 1.0, "excellent"),
        (0.72, 0.25, 1.0, "good"),
        (0.8, 0.1, 1.005, "minimum"),  # norm off by more than the good tier's 0.001
        (0.65, 0.35, 1.0, "minimum"),
        (0.5, 0.1, 1.0, "below minimum"),
    ],
)
def test_quick_probe_reports_the_seed_plans_tier(similar: float, different: float, norm: float, tier: str) -> None:
    probe = quick_probe(FixedEmbedder(_probe_vectors(similar, different, norm)))
    assert probe["tier"] == tier
    assert probe["similar"] == pytest.approx(similar, abs=1e-6)
    assert probe["separation"] == pytest.approx(similar - different, abs=1e-6)
    assert probe["norm_max"] == pytest.approx(norm, abs=1e-6)


# --- reference check -------------------------------------------------------------------------

REFERENCE_TASKS = ("STSBenchmark", "BIOSSES")


@pytest.fixture(scope="module")
def mteb_reference_scores(data_root: Path) -> dict[str, float]:
    """all-MiniLM-L6-v2 in PyTorch through mteb's own sentence-transformers wrapper, on the mirror's data."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMBEDKIT_DATA", str(data_root))
        tasks = [get_task(name) for name in REFERENCE_TASKS]
    from embedkit.models.parity import reference_model
    from embedkit.models.specs import get_spec

    # The PyTorch model on the same checkpoint embedkit exports (fetched from its pip package).
    reference = mteb.evaluate(
        reference_model(get_spec("all-MiniLM-L6-v2")),
        tasks,
        cache=None,
        encode_kwargs={"batch_size": 32, "show_progress_bar": False},
        show_progress_bar=False,
        co2_tracker=False,
    )
    return {result.task_name: result.get_score() for result in reference.task_results}


def _assert_matches_reference(ours: dict[str, float], reference: dict[str, float]) -> None:
    assert set(ours) == set(reference) == set(REFERENCE_TASKS)
    for name in REFERENCE_TASKS:
        assert ours[name] == pytest.approx(reference[name], abs=REFERENCE_TOLERANCE), name


@pytest.mark.slow
def test_fp32_onnx_equals_mtebs_sentence_transformers_path(
    mirror: Path, minilm, mteb_reference_scores: dict[str, float]
) -> None:
    ours = score(minilm, REFERENCE_TASKS, use_cache=False)
    assert ours.mteb_revision.startswith("fp32-CPU-")
    _assert_matches_reference(ours.scores, mteb_reference_scores)
