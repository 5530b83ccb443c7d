"""The decoder path: a tiny random Qwen3 (the Qwen3-Embedding architecture: last-token pooling, EOS
appended, left padding, position_ids fed) through export, embedding and parity against
sentence-transformers on PyTorch."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedkit.models.twins import CONFIGS_DIR, QWEN_EOS, build_checkpoint

# Very different lengths, so that every padded batch holds texts padded by many tokens.
TEXTS = [
    "",
    "a",
    "What is machine learning?",
    "A man is playing a guitar on the stage while two dogs run through a snowy field outside the hall.",
    "cooking italian pasta " * 12,
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
]
CORPUS = [*TEXTS, "the cat sat on the mat", "stock markets fell as the bank raised rates", "how do i reset my pin"]
TINY_QWEN3 = {
    "model_type": "qwen3",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "intermediate_size": 128,
    # Just over CoreML's 16,384 limit, as Qwen3's 151,669 rows are far over it.
    "vocab_size": 16_500,
    "bos_token_id": 16_499,
    "eos_token_id": 16_499,
    "max_position_embeddings": 256,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
}


def tiny_qwen3_config(directory: Path) -> Path:
    """The bundled Qwen3-Embedding config files, shrunk to 2 layers of width 64."""
    shutil.copytree(CONFIGS_DIR / "Qwen3-Embedding-0.6B", directory)
    (directory / "config.json").write_text(json.dumps(TINY_QWEN3))
    pooling = json.loads((directory / "1_Pooling" / "config.json").read_text())
    (directory / "1_Pooling" / "config.json").write_text(json.dumps({**pooling, "word_embedding_dimension": 64}))
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 48}))
    return directory


@pytest.fixture(scope="module")
def tiny_qwen3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("qwen3")
    checkpoint = root / "tiny-qwen3"
    build_checkpoint(tiny_qwen3_config(root / "config"), 0, checkpoint, corpus=CORPUS)
    return checkpoint


@pytest.fixture(scope="module")
def qwen3_models(tmp_path_factory: pytest.TempPathFactory) -> Any:
    previous = os.environ.get("EMBEDKIT_MODELS")
    os.environ["EMBEDKIT_MODELS"] = str(tmp_path_factory.mktemp("qwen3-models"))
    yield
    if previous is None:
        os.environ.pop("EMBEDKIT_MODELS")
    else:
        os.environ["EMBEDKIT_MODELS"] = previous


def test_the_stand_in_tokenizer_appends_eos_and_pads_left(tiny_qwen3: Path) -> None:
    from embedkit.pipeline.tokenizer import Tokenizer

    tokenizer = Tokenizer.from_file(tiny_qwen3 / "tokenizer.json", 48, with_token_type_ids=False)
    eos = tokenizer._tokenizer.token_to_id(QWEN_EOS)
    batch = tokenizer.encode(["a", "What is machine learning?"])
    assert (batch.input_ids[:, -1] == eos).all()  # the EOS that Qwen3-Embedding's post-processor appends
    assert batch.attention_mask[0, 0] == 0 and batch.attention_mask[0, -1] == 1  # padded on the left
    assert batch.input_ids[0, 0] == eos  # with the EOS as pad token
    assert tokenizer.vocab_size <= TINY_QWEN3["vocab_size"]  # every id has a row in the embedding table


def test_fp32_equals_sentence_transformers_in_padded_batches(tiny_qwen3: Path, qwen3_models: Any) -> None:
    import embedkit
    from embedkit.models.parity import cosines, reference_embeddings

    embedder = embedkit.load(str(tiny_qwen3), "fp32")
    assert "position_ids" in embedder.session.input_names  # the input whose absence was a KeyError
    assert embedder.pooling == "last"
    ours = embedder.embed(TEXTS, batch_size=3)
    reference = reference_embeddings(embedder.spec, TEXTS)
    assert cosines(ours, reference).min() >= 0.99999
    # The same texts alone (no padding at all) give the same vectors as in padded batches.
    alone = np.vstack([embedder.embed([text]) for text in TEXTS])
    assert cosines(alone, ours).min() >= 0.99999


@pytest.mark.parametrize("variant", ["fp32", "fp16", "int8", "int8-pc"])
def test_variants_report_their_parity(tiny_qwen3: Path, qwen3_models: Any, variant: str) -> None:
    import embedkit
    from embedkit.models.parity import run_parity

    result = run_parity(embedkit.load(str(tiny_qwen3), variant))
    assert result["variant"] == variant and 0.0 < result["mean_cosine"] <= 1.0 + 1e-6
    assert result["passed"] is (result["gate"]["measured"] >= result["gate"]["threshold"])
    if variant == "fp32":
        assert result["passed"], result


def test_o_levels_are_refused_for_an_architecture_optimum_cannot_optimize(tiny_qwen3: Path, qwen3_models: Any) -> None:
    from embedkit.errors import VariantUnavailableError
    from embedkit.models.export import get_variant
    from embedkit.models.specs import local_spec

    with pytest.raises(VariantUnavailableError, match="does not know model_type 'qwen3'"):
        get_variant(local_spec(tiny_qwen3), "O2")


def test_inspect_finds_the_token_table_over_coremls_limit(tiny_qwen3: Path, qwen3_models: Any) -> None:
    from embedkit.models.export import get_variant
    from embedkit.models.inspect import COREML_MAX_DIMENSION, inspect_model
    from embedkit.models.specs import local_spec

    report = inspect_model(get_variant(local_spec(tiny_qwen3), "fp32").path)
    assert report["embedding_rows"] == TINY_QWEN3["vocab_size"] > COREML_MAX_DIMENSION
    assert "position_ids" in report["inputs"]
    assert report["mobile"]["oversized_tensors"]  # the embedding table
    assert any(node.startswith("Gather") for node in report["mobile"]["CoreML MLProgram"]["rejected_for_dimension"])


def test_external_data_travels_with_the_graph_and_its_hash(tiny_qwen3: Path, qwen3_models: Any, tmp_path: Path) -> None:
    # A model over protobuf's 2 GB keeps its weights beside the graph; the tiny one is saved that way here.
    import onnx
    import onnxruntime as ort

    from embedkit.models.export import get_variant
    from embedkit.models.onnx_files import onnx_files, onnx_sha256, place_onnx
    from embedkit.models.specs import local_spec

    fp32 = get_variant(local_spec(tiny_qwen3), "fp32")
    split = tmp_path / "split" / "model.onnx"
    split.parent.mkdir()
    onnx.save(onnx.load(str(fp32.path)), str(split), save_as_external_data=True, location="model.onnx_data")
    assert [path.name for path in onnx_files(split)] == ["model.onnx", "model.onnx_data"]
    before = onnx_sha256(split)
    moved = tmp_path / "moved"
    moved.mkdir()
    place_onnx(split, moved, shutil.copy)
    assert onnx_sha256(moved / "model.onnx") == before
    ort.InferenceSession(str(moved / "model.onnx"))  # the weights came along
    with open(moved / "model.onnx_data", "r+b") as data:  # one weight byte changed: another variant
        first = data.read(1)
        data.seek(0)
        data.write(bytes([first[0] ^ 1]))
    assert onnx_sha256(moved / "model.onnx") != before
