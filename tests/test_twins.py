"""Architecture twins: deterministic builds, the borrowed tokenizer's vocabulary, the records' weights
field, and the quality verbs' refusal of random weights."""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from embedkit.errors import InvalidRecordError, ModelFileError, RandomWeightsError
from embedkit.models.specs import Weights, local_spec
from embedkit.models.twins import CONFIGS_DIR, build_checkpoint, check_vocabulary, twin_models

RANDOM = Weights("random", 0, "0" * 64)


def tiny_bert_config(directory: Path) -> Path:
    """e5-small-v2's bundled config, 2 layers of width 32: its vocabulary (the one the tokenizer must match)
    unchanged."""
    shutil.copytree(CONFIGS_DIR / "e5-small-v2", directory)
    config = json.loads((directory / "config.json").read_text())
    config.update(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def test_the_three_ladder_models_have_bundled_configs() -> None:
    assert set(twin_models()) == {"e5-small-v2", "bge-small-en-v1.5", "Qwen3-Embedding-0.6B"}


def test_the_same_config_and_seed_build_the_same_weights(tmp_path: Path) -> None:
    config = tiny_bert_config(tmp_path / "config")
    first = build_checkpoint(config, 0, tmp_path / "a")
    again = build_checkpoint(config, 0, tmp_path / "b")
    other_seed = build_checkpoint(config, 1, tmp_path / "c")
    assert first["weights_sha256"] == again["weights_sha256"] != other_seed["weights_sha256"]
    assert first["config_sha256"] == again["config_sha256"]
    assert (tmp_path / "a" / "modules.json").is_file() and (tmp_path / "a" / "1_Pooling" / "config.json").is_file()
    assert "bert-base-uncased WordPiece" in first["tokenizer"]


@pytest.mark.parametrize("model", ["e5-small-v2", "bge-small-en-v1.5"])
def test_minilm_tokenizer_is_the_vocabulary_the_bert_twins_state(minilm: Any, model: str) -> None:
    check_vocabulary(minilm.tokenizer.source, CONFIGS_DIR / model)


def test_another_vocabulary_is_refused(tiny_checkpoint: Path, minilm: Any, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="vocab_size 30522"):
        check_vocabulary(tiny_checkpoint / "tokenizer.json", CONFIGS_DIR / "e5-small-v2")
    # Same size, one special token moved: still refused.
    content = json.loads(Path(minilm.tokenizer.source).read_text())
    vocab = content["model"]["vocab"]
    vocab["[CLS]"], vocab["[SEP]"] = vocab["[SEP]"], vocab["[CLS]"]
    swapped = tmp_path / "tokenizer.json"
    swapped.write_text(json.dumps(content))
    with pytest.raises(ModelFileError, match=r"\[CLS\] is id 102"):
        check_vocabulary(swapped, CONFIGS_DIR / "bge-small-en-v1.5")


@pytest.fixture(scope="module")
def random_tiny(tiny_embedder: Any) -> Any:
    """The tiny checkpoint's embedder, relabelled as random weights (what a twin's embedder is)."""
    twin = copy.copy(tiny_embedder)
    twin.spec = replace(tiny_embedder.spec, weights=RANDOM)
    return twin


def test_score_and_parity_refuse_random_weights(random_tiny: Any) -> None:
    from embedkit.models.parity import run_parity
    from embedkit.quality.scoring import score

    with pytest.raises(RandomWeightsError, match="score refuses"):
        score(random_tiny, ["BIOSSES"])
    with pytest.raises(RandomWeightsError, match="parity refuses"):
        run_parity(random_tiny)


def test_verify_refuses_a_record_of_random_weights(tmp_path: Path) -> None:
    from records_factory import score_record

    from embedkit.quality.verify import verify_record
    from embedkit.results.files import write_record

    record = score_record({"STSBenchmark": 0.8})
    record["model"]["weights"] = RANDOM.to_record()
    with pytest.raises(RandomWeightsError, match="verify refuses"):
        verify_record(write_record(record, tmp_path))


def test_records_carry_weights_and_frames_show_them(tiny_checkpoint: Path) -> None:
    from records_factory import profile_record

    from embedkit.results.schema import validate_record
    from embedkit.results.tables import records_frame

    old = profile_record(10.0)
    del old["model"]["weights"]  # written before the field existed: still valid, read as checkpoint
    validate_record(old)
    twin = copy.deepcopy(old)
    twin["model"]["weights"] = RANDOM.to_record()
    twin["model"]["tokenizer"] = {"source": "stand-in:test"}
    validate_record(twin)
    frame = records_frame([old, twin])
    assert list(frame["weights"]) == ["checkpoint", "random"]
    assert frame["weights_seed"].iloc[1] == 0
    broken = copy.deepcopy(twin)
    del broken["model"]["weights"]["seed"]
    with pytest.raises(InvalidRecordError):
        validate_record(broken)
    assert local_spec(tiny_checkpoint).weights.to_record() == {"kind": "checkpoint"}


@pytest.mark.parametrize(
    "argv",
    [
        ["export", "e5-small-v2"],
        ["inspect", "e5-small-v2:fp32"],
        ["embed", "e5-small-v2", "--text", "hi"],
        ["parity", "e5-small-v2"],
        ["score", "e5-small-v2", "--tasks", "BIOSSES"],
        ["profile", "e5-small-v2:fp32"],
        ["profile", "--compare", "e5-small-v2", "bge-small-en-v1.5"],
    ],
)
def test_the_verbs_take_weights(argv: list[str]) -> None:
    from embedkit.cli.parser import build_parser

    parser = build_parser()
    assert parser.parse_args(argv).weights == "checkpoint"
    assert parser.parse_args([*argv, "--weights", "random"]).weights == "random"
    with pytest.raises(SystemExit):
        parser.parse_args([*argv, "--weights", "pretrained"])


def test_a_model_without_a_bundled_config_has_no_twin() -> None:
    from embedkit.errors import UnknownModelError
    from embedkit.models.twins import resolve_spec

    with pytest.raises(UnknownModelError, match="random weights exist for"):
        resolve_spec("all-MiniLM-L6-v2", "random")
