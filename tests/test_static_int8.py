"""Calibrated static int8 (variant int8-static) on the tiny model: calibration identity, refusal of scored data, parity."""

from __future__ import annotations

import numpy as np
import pytest

import embedkit
from embedkit.errors import CalibrationDataError
from embedkit.models.calibration import CalibrationReader, calibration_set, check_source, evaluated_by
from embedkit.models.export import get_variant
from embedkit.models.parity import run_parity
from embedkit.quality import mirror


@pytest.fixture(scope="module")
def static_embedder(tiny_checkpoint, models_home, data_root):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMBEDKIT_MODELS", str(models_home))
        embedder = embedkit.load(str(tiny_checkpoint), "int8-static")
        yield embedder, run_parity(embedder)


def test_manifest_names_the_calibration_set(static_embedder, data_root):
    embedder, _ = static_embedder
    quantization = embedder.variant.manifest["options"]["quantization"]
    assert quantization["is_static"] and quantization["format"] == "QDQ" and quantization["per_channel"]
    assert quantization["extra_options"]["ActivationSymmetric"] is True
    assert quantization["source_variant"] == embedder.variant.manifest["derived_from"]["variant"] == "O2"
    calibration = quantization["calibration"]
    assert (
        calibration["method"] == "minmax"
        and calibration["texts"]
        == sum(source["texts_used"] for source in calibration["sources"]) + calibration["long_texts"]
    )
    for source in calibration["sources"]:
        for relative, digest in source["files"].items():
            assert digest == mirror.file_sha256(data_root / relative) and not evaluated_by(relative)
    assert "QuantizeLinear" in embedder.variant.manifest["graph"]["op_histogram"]
    # A GELU's output stays float: those MatMuls are listed and left unquantized.
    assert quantization["excluded_nodes"] and all("MatMul" in name for name in quantization["excluded_nodes"])


def test_its_parity_gate_runs_and_is_stored(static_embedder):
    embedder, parity = static_embedder
    assert parity["variant"] == "int8-static" and parity["gate"]["metric"] == "mean_cosine"
    assert -1.0 <= parity["min_cosine"] <= parity["mean_cosine"] <= 1.0
    assert embedder.variant.parity == parity
    again = get_variant(embedder.spec, "int8-static")
    assert again.directory == embedder.variant.directory  # exported once


@pytest.mark.parametrize(("source", "task"), [("stsbenchmark-test", "STSBenchmark"), ("sick-train", "SICK-R"),
                                              ("scifact-corpus", "SciFact")])  # fmt: skip
def test_a_scored_split_is_refused(source, task, data_root):
    with pytest.raises(CalibrationDataError, match=task):
        check_source(source)
    with pytest.raises(CalibrationDataError, match="evaluates"):
        calibration_set(("stsbenchmark-train", source))


def test_reader_feeds_embedder_shaped_batches(tiny_embedder, data_root):
    texts = calibration_set(size=40, long_texts=4).texts
    reader = CalibrationReader(texts, tiny_embedder.tokenizer, tiny_embedder.session.input_names, 16)
    feeds = list(iter(reader.get_next, None))
    assert len(feeds) == len(reader) == 3
    assert all(set(feed) == set(tiny_embedder.session.input_names) for feed in feeds)
    widths = [feed["input_ids"].shape[1] for feed in feeds]
    assert widths[0] == tiny_embedder.tokenizer.max_seq_length  # long texts first, truncated
    for feed in feeds:  # padded to the batch's longest text, not further
        assert feed["attention_mask"].sum(axis=1).max() == feed["input_ids"].shape[1]
    reader.rewind()
    np.testing.assert_array_equal(reader.get_next()["input_ids"], feeds[0]["input_ids"])
