"""The bench's sentence-transformers alternatives build on a checkpoint and are checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedkit.latency.contenders import (
    ST_ONNX,
    ST_TORCH,
    Contender,
    check_parity,
    sentence_transformers_alternatives,
    st_contender,
)
from embedkit.models.export import detect_quantization_arch

TEXTS = ["the cat is playing", "a man and a dog in the snow field", "how do i reset my card pin", ""]


@pytest.fixture(scope="session")
def alternatives(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    from sentence_transformers import SentenceTransformer

    reference = st_contender(ST_TORCH, SentenceTransformer(str(tiny_checkpoint), device="cpu"), "torch")
    built, unavailable = sentence_transformers_alternatives(
        tiny_checkpoint, tmp_path_factory.mktemp("st-work"), detect_quantization_arch(), openvino=False
    )
    return reference, built, unavailable


# OpenVINO's export of even the tiny model costs tens of seconds here: the real bench builds it, this test does not.
def test_onnx_and_int8_backends_build_in_a_copy_and_their_parity_runs(alternatives, tiny_checkpoint) -> None:
    reference, built, _ = alternatives
    names = [c.name for c in built]
    assert names[0] == ST_ONNX and names[1].startswith(f"{ST_ONNX} ") and names[1].endswith(detect_quantization_arch())
    assert not (tiny_checkpoint / "onnx").exists()  # the export went into the copy
    vectors = reference.vectors(TEXTS)
    for contender in built:
        parity = check_parity(contender, TEXTS, vectors)
        assert 0.0 < parity["min_cosine"] <= parity["mean_cosine"] <= 1.0 + 1e-6
        assert parity["gate"]["metric"] in ("min_cosine", "mean_cosine") and contender.timed is parity["passed"]
    onnx = built[0]
    assert onnx.parity["passed"] and onnx.parity["min_cosine"] > 0.99999  # the same graph, exported by optimum
    assert onnx.model_path is not None and onnx.model_path.is_file() and built[1].model_path.is_file()


def test_a_contender_whose_vectors_are_wrong_fails_its_parity_and_is_not_timed() -> None:
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((4, 8)).astype(np.float32)
    wrong = Contender("wrong", "sentence-transformers", call=lambda texts: None,
                      vectors=lambda texts: rng.standard_normal((len(texts), 8)), gate=("mean", 0.98))  # fmt: skip
    parity = check_parity(wrong, TEXTS, reference)
    assert parity["passed"] is False and wrong.timed is False
