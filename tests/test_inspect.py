from embedkit.models.inspect import COREML_MAX_DIMENSION, coreml_report, graph_facts, oversized_tensors


def test_minilm_graph_facts(minilm):
    facts = graph_facts(minilm.variant.path)
    assert facts["embedding_rows"] == 30522 and facts["max_positions"] == 512
    assert facts["hidden_size"] == 384 and facts["layers"] == 6
    assert 22_000_000 < facts["parameters"] < 23_000_000
    assert facts["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert facts["op_histogram"]["MatMul"] > 0 and facts["opset"] >= 14


def test_coreml_rejects_the_30522_row_vocabulary(minilm):
    """The seed plan said 30,522 < 16,384 fits CoreML. It does not: the word-embedding Gather runs on CPU."""
    assert COREML_MAX_DIMENSION < 30522
    assert "embeddings.word_embeddings.weight" in oversized_tensors(minilm.variant.path)
    report = coreml_report(minilm.variant.path)
    for label in ("CoreML MLProgram", "CoreML NeuralNetwork"):
        assert any("word_embeddings" in node for node in report[label]["rejected_for_dimension"])
        assert report[label]["supported_nodes"] < report[label]["nodes"]
        assert report[label]["partitions"] >= 2
    assert report["NNAPI"]["rejected_for_dimension"] == []  # the rule is CoreML's


def test_tiny_model_has_nothing_oversized(tiny_embedder):
    assert oversized_tensors(tiny_embedder.variant.path) == {}
    report = coreml_report(tiny_embedder.variant.path)
    assert report["CoreML MLProgram"]["rejected_for_dimension"] == []
