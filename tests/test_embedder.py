import json
import re
import shutil
from dataclasses import replace

import numpy as np
import pytest

import embedkit
from embedkit.errors import ModelFileError
from embedkit.pipeline.embedder import STAGES, StageTimer

TEXTS = ["the cat", "a man is playing guitar in the snow field", "", "dog", "machine learning and pasta " * 3]


def test_output_shape_dtype_and_unit_norm(tiny_embedder):
    vectors = tiny_embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), tiny_embedder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_length_sorting_restores_the_callers_order(tiny_embedder):
    together = tiny_embedder.embed(TEXTS, batch_size=2)
    alone = np.vstack([tiny_embedder.embed([t], batch_size=1) for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    permutation = [3, 0, 4, 2, 1]
    np.testing.assert_allclose(tiny_embedder.embed([TEXTS[i] for i in permutation]), together[permutation], atol=1e-5)


def test_empty_input_and_empty_string(tiny_embedder):
    assert tiny_embedder.embed([]).shape == (0, tiny_embedder.dim)
    assert np.isfinite(tiny_embedder.embed([""])).all()


def test_non_str_raises_type_error_naming_the_index(tiny_embedder):
    with pytest.raises(TypeError, match="index 1 is NoneType"):
        tiny_embedder.embed(["ok", None])
    with pytest.raises(TypeError, match="index 0 is int"):
        tiny_embedder.embed([3])
    with pytest.raises(TypeError, match="not a single str"):
        tiny_embedder.embed("a bare string")
    with pytest.raises(ValueError, match="batch_size"):
        tiny_embedder.embed(["a"], batch_size=0)


def test_very_long_text_is_truncated_and_counted(tiny_embedder):
    result = tiny_embedder.embed_with_info(["the cat " * 12_500, "dog"])  # 100,000 characters
    assert result.n_truncated == 1
    assert np.isfinite(result.embeddings).all()


def test_timer_records_every_stage_per_batch_and_changes_nothing(tiny_embedder):
    timer = StageTimer()
    timed = tiny_embedder.embed(TEXTS, batch_size=2, timer=timer)
    assert set(timer.samples) == set(STAGES)
    assert all(len(timer.samples[stage]) == 3 and min(timer.samples[stage]) > 0 for stage in STAGES)
    np.testing.assert_array_equal(timed, tiny_embedder.embed(TEXTS, batch_size=2))


def test_prompt_prefix_from_the_spec(tiny_embedder):
    spec = replace(tiny_embedder.spec, prompts={"query": "what is "})
    prompted = embedkit.Embedder(
        tiny_embedder.tokenizer, tiny_embedder.session, "mean", True, spec, tiny_embedder.variant
    )
    np.testing.assert_allclose(
        prompted.embed(["the cat"], prompt_name="query"), tiny_embedder.embed(["what is the cat"]), atol=1e-6
    )
    with pytest.raises(KeyError, match="no prompt 'passage'"):
        prompted.embed(["x"], prompt_name="passage")


def test_tokenizer_larger_than_the_embedding_table_is_refused(tmp_path, tiny_checkpoint, isolated_models):
    checkpoint = tmp_path / "mismatched"
    shutil.copytree(tiny_checkpoint, checkpoint)
    tokenizer = json.loads((checkpoint / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    rows = len(vocab)  # the model's embedding table was built for this vocabulary
    vocab.update({f"extra{i}": rows + i for i in range(100)})
    (checkpoint / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(
        ModelFileError, match=f"mismatched/tokenizer.json has {rows + 100} tokens but .* embeds only {rows}"
    ):
        embedkit.load(str(checkpoint))


def test_checkpoint_without_pooling_config_is_a_clear_error(tmp_path, tiny_checkpoint, isolated_models):
    checkpoint = tmp_path / "no-pooling"
    shutil.copytree(tiny_checkpoint, checkpoint)
    shutil.rmtree(checkpoint / "1_Pooling")
    with pytest.raises(ModelFileError, match=re.escape("no-pooling/1_Pooling/config.json")):
        embedkit.load(str(checkpoint))


def test_describe_reports_requested_and_active_providers(tiny_embedder):
    described = tiny_embedder.describe()
    assert described["requested_providers"] == described["active_providers"] == ["CPUExecutionProvider"]
    assert described["pooling"] == "mean" and described["max_seq_length"] == 24


def test_a_load_resolves_the_models_files_once(tiny_checkpoint, isolated_models, monkeypatch):
    # For a hub model each resolution is a snapshot_download call: a load makes one.
    from embedkit.models import export, loading, sources

    calls = []
    real = sources.materialize

    def counting(spec):
        calls.append(spec.name)
        return real(spec)

    for module in (sources, loading, export):
        monkeypatch.setattr(module, "materialize", counting)
    embedkit.load(str(tiny_checkpoint), "int8")
    assert calls == [tiny_checkpoint.name]
