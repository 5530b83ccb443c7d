"""Real texts of a chosen token length, for length-bucketed latency measurements.

A bucket names a token count (special tokens included, as the model sees them): short ≈ 16 (one
sentence, the seed plan's single-text case), medium ≈ 64 (a short paragraph), long = the model's
max_seq_length. Texts are STSBenchmark test sentences (the local data mirror's, or the HF hub's
without one: embedkit.quality.sentences): a sentence of
exactly the target length is used as it is; otherwise whole sentences are joined, and the next one
is cut at a word boundary, until the text reaches the target. Random token ids would skip the
tokenizer's real work and the attention pattern of real text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedkit.errors import LocalDataError, UsageError
from embedkit.pipeline.tokenizer import Tokenizer
from embedkit.quality.sentences import benchmark_sentences

# Nominal token counts; None means the model's max_seq_length. Capped at max_seq_length.
SEQ_BUCKETS: dict[str, int | None] = {"short": 16, "medium": 64, "long": None}


@dataclass(frozen=True)
class BucketTexts:
    """`texts` of about `target_tokens` tokens each, and where they come from."""

    bucket: str
    target_tokens: int
    texts: tuple[str, ...]
    token_counts: tuple[int, ...]
    seed: int
    provenance: Mapping[str, Any]  # where the sentences came from

    def to_record(self) -> dict[str, Any]:
        return {
            **self.provenance,
            "seed": self.seed,
            "target_tokens": self.target_tokens,
            "tokens_per_text": {"min": min(self.token_counts), "max": max(self.token_counts)},
            "texts": len(self.texts),
            "first_text": self.texts[0],
        }


def target_tokens(bucket: str, max_seq_length: int) -> int:
    if bucket not in SEQ_BUCKETS:
        raise UsageError(f"unknown sequence bucket {bucket!r}; expected one of {tuple(SEQ_BUCKETS)}")
    nominal = SEQ_BUCKETS[bucket]
    return max_seq_length if nominal is None else min(nominal, max_seq_length)


def token_counter(tokenizer: Tokenizer) -> Callable[[str], int]:
    """Tokens the model sees for one text; max_seq_length + 1 for a text that would be truncated."""

    def count(text: str) -> int:
        batch = tokenizer.encode([text])
        return tokenizer.max_seq_length + 1 if batch.n_truncated else batch.n_tokens

    return count


def fill_to(target: int, sentences: Iterator[str], count: Callable[[str], int]) -> str:
    """Whole sentences while they fit in `target` tokens, then words of the next one while they fit."""
    text = ""
    for sentence in sentences:
        joined = f"{text} {sentence}".strip()
        if count(joined) <= target:
            text = joined
            continue
        for word in sentence.split():
            longer = f"{text} {word}".strip()
            if count(longer) > target:
                break
            text = longer
        if text:
            return text
    raise LocalDataError(f"the data ran out before a text of {target} tokens was built")


def bucket_texts(
    tokenizer: Tokenizer, bucket: str, n_texts: int, *, seed: int = 0, data_root: Path | None = None
) -> BucketTexts:
    """`n_texts` distinct real texts of the bucket's token length for this tokenizer."""
    if n_texts < 1:
        raise UsageError(f"need at least one text, got {n_texts}")
    target = target_tokens(bucket, tokenizer.max_seq_length)
    count = token_counter(tokenizer)
    source = benchmark_sentences(seed, data_root)
    sentences = source.texts
    texts = _exact_sentences(sentences, target, n_texts, count)
    used = set(texts)
    remaining = iter(s for s in sentences if s not in used)
    while len(texts) < n_texts:
        texts.append(fill_to(target, remaining, count))
    return BucketTexts(bucket, target, tuple(texts), tuple(count(text) for text in texts), seed, source.provenance)


def _exact_sentences(sentences: Sequence[str], target: int, n_texts: int, count: Callable[[str], int]) -> list[str]:
    exact: list[str] = []
    for sentence in sentences:
        if len(exact) == n_texts:
            break
        if count(sentence) == target:
            exact.append(sentence)
    return exact
