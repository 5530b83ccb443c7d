"""Shared fixtures: a tiny random BERT checkpoint (fast unit tests), the real default model, the data mirror."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for the hub
SHARED_DATA = REPO.parent / "shared" / "data"
if "EMBEDKIT_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["EMBEDKIT_DATA"] = str(SHARED_DATA)

TINY_WORDS = [
    "the",
    "a",
    "an",
    "is",
    "are",
    "was",
    "to",
    "of",
    "and",
    "in",
    "on",
    "for",
    "with",
    "cat",
    "dog",
    "man",
    "woman",
    "playing",
    "guitar",
    "running",
    "field",
    "snow",
    "machine",
    "learning",
    "artificial",
    "intelligence",
    "cooking",
    "pasta",
    "italian",
    "stock",
    "market",
    "bank",
    "rates",
    "energy",
    "light",
    "chemical",
    "glucose",
    "card",
    "pin",
    "reset",
    "how",
    "what",
    "do",
    "i",
    "my",
    "you",
    "it",
]


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = os.environ.get("EMBEDKIT_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("no local data mirror: set EMBEDKIT_DATA or put ../shared/data beside the repo")
    return Path(root)


def write_tiny_checkpoint(directory: Path, max_seq_length: int = 24, pooling: str = "mean") -> Path:
    """A sentence-transformers checkpoint of a 2-layer, 32-d random BERT with a 60-word WordPiece vocabulary."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel

    directory.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS])}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    # Fixed padding and truncation, as the shipped checkpoints store them: embedkit must override both.
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", length=16)
    tokenizer.enable_truncation(max_length=16)
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": max_seq_length})
    )
    (directory / "special_tokens_map.json").write_text(
        json.dumps(
            {
                "pad_token": "[PAD]",
                "unk_token": "[UNK]",
                "cls_token": "[CLS]",
                "sep_token": "[SEP]",
                "mask_token": "[MASK]",
            }
        )
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(directory)
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length}))
    (directory / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
            ]
        )
    )
    (directory / "1_Pooling").mkdir(exist_ok=True)
    (directory / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": 32,
                "pooling_mode_cls_token": pooling == "cls",
                "pooling_mode_mean_tokens": pooling == "mean",
                "pooling_mode_lasttoken": pooling == "last",
            }
        )
    )
    return directory


@pytest.fixture(scope="session")
def models_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An isolated models/ for tests that export the tiny model."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny-bert")


@pytest.fixture()
def isolated_models(models_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EMBEDKIT_MODELS", str(models_home))
    return models_home


@pytest.fixture(scope="session")
def tiny_embedder(tiny_checkpoint: Path, models_home: Path):
    import embedkit

    previous = os.environ.get("EMBEDKIT_MODELS")
    os.environ["EMBEDKIT_MODELS"] = str(models_home)
    try:
        return embedkit.load(str(tiny_checkpoint))
    finally:
        if previous is None:
            os.environ.pop("EMBEDKIT_MODELS")
        else:
            os.environ["EMBEDKIT_MODELS"] = previous


@pytest.fixture(scope="session")
def minilm():
    """The embedded default, fp32, from the project's models/ (fetched from its pip package once)."""
    import embedkit

    return embedkit.load("all-MiniLM-L6-v2", "fp32")


# The small synthetic sweep (records_factory.small_sweep) that the tradeoff, plot and report-table tests share:
# its directory and records, its frame, and its tradeoff.
@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    from records_factory import small_sweep

    directory = tmp_path_factory.mktemp("sweep")
    return directory, small_sweep(directory)


@pytest.fixture(scope="module")
def frame(sweep: tuple[Path, dict[str, dict[str, Any]]]) -> Any:
    from embedkit.results.tables import load_frame

    return load_frame(sweep[0])


@pytest.fixture(scope="module")
def tradeoff(frame: Any) -> Any:
    from embedkit.analysis.tradeoff import build_tradeoff

    return build_tradeoff(frame)
