"""Stage 1: text -> int64 id/mask arrays, with HF `tokenizers`.

The sentence-transformers checkpoints we ship store fixed 128-token padding and truncation in
tokenizer.json; sentence-transformers itself ignores that and pads to the longest text in the batch and
truncates at `max_seq_length`. We do the same, so the ONNX path sees exactly the reference's inputs.

Thread safety: `Tokenizer.encode` may be called from many threads at once. The HF tokenizer is
configured (padding, truncation) once, in `__init__`, and only read after that: its `encode_batch`
takes a shared borrow of the Rust object, which any number of threads may hold, whereas
`enable_padding`/`enable_truncation` take an exclusive one and fail with "Already borrowed" while
another thread encodes. So nothing here reconfigures the HF object after construction, and
nothing else should be given it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer as HFTokenizer

from embedkit.errors import ModelFileError, UsageError

# A UTF-16 surrogate on its own is not a Unicode character: Python strings may hold one (half an emoji
# from a broken JSON escape, surrogateescape'd bytes) but the Rust tokenizer cannot take it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class TokenizedBatch:
    input_ids: np.ndarray  # int64 (n, seq)
    attention_mask: np.ndarray  # int64 (n, seq)
    token_type_ids: np.ndarray | None  # int64 (n, seq), only when the graph declares the input
    n_truncated: int  # texts cut at max_seq_length

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())


class Tokenizer:
    def __init__(
        self,
        tokenizer: HFTokenizer,
        max_seq_length: int,
        with_token_type_ids: bool,
        source: Path | None = None,
        padding_defaults: Mapping[str, Any] | None = None,
    ):
        """`padding_defaults`: the pad token and side when tokenizer.json stores no padding
        (`padding_from_config`)."""
        self.max_seq_length = max_seq_length
        self.with_token_type_ids = with_token_type_ids
        self.source = source
        self._tokenizer = tokenizer
        padding = tokenizer.padding or padding_defaults or {}
        tokenizer.enable_truncation(max_length=max_seq_length)
        # length=None pads to the longest text in each batch; keep the checkpoint's pad token and side
        # (left padding matters for last-token pooling).
        tokenizer.enable_padding(
            direction=str(padding.get("direction", "right")).lower(),
            pad_id=int(padding.get("pad_id", 0)),
            pad_type_id=int(padding.get("pad_type_id", 0)),
            pad_token=str(padding.get("pad_token", "[PAD]")),
            length=None,
        )

    @classmethod
    def from_file(cls, path: Path, max_seq_length: int, with_token_type_ids: bool = True) -> Tokenizer:
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"tokenizer file not found: {path}")
        try:
            hf = HFTokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception for malformed JSON
            raise ModelFileError(f"cannot read tokenizer {path}: {exc}") from exc
        defaults = padding_from_config(path.with_name("tokenizer_config.json"), hf)
        return cls(hf, max_seq_length, with_token_type_ids, source=path, padding_defaults=defaults)

    @property
    def vocab_size(self) -> int:
        """One past the largest token id: the embedding rows a model needs (ids may have gaps)."""
        ids: dict[str, int] = self._tokenizer.get_vocab(with_added_tokens=True)
        return max(ids.values()) + 1

    def encode(self, texts: Sequence[str]) -> TokenizedBatch:
        texts = list(texts)
        try:
            # encode_batch hands even a single text to the rayon pool, whose wake-up costs more than
            # the text; a batch of one is encoded on the calling thread.
            encodings = [self._tokenizer.encode(texts[0])] if len(texts) == 1 else self._tokenizer.encode_batch(texts)
        except TypeError:
            check_encodable(texts)  # names the text the HF tokenizer refused, when it is one of ours
            raise
        input_ids = _id_matrix([e.ids for e in encodings])
        attention_mask = _id_matrix([e.attention_mask for e in encodings])
        token_type_ids = _id_matrix([e.type_ids for e in encodings]) if self.with_token_type_ids else None
        n_truncated = sum(1 for e in encodings if e.overflowing)
        return TokenizedBatch(input_ids, attention_mask, token_type_ids, n_truncated)


def padding_from_config(config_file: Path, tokenizer: HFTokenizer) -> dict[str, Any] | None:
    """The pad token and side transformers' AutoTokenizer would use (tokenizer_config.json's `pad_token`
    and `padding_side`, default right), for a tokenizer.json that stores no padding (Qwen3's, e.g.)."""
    if not config_file.is_file():
        return None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"malformed {config_file}: {exc}") from exc
    pad = config.get("pad_token")
    pad_token = pad.get("content") if isinstance(pad, dict) else pad
    pad_id = tokenizer.token_to_id(pad_token) if isinstance(pad_token, str) else None
    if pad_id is None:
        return None
    return {"direction": str(config.get("padding_side", "right")), "pad_id": pad_id, "pad_token": pad_token}


def _id_matrix(rows: list[list[int]]) -> np.ndarray:
    # An empty batch is still (0, seq), not numpy's (0,) for an empty list.
    return np.array(rows, dtype=np.int64) if rows else np.empty((0, 0), dtype=np.int64)


def check_encodable(texts: Sequence[str]) -> None:
    """Raise UsageError naming the first str the HF tokenizer cannot take (a lone surrogate)."""
    for index, text in enumerate(texts):
        found = _LONE_SURROGATE.search(text) if isinstance(text, str) else None
        if found:
            raise UsageError(
                f"text at index {index} holds a lone surrogate U+{ord(found.group()):04X} at character "
                f"{found.start()}: not valid Unicode (decode its bytes with errors='replace')"
            )


def read_max_seq_length(checkpoint_dir: Path) -> int | None:
    """`max_seq_length` from a sentence-transformers checkpoint, or None when it does not say."""
    config = Path(checkpoint_dir) / "sentence_bert_config.json"
    if not config.is_file():
        return None
    try:
        value = json.loads(config.read_text()).get("max_seq_length")
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"malformed {config}: {exc}") from exc
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelFileError(f"{config}: max_seq_length is {value!r}, not a positive integer")
    return value
