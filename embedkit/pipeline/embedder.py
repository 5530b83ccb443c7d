"""The embedder: tokenize -> session.run -> pool, over length-sorted batches.

Timing wraps the stages without changing them: with no timer the stages are called directly.

Thread safety: one Embedder may serve many threads at once. `embed`, `embed_with_info` and
`embed_batch` keep their state on the caller's stack; the tokenizer is only read after construction
(see embedkit.pipeline.tokenizer) and ORT's `InferenceSession.run` is thread-safe. A call gives the same
vectors whichever threads run beside it, bit for bit on the CPU provider, as long as its own batches
are the same (padding to a batch's longest text changes the matmul shapes, and dynamic-int8 variants
quantise with ranges taken from the whole batch). A StageTimer may be shared: `measure` appends under
a lock, but with several callers the i-th samples of two stages need not come from the same batch,
and each sample includes the wait for cores the other threads hold, so give each caller its own
timer to pair stages or to time one caller. `close()` is the one call not to make while another
thread still embeds: calls in flight finish, later ones raise SessionClosedError.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from embedkit import defaults
from embedkit.errors import TextTypeError, UnknownNameError, UsageError
from embedkit.pipeline.pooling import pool
from embedkit.pipeline.session import OrtSession
from embedkit.pipeline.tokenizer import TokenizedBatch, Tokenizer, check_encodable

if TYPE_CHECKING:
    # The stages need none of the model's code; the embedder only carries its identity for describe().
    from embedkit.models.export import Variant
    from embedkit.models.specs import ModelSpec

STAGES = ("tokenize", "feeds", "run", "pool")


@dataclass
class StageTimer:
    """Per-batch wall time of each stage, in seconds."""

    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # Held only to record a sample, never while a stage runs: timers shared by threads lose nothing.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def measure(self, stage: str, function: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        result = function(*args)
        elapsed = time.perf_counter() - start
        with self._lock:
            self.samples[stage].append(elapsed)
        return result


def _call(stage: str, function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)


@dataclass(frozen=True)
class EmbedResult:
    embeddings: np.ndarray  # float32 (n, dim), in the caller's order
    n_truncated: int
    n_tokens: int


class Embedder:
    """tokenize -> session.run -> pool. A context manager: leaving the `with` block closes the session."""

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
        if "position_ids" in self.session.input_names:
            feeds["position_ids"] = position_ids(batch.attention_mask)
        return {name: feeds[name] for name in self.session.input_names}

    def pool(self, token_embeddings: np.ndarray, batch: TokenizedBatch) -> np.ndarray:
        return pool(token_embeddings, batch.attention_mask, self.pooling, self.normalize)

    def embed_batch(self, texts: Sequence[str], timer: StageTimer | None = None) -> tuple[np.ndarray, TokenizedBatch]:
        """One batch through the three stages, in the given order."""
        if not texts:
            # ORT's attention reshapes fail on zero rows: an empty batch never reaches the session.
            return np.empty((0, self.dim), dtype=np.float32), self.tokenizer.encode([])
        step = timer.measure if timer is not None else _call
        batch = step("tokenize", self.tokenizer.encode, texts)
        feeds = step("feeds", self.feeds, batch)
        token_embeddings = step("run", self.session.run, feeds)
        return step("pool", self.pool, token_embeddings, batch), batch

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int = defaults.BATCH_SIZE,
        prompt_name: str | None = None,
        timer: StageTimer | None = None,
    ) -> np.ndarray:
        return self.embed_with_info(texts, batch_size, prompt_name, timer).embeddings

    def embed_with_info(
        self,
        texts: Sequence[str],
        batch_size: int = defaults.BATCH_SIZE,
        prompt_name: str | None = None,
        timer: StageTimer | None = None,
    ) -> EmbedResult:
        texts = self._prompted(_checked_texts(texts), prompt_name)
        if batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, got {batch_size}")
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
            raise UnknownNameError(
                f"{self.spec.name} has no prompt {prompt_name!r}; it has {sorted(self.spec.prompts)}"
            )
        prefix = self.spec.prompts[prompt_name]
        return [prefix + text for text in texts]

    def close(self) -> None:
        """Release the ONNX Runtime session (shared with any other Embedder built on it)."""
        self.session.close()

    def __enter__(self) -> Embedder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

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


def position_ids(attention_mask: np.ndarray) -> np.ndarray:
    """Each token's position among its text's attended tokens (a decoder graph's `position_ids` input).

    Counted from the mask, as optimum's ORT decoders and transformers' generation do, so a left-padded
    text starts at position 0 like an unpadded one; pads get 0 (they are masked out anyway).
    """
    return np.asarray(np.maximum(np.cumsum(attention_mask, axis=1) - 1, 0), dtype=np.int64)


def _checked_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TextTypeError("embed takes a sequence of texts, not a single str: wrap it in a list")
    checked = list(texts)
    for index, text in enumerate(checked):
        if not isinstance(text, str):
            raise TextTypeError(f"text at index {index} is {type(text).__name__}, not str")
    # Before length-sorting, so an error names the caller's index, not the index within a batch.
    check_encodable(checked)
    return checked
