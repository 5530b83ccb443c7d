"""Stage 3: token embeddings + attention mask -> one vector per text, in numpy.

Matches sentence-transformers' Pooling and Normalize modules (float32 sums, norm clamped at 1e-12).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from embedkit.errors import UsageError

POOLING_MODES = ("mean", "cls", "last")


def _check_masks(attention_mask: np.ndarray) -> None:
    empty_rows = np.flatnonzero(attention_mask.sum(axis=1) == 0)
    if empty_rows.size:
        raise ValueError(f"attention mask is all zero for row(s) {empty_rows.tolist()}: nothing to pool")


def mean_pool(token_embeddings: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    mask = attention_mask.astype(np.float32)
    summed = np.einsum("bsd,bs->bd", token_embeddings.astype(np.float32, copy=False), mask)
    return np.asarray(summed / mask.sum(axis=1, keepdims=True), dtype=np.float32)


def cls_pool(token_embeddings: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    # The first attended position: index 0 with right padding, after the pads with left padding.
    first = attention_mask.argmax(axis=1)
    return np.asarray(token_embeddings[np.arange(len(first)), first], dtype=np.float32)


def last_token_pool(token_embeddings: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    # The last attended position, whichever side the padding is on.
    seq_len = attention_mask.shape[1]
    last = seq_len - 1 - attention_mask[:, ::-1].argmax(axis=1)
    return np.asarray(token_embeddings[np.arange(len(last)), last], dtype=np.float32)


_POOLERS = {"mean": mean_pool, "cls": cls_pool, "last": last_token_pool}


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=vectors.dtype)


def pool(token_embeddings: np.ndarray, attention_mask: np.ndarray, mode: str, normalize: bool) -> np.ndarray:
    if mode not in _POOLERS:
        raise UsageError(f"unknown pooling mode {mode!r}; expected one of {POOLING_MODES}")
    _check_masks(attention_mask)
    pooled = _POOLERS[mode](token_embeddings, attention_mask)
    return l2_normalize(pooled) if normalize else pooled


def read_pooling_mode(config: Mapping[str, Any]) -> str:
    """The mode named by a sentence-transformers `1_Pooling/config.json`."""
    if config.get("pooling_mode_mean_tokens"):
        return "mean"
    if config.get("pooling_mode_cls_token"):
        return "cls"
    if config.get("pooling_mode_lasttoken"):
        return "last"
    modes = sorted(k for k, v in config.items() if k.startswith("pooling_mode") and v)
    raise ValueError(f"unsupported pooling configuration {modes}; embedkit pools by {POOLING_MODES}")
