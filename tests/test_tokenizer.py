import json
import re

import numpy as np
import pytest

from embedkit.errors import ModelFileError
from embedkit.pipeline.tokenizer import Tokenizer, read_max_seq_length


@pytest.fixture()
def tokenizer(tiny_checkpoint):
    return Tokenizer.from_file(tiny_checkpoint / "tokenizer.json", max_seq_length=8)


def test_pads_to_the_longest_text_not_the_stored_fixed_length(tokenizer):
    batch = tokenizer.encode(["the cat", "the dog is running"])
    # The stored tokenizer.json pads everything to 16; the batch's longest is 6 tokens with specials.
    assert batch.input_ids.shape == (2, 6)
    assert batch.input_ids.dtype == np.int64 and batch.attention_mask.dtype == np.int64
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 0, 0], [1] * 6]
    assert batch.n_tokens == 10


def test_truncates_at_max_seq_length_and_counts(tokenizer):
    batch = tokenizer.encode(["the cat " * 20, "a dog", "the " * 7])
    assert batch.input_ids.shape[1] == 8
    assert batch.n_truncated == 2  # 41 tokens and 9 tokens exceed 8; "a dog" does not


def test_token_type_ids_only_when_asked(tiny_checkpoint):
    with_types = Tokenizer.from_file(tiny_checkpoint / "tokenizer.json", 8, with_token_type_ids=True)
    without = Tokenizer.from_file(tiny_checkpoint / "tokenizer.json", 8, with_token_type_ids=False)
    assert with_types.encode(["a"]).token_type_ids.tolist() == [[0, 0, 0]]
    assert without.encode(["a"]).token_type_ids is None


def test_empty_text_is_special_tokens_only(tokenizer):
    assert tokenizer.encode([""]).input_ids.tolist() == [[2, 3]]


def test_missing_and_truncated_tokenizer_files_name_the_file(tmp_path, tiny_checkpoint):
    with pytest.raises(ModelFileError, match="not found"):
        Tokenizer.from_file(tmp_path / "tokenizer.json", 8)
    broken = tmp_path / "broken.json"
    broken.write_text((tiny_checkpoint / "tokenizer.json").read_text()[:500])
    with pytest.raises(ModelFileError, match=re.escape("broken.json")):
        Tokenizer.from_file(broken, 8)


def test_max_seq_length_from_checkpoint(tmp_path, tiny_checkpoint):
    assert read_max_seq_length(tiny_checkpoint) == 24
    assert read_max_seq_length(tmp_path) is None
    (tmp_path / "sentence_bert_config.json").write_text("{not json")
    with pytest.raises(ModelFileError, match=re.escape("sentence_bert_config.json")):
        read_max_seq_length(tmp_path)
    (tmp_path / "sentence_bert_config.json").write_text('{"max_seq_length": "long"}')
    with pytest.raises(ModelFileError, match=r"sentence_bert_config.json: max_seq_length is 'long'"):
        read_max_seq_length(tmp_path)


def test_vocab_size_is_one_past_the_largest_id_even_with_gaps(tmp_path, tiny_checkpoint):
    config = json.loads((tiny_checkpoint / "tokenizer.json").read_text())
    vocab = config["model"]["vocab"]
    largest = max(vocab.values())
    vocab[next(iter(vocab))] = largest + 40  # an id far past the others: the model needs that many rows
    gapped = tmp_path / "tokenizer.json"
    gapped.write_text(json.dumps(config))
    assert Tokenizer.from_file(gapped, 8).vocab_size == largest + 41


def test_left_padding_side_is_kept(tmp_path, tiny_checkpoint):
    config = json.loads((tiny_checkpoint / "tokenizer.json").read_text())
    config["padding"]["direction"] = "Left"
    left = tmp_path / "tokenizer.json"
    left.write_text(json.dumps(config))
    batch = Tokenizer.from_file(left, 8).encode(["the cat", "a"])
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1], [0, 1, 1, 1]]


@pytest.mark.parametrize("text, truncated", [("the cat", 0), ("", 0), ("the cat " * 20, 1)])
def test_a_single_text_encodes_as_it_does_inside_a_batch(tokenizer, text, truncated):
    # A batch of one takes the tokenizer's single-text path; its row must be the batch path's, unpadded.
    alone = tokenizer.encode([text])
    in_batch = tokenizer.encode([text, "the dog is running " * 3])
    width = alone.input_ids.shape[1]
    assert alone.input_ids.tolist() == in_batch.input_ids[:1, :width].tolist()
    assert alone.attention_mask.tolist() == in_batch.attention_mask[:1, :width].tolist()
    assert in_batch.attention_mask[0, width:].sum() == 0
    assert alone.n_truncated == truncated
