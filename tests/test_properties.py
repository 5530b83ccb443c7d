"""Property-based: any unicode, any length, any batch size; pooling and batching invariants."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TINY_WORDS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from embedkit.pipeline.pooling import POOLING_MODES, pool

MAX_WORDS = 5000
MAX_BATCH = 300
# Bounded runs: the whole file stays well under a minute on the tiny model.
BOUNDED = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
# Characters a random draw rarely picks but real input has: NUL and other controls, bidi marks and
# right-to-left scripts, zero-width and combining marks, emoji (with ZWJ sequences and flags), the BOM.
AWKWARD_PIECES = [
    "\x00",
    "\x07",
    "\x1b",
    "\x7f",
    "\r\n",
    "\t",
    "\u200b",
    "\u200d",
    "\u200f",
    "\u202e",
    "\ufeff",
    "\ufffd",
    "e\u0301",
    "שלום",
    "مرحبا",
    "中文",
    "😀",
    "👩\u200d👩\u200d👧",
    "🇫🇷",
    "\U0010ffff",
]

words = st.one_of(
    # Every character but a lone surrogate (category Cs), which is not Unicode text: embedkit refuses it
    # with an error naming the text (test_a_lone_surrogate_is_refused_naming_the_callers_index).
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12),
    st.sampled_from(AWKWARD_PIECES),
    st.sampled_from(TINY_WORDS),
)


@st.composite
def texts(draw: st.DrawFn, min_words: int = 0) -> str:
    """0..MAX_WORDS words from a small drawn pool, so long texts cost Hypothesis little to generate."""
    pool_words = draw(st.lists(words, min_size=1, max_size=8))
    n_words = draw(st.one_of(st.integers(min_words, min_words + 20), st.integers(min_words, MAX_WORDS)))
    separator = draw(st.sampled_from([" ", "", "\n", "\x00", "\u3000"]))
    rng = draw(st.randoms(use_true_random=False))
    return separator.join(rng.choices(pool_words, k=n_words))


@st.composite
def batches(draw: st.DrawFn, min_size: int = 0) -> list[str]:
    """min_size..MAX_BATCH texts, drawn (with repeats) from a few distinct ones."""
    distinct = draw(st.lists(texts(), min_size=1, max_size=6))
    size = draw(st.one_of(st.integers(min_size, min_size + 8), st.integers(min_size, MAX_BATCH)))
    rng = draw(st.randoms(use_true_random=False))
    return [rng.choice(distinct) for _ in range(size)]


def far_longer(text: str, max_seq_length: int) -> str:
    """`text` followed by enough known words to fill max_seq_length, whatever the text turns into."""
    repeats = -(-max_seq_length // len(TINY_WORDS)) + 1
    return text + " " + " ".join(TINY_WORDS * repeats)


def assert_unit_norm_and_finite(vectors: np.ndarray) -> None:
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


@BOUNDED
@given(batch=batches())
def test_tokenizer_gives_well_formed_batches_for_any_text(tiny_embedder, batch):
    tokenizer = tiny_embedder.tokenizer
    encoded = tokenizer.encode(batch)
    for ids in (encoded.input_ids, encoded.attention_mask, encoded.token_type_ids):
        assert ids.ndim == 2 and ids.shape == encoded.input_ids.shape and ids.shape[0] == len(batch)
    assert encoded.input_ids.shape[1] <= tokenizer.max_seq_length
    assert 0 <= encoded.n_truncated <= len(batch)
    if batch:
        assert ((encoded.input_ids >= 0) & (encoded.input_ids < tokenizer.vocab_size)).all()
        assert set(np.unique(encoded.attention_mask)) <= {0, 1}
        assert encoded.attention_mask.sum(axis=1).min() >= 2  # [CLS] and [SEP] at least
        assert (np.diff(encoded.attention_mask, axis=1) <= 0).all()  # right padding: ones, then zeros


@BOUNDED
@given(batch=batches(), batch_size=st.integers(1, 64))
def test_embeddings_are_finite_and_unit_norm_for_any_text(tiny_embedder, batch, batch_size):
    vectors = tiny_embedder.embed(batch, batch_size=batch_size)
    assert vectors.shape == (len(batch), tiny_embedder.dim) and vectors.dtype == np.float32
    assert_unit_norm_and_finite(vectors)


@st.composite
def padded_pooling_inputs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Token embeddings and mask, and the same with extra padding positions holding arbitrary values."""
    n_rows, seq, dim = draw(st.integers(1, 5)), draw(st.integers(1, 12)), draw(st.integers(1, 8))
    tokens = draw(hnp.arrays(np.float32, (n_rows, seq, dim), elements=st.floats(-1e3, 1e3, width=32)))
    lengths = np.array(draw(st.lists(st.integers(1, seq), min_size=n_rows, max_size=n_rows)))
    left = draw(st.booleans())
    extra = draw(st.integers(1, 16))
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    junk = draw(
        hnp.arrays(
            np.float32, (n_rows, extra, dim), elements=st.floats(width=32, allow_nan=False, allow_infinity=False)
        )
    )
    padded_tokens = np.concatenate([tokens, junk], axis=1)
    padded_mask = np.concatenate([mask, np.zeros((n_rows, extra), dtype=np.int64)], axis=1)
    if left:  # pads first: both arrays reversed along the sequence keep each row's tokens contiguous
        tokens, mask = tokens[:, ::-1], mask[:, ::-1]
        padded_tokens, padded_mask = padded_tokens[:, ::-1], padded_mask[:, ::-1]
    return tokens, mask, padded_tokens, padded_mask


@settings(max_examples=100, deadline=None)
@given(inputs=padded_pooling_inputs(), mode=st.sampled_from(POOLING_MODES), normalize=st.booleans())
def test_extra_padding_never_changes_a_pooled_row(inputs, mode, normalize):
    tokens, mask, padded_tokens, padded_mask = inputs
    np.testing.assert_allclose(
        pool(padded_tokens, padded_mask, mode, normalize), pool(tokens, mask, mode, normalize), rtol=1e-5, atol=1e-5
    )


@BOUNDED
@given(text=texts(), long_text=texts(min_words=200))
def test_a_text_embeds_alike_alone_and_beside_a_much_longer_one(tiny_embedder, text, long_text):
    # The long text fills max_seq_length; the short one is padded up to it beside it.
    long_text = far_longer(long_text, tiny_embedder.tokenizer.max_seq_length)
    alone = tiny_embedder.embed([text])
    beside = tiny_embedder.embed([long_text, text], batch_size=2)
    np.testing.assert_allclose(beside[1], alone[0], atol=1e-5)


@st.composite
def permuted_batches(draw: st.DrawFn) -> tuple[list[str], list[int]]:
    batch = draw(batches(min_size=1))
    return batch, draw(st.permutations(range(len(batch))))


@BOUNDED
@given(batch_and_order=permuted_batches())
def test_permuting_a_batch_permutes_the_embeddings(tiny_embedder, batch_and_order):
    batch, order = batch_and_order
    # Ties in length may land in other batches once permuted: same vectors up to padding, not bitwise.
    np.testing.assert_allclose(
        tiny_embedder.embed([batch[i] for i in order]), tiny_embedder.embed(batch)[order], atol=1e-5
    )


@BOUNDED
@given(batch=batches(min_size=1), data=st.data())
def test_a_lone_surrogate_is_refused_naming_the_callers_index(tiny_embedder, batch, data):
    index = data.draw(st.integers(0, len(batch) - 1))
    position = data.draw(st.integers(0, len(batch[index])))
    surrogate = data.draw(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF))
    batch[index] = batch[index][:position] + surrogate + batch[index][position:]
    with pytest.raises(ValueError, match=f"text at index {index} holds a lone surrogate U\\+{ord(surrogate):04X}"):
        tiny_embedder.embed(batch)


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=texts(), long_text=texts(min_words=400))
def test_minilm_fp32_is_finite_unit_norm_and_independent_of_batch_mates(minilm, text, long_text):
    long_text = far_longer(long_text, minilm.tokenizer.max_seq_length)
    alone = minilm.embed([text])
    beside = minilm.embed([long_text, text], batch_size=2)
    assert_unit_norm_and_finite(beside)
    np.testing.assert_allclose(beside[1], alone[0], atol=1e-5)
