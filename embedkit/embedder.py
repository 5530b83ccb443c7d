"""The embedder: tokenize -> session.run -> pool, over length-sorted batches.

Timing wraps the stages without changing them: with no timer the stages are called directly.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .export import Variant
from .pooling import pool
from .session import OrtSession
from .specs import ModelSpec
from .tokenizer import TokenizedBatch, Tokenizer

STAGES = ("tokenize", "feeds", "run", "pool")


@dataclass
class StageTimer:
    """Per-batch wall time of each stage, in seconds."""

    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def measure(self, stage: str, function: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        result = function(*args)
        self.samples[stage].append(time.perf_counter() - start)
        return result


def _call(stage: str, function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)


@dataclass(frozen=True)
class EmbedResult:
    embeddings: np.ndarray  # float32 (n, dim), in the caller's order
    n_truncated: int
    n_tokens: int


class Embedder:
    def __init__(
        self,
        tokenizer: Tokenizer,
        session: OrtSession,
        pooling: str,
        normalize: bool,
        spec: ModelSpec,
        variant: Variant,
    ):
        self.tokenizer = tokenizer
        self.session = session
        self.pooling = pooling
        self.normalize = normalize
        self.spec = spec
        self.variant = variant

    @property
    def dim(self) -> int:
        return self.session.dim

    @property
    def providers(self) -> list[str]:
        """The execution providers the session actually runs on."""
        return self.session.active_providers

    def feeds(self, batch: TokenizedBatch) -> dict[str, np.ndarray]:
        feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if batch.token_type_ids is not None:
            feeds["token_type_ids"] = batch.token_type_ids
        return {name: feeds[name] for name in self.session.input_names}

    def pool(self, token_embeddings: np.ndarray, batch: TokenizedBatch) -> np.ndarray:
        return pool(token_embeddings, batch.attention_mask, self.pooling, self.normalize)

    def embed_batch(self, texts: Sequence[str], timer: StageTimer | None = None) -> tuple[np.ndarray, TokenizedBatch]:
        """One batch through the three stages, in the given order."""
        step = timer.measure if timer is not None else _call
        batch = step("tokenize", self.tokenizer.encode, texts)
        feeds = step("feeds", self.feeds, batch)
        token_embeddings = step("run", self.session.run, feeds)
        return step("pool", self.pool, token_embeddings, batch), batch

    def embed(
        self, texts: Sequence[str], batch_size: int = 32, prompt_name: str | None = None, timer: StageTimer | None = None
    ) -> np.ndarray:
        return self.embed_with_info(texts, batch_size, prompt_name, timer).embeddings

    def embed_with_info(
        self, texts: Sequence[str], batch_size: int = 32, prompt_name: str | None = None, timer: StageTimer | None = None
    ) -> EmbedResult:
        texts = self._prompted(_checked_texts(texts), prompt_name)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Longest first, as sentence-transformers does: similar lengths share a batch, so less padding.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        n_truncated = n_tokens = 0
        for start in range(0, len(texts), batch_size):
            indices = order[start : start + batch_size]
            vectors, batch = self.embed_batch([texts[i] for i in indices], timer)
            out[indices] = vectors
            n_truncated += batch.n_truncated
            n_tokens += batch.n_tokens
        return EmbedResult(out, n_truncated, n_tokens)

    def _prompted(self, texts: list[str], prompt_name: str | None) -> list[str]:
        if prompt_name is None:
            return texts
        if prompt_name not in self.spec.prompts:
            raise KeyError(f"{self.spec.name} has no prompt {prompt_name!r}; it has {sorted(self.spec.prompts)}")
        prefix = self.spec.prompts[prompt_name]
        return [prefix + text for text in texts]

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.spec.name,
            "variant": self.variant.name,
            "variant_sha256": self.variant.sha256,
            "dim": self.dim,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "max_seq_length": self.tokenizer.max_seq_length,
            "requested_providers": self.session.requested_providers,
            "active_providers": self.providers,
            "fallback": self.session.fallback_note,
        }


def _checked_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("embed takes a sequence of texts, not a single str: wrap it in a list")
    checked = list(texts)
    for index, text in enumerate(checked):
        if not isinstance(text, str):
            raise TypeError(f"text at index {index} is {type(text).__name__}, not str")
    return checked
