"""Damaged model files give one ModelFileError naming the file (and the line or key, where one applies).

Most cases stop before any export: the checks run on a copy of the tiny checkpoint, reusing the
session's tiny variant where a graph is needed. Damaged data-mirror rows are in test_data.py; a
larger-than-the-model tokenizer and a missing pooling config go through `load` in test_embedder.py.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

import embedkit
from embedkit.errors import ModelFileError
from embedkit.models.export import get_variant, read_variant
from embedkit.models.loading import ModelFiles
from embedkit.models.specs import local_spec
from embedkit.pipeline.session import OrtSession


@pytest.fixture
def checkpoint(tmp_path: Path, tiny_checkpoint: Path) -> Path:
    """A private copy of the tiny checkpoint, free to damage."""
    return Path(shutil.copytree(tiny_checkpoint, tmp_path / "damaged"))


def _truncate(path: Path, keep: float = 0.5) -> None:
    content = path.read_bytes()
    path.write_bytes(content[: int(len(content) * keep)])


# --- ONNX ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("random", r"cannot parse ONNX file .*/broken/model\.onnx"),
        ("truncated", r"cannot parse ONNX file .*/broken/model\.onnx"),
        ("empty", r"ONNX file .*/broken/model\.onnx has no graph nodes"),
    ],
    ids=["random-bytes", "truncated", "empty"],
)
def test_damaged_onnx_file_is_refused_by_load(tmp_path, tiny_embedder, isolated_models, damage, message):
    target = tmp_path / "broken" / "model.onnx"
    target.parent.mkdir()
    shutil.copyfile(tiny_embedder.variant.path, target)
    if damage == "random":
        target.write_bytes(bytes(range(256)) * 64)
    elif damage == "truncated":
        _truncate(target)
    else:
        target.write_bytes(b"")
    with pytest.raises(ModelFileError, match=message):
        embedkit.load(str(target))


def test_truncated_onnx_file_is_refused_by_the_session(tmp_path, tiny_embedder):
    # An exported variant damaged after its manifest was written reaches onnxruntime directly.
    target = tmp_path / "model.onnx"
    shutil.copyfile(tiny_embedder.variant.path, target)
    _truncate(target, keep=0.9)
    with pytest.raises(ModelFileError, match=r"onnxruntime cannot load .*/model\.onnx"):
        OrtSession(target)


def test_malformed_variant_manifest_names_the_file_and_line(tmp_path, tiny_embedder):
    (tmp_path / "manifest.json").write_text('{"model": "tiny",\n "graph": {')
    with pytest.raises(ModelFileError, match=r"malformed variant manifest .*/manifest\.json: .*line 2"):
        read_variant("fp32", tiny_embedder.variant.path, tmp_path)


# --- tokenizer and sentence-transformers configs ----------------------------------------------


@pytest.mark.parametrize(
    ("file_name", "message"),
    [
        ("tokenizer.json", r"cannot read tokenizer .*/damaged/tokenizer\.json: .*line \d+ column \d+"),
        ("sentence_bert_config.json", r"malformed .*/damaged/sentence_bert_config\.json: .*line \d+ column \d+"),
    ],
    ids=["tokenizer", "sentence-bert-config"],
)
def test_truncated_tokenizer_files_name_the_file_and_line(checkpoint, tiny_embedder, file_name, message):
    _truncate(checkpoint / file_name)
    with pytest.raises(ModelFileError, match=message):
        ModelFiles.of(local_spec(checkpoint)).tokenizer(tiny_embedder.variant)


# --- pooling ---------------------------------------------------------------------------------


def test_spec_pooling_stands_in_for_a_missing_pooling_config(checkpoint):
    shutil.rmtree(checkpoint / "1_Pooling")
    spec = local_spec(checkpoint)
    with pytest.raises(ModelFileError, match=r"no pooling in the spec and no .*/damaged/1_Pooling/config\.json"):
        ModelFiles.of(spec).pooling_mode()
    assert ModelFiles.of(replace(spec, pooling="cls")).pooling_mode() == "cls"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"pooling_mode_mean_tokens": tr', r"malformed pooling config .*/1_Pooling/config\.json: .*line 1 column"),
        ("[1, 2]", r"pooling config .*/1_Pooling/config\.json is a JSON list, not an object"),
        (
            '{"pooling_mode_max_tokens": true}',
            r"pooling config .*/1_Pooling/config\.json: unsupported pooling configuration "
            r"\['pooling_mode_max_tokens'\]",
        ),
    ],
    ids=["truncated-json", "not-an-object", "unsupported-mode"],
)
def test_bad_pooling_config_names_the_file_and_key(checkpoint, content, message):
    (checkpoint / "1_Pooling" / "config.json").write_text(content)
    with pytest.raises(ModelFileError, match=message):
        ModelFiles.of(local_spec(checkpoint)).pooling_mode()


# --- the PyTorch checkpoint an export starts from ---------------------------------------------


def test_missing_or_malformed_model_config_is_refused_before_export(checkpoint, isolated_models):
    config = checkpoint / "config.json"
    config.write_text(config.read_text()[:-20])
    with pytest.raises(ModelFileError, match=r"malformed model config .*/damaged/config\.json: .*line \d+ column"):
        get_variant(local_spec(checkpoint))
    config.unlink()
    with pytest.raises(ModelFileError, match=r"damaged/config\.json not found: .* is not a transformers checkpoint"):
        get_variant(local_spec(checkpoint))


def test_checkpoint_without_weights_is_refused_before_export(checkpoint, isolated_models):
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(ModelFileError, match=r"damaged has no \*\.safetensors weights"):
        get_variant(local_spec(checkpoint))
