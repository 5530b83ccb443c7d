"""The embedding cache: an SQLite store of embeddings, and an encoder that wraps an `EmbedkitEncoder`
and asks it only for the texts the store lacks (as mteb's `CachedEmbeddingWrapper` wraps an encoder).

Re-scoring a variant then re-runs only mteb's metrics. Variants whose embeddings depend on their
batch are never cached (`embeds_independently_of_batch`)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embedkit import defaults
from embedkit.paths import models_dir
from embedkit.quality.encoder import EmbedkitEncoder, EncodeStats, TextEncoder, VariantLike, rows_for

if TYPE_CHECKING:
    from mteb.abstasks.task_metadata import TaskMetadata
    from mteb.models import ModelMeta
    from mteb.types import Array, PromptType


@dataclass(frozen=True)
class CacheKey:
    """What, besides the text, decides an embedding: the variant's file, the providers that round its
    arithmetic, and the token length texts are truncated at (`tune` scores capped lengths)."""

    variant_sha256: str
    provider: str
    max_seq_length: int


class EmbeddingCache:
    """Embeddings keyed by (variant sha256, provider, max_seq_length, sha256 of prompt + text), in one
    SQLite file.

    A variant's sha256 changes whenever its weights or graph change, so a changed variant simply
    misses; the provider is part of the key because execution providers round differently, the
    truncation length because a long text's embedding changes with it. The key assumes a text's
    embedding does not depend on the other texts in its batch: `score` does not cache variants for
    which that is false (see `embeds_independently_of_batch`).
    """

    _LOOKUP_CHUNK = 500  # stays under SQLite's bound-parameter limit
    _COLUMNS = ("variant_sha256", "provider", "max_seq_length", "text_sha256", "vector")

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # timeout: sweep workers may score variants into the same cache at once.
        self._db = sqlite3.connect(path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._db:
            columns = tuple(row[1] for row in self._db.execute("PRAGMA table_info(embeddings)"))
            if columns and columns != self._COLUMNS:
                # Written by an embedkit whose key lacked a field: its rows cannot be told apart.
                self._db.execute("DROP TABLE embeddings")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS embeddings ("
                " variant_sha256 TEXT NOT NULL, provider TEXT NOT NULL, max_seq_length INTEGER NOT NULL,"
                " text_sha256 TEXT NOT NULL, vector BLOB NOT NULL,"
                " PRIMARY KEY (variant_sha256, provider, max_seq_length, text_sha256)"
                ") WITHOUT ROWID"
            )

    @classmethod
    def default(cls) -> EmbeddingCache:
        return cls(models_dir() / "embedding-cache" / "embeddings.sqlite")

    def lookup(self, key: CacheKey, text_keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(text_keys), self._LOOKUP_CHUNK):
            chunk = list(text_keys[start : start + self._LOOKUP_CHUNK])
            placeholders = ",".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT text_sha256, vector FROM embeddings"
                " WHERE variant_sha256 = ? AND provider = ? AND max_seq_length = ?"
                f" AND text_sha256 IN ({placeholders})",
                [key.variant_sha256, key.provider, key.max_seq_length, *chunk],
            )
            found.update((text, np.frombuffer(blob, dtype="<f4")) for text, blob in rows)
        return found

    def store(self, key: CacheKey, vectors: Mapping[str, np.ndarray]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        key.variant_sha256,
                        key.provider,
                        key.max_seq_length,
                        text,
                        np.ascontiguousarray(vector, dtype="<f4").tobytes(),
                    )
                    for text, vector in vectors.items()
                ],
            )

    def close(self) -> None:
        self._db.close()


def text_key(prompt: str | None, text: str) -> str:
    """sha256 of what the model reads: the prompt and the text, unambiguously delimited."""
    return hashlib.sha256(json.dumps([prompt or "", text], ensure_ascii=False).encode("utf-8")).hexdigest()


# ONNX ops that quantize activations with one scale over the whole input tensor, i.e. over every text
# in the batch and its padding (ORT's dynamic int8 quantization): a text's embedding then changes with
# its batch mates.
BATCH_DEPENDENT_OPS = frozenset({"DynamicQuantizeLinear", "DynamicQuantizeMatMul"})


def embeds_independently_of_batch(variant: VariantLike) -> bool:
    """True when each text's embedding is a function of the text alone, so that it may be cached."""
    return not BATCH_DEPENDENT_OPS & set(variant.manifest["graph"]["op_histogram"])


class CachedEncoder(TextEncoder):
    """An mteb encoder that serves texts from `cache` and asks `encoder` only for the distinct texts
    the cache lacks, then stores them.

    The cache's provider key is every provider the session holds, since together they decide the
    rounding. `stats` counts the texts asked of this wrapper; texts encoded and encode seconds are the
    wrapped encoder's, which is used through this wrapper only.
    """

    def __init__(self, encoder: EmbedkitEncoder, cache: EmbeddingCache) -> None:
        self.encoder = encoder
        self.cache = cache
        model = encoder.model
        self.key = CacheKey(model.variant.sha256, ",".join(encoder.providers), model.tokenizer.max_seq_length)
        self._texts_requested = 0

    @property
    def mteb_model_meta(self) -> ModelMeta:
        return self.encoder.mteb_model_meta

    @property
    def stats(self) -> EncodeStats:
        return replace(self.encoder.stats, texts_requested=self._texts_requested)

    def prompt_name_for(self, task_metadata: TaskMetadata, prompt_type: PromptType | None) -> str | None:
        return self.encoder.prompt_name_for(task_metadata, prompt_type)

    def embed(
        self, texts: list[str], *, prompt_name: str | None = None, batch_size: int = defaults.BATCH_SIZE
    ) -> np.ndarray:
        """Embeddings of `texts`, each distinct text embedded at most once per cache key."""
        prompt = self.encoder.prompt(prompt_name)
        keys = {text: text_key(prompt, text) for text in dict.fromkeys(texts)}
        found = self.cache.lookup(self.key, list(keys.values()))
        vectors = {text: found[key] for text, key in keys.items() if key in found}
        missing = [text for text in keys if text not in vectors]  # distinct, in first-seen order
        if missing:
            embedded = self.encoder.embed(missing, prompt_name=prompt_name, batch_size=batch_size)
            fresh = dict(zip(missing, embedded, strict=True))
            self.cache.store(self.key, {keys[text]: vector for text, vector in fresh.items()})
            vectors.update(fresh)
        self._texts_requested += len(texts)
        return rows_for(texts, vectors, self.encoder.model.dim)

    def similarity(self, embeddings1: Array, embeddings2: Array) -> Array:
        return self.encoder.similarity(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1: Array, embeddings2: Array) -> Array:
        return self.encoder.similarity_pairwise(embeddings1, embeddings2)
