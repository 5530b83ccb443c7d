"""No remote code unless a spec asks for it, and no pickle is ever loaded from disk.

A static scan of the package keeps pickle loaders (and hard-wired `trust_remote_code=True`) out of
the source; behavioural tests check what the loading entry points are actually given, and that a
pickle planted in a checkpoint is refused or ignored without being unpickled.
"""

from __future__ import annotations

import ast
import pickle
import shutil
from dataclasses import replace
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest

import embedkit
from embedkit.errors import ModelFileError
from embedkit.models import parity, sources
from embedkit.models.export import get_variant
from embedkit.models.specs import HubSource, ModelSpec, local_spec

PACKAGE = Path(embedkit.__file__).parent
# Modules whose only purpose is (un)pickling: the package needs none of them.
PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
PICKLE_CALLS = {"torch.load", "read_pickle"}  # dotted call names, or a bare attribute name
NUMPY_LOADS = {"np.load", "numpy.load"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _unsafe_call(call: ast.Call) -> str | None:
    name = _dotted(call.func)
    keywords = {keyword.arg: keyword.value for keyword in call.keywords}
    if name in PICKLE_CALLS or name.rsplit(".", 1)[-1] in PICKLE_CALLS:
        return f"{name}()"
    allow_pickle = keywords.get("allow_pickle")
    if name in NUMPY_LOADS and not (isinstance(allow_pickle, ast.Constant) and allow_pickle.value is False):
        return f"{name}() without allow_pickle=False"
    trust = keywords.get("trust_remote_code")
    if isinstance(trust, ast.Constant) and trust.value is True:
        return f"{name}(trust_remote_code=True)"
    return None


def unsafe_loading(source: str) -> list[str]:
    """Pickle-loading imports and calls, and hard-wired trust_remote_code=True, as 'line N: what'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            modules = []
        found += [f"line {node.lineno}: import {m}" for m in modules if m.split(".")[0] in PICKLE_MODULES]
        found += [f"line {node.lineno}: from-import {m}" for m in modules if m in PICKLE_CALLS]
        if isinstance(node, ast.Call) and (what := _unsafe_call(node)):
            found.append(f"line {node.lineno}: {what}")
    return found


@pytest.mark.parametrize(
    "snippet",
    [
        "import pickle\npickle.loads(b'')",
        "from joblib import load",
        "import torch\ntorch.load('w.bin', weights_only=True)",
        "from torch import load",
        "import pandas as pd\npd.read_pickle('x.pkl')",
        "import numpy as np\nnp.load('x.npy')",
        "import numpy\nnumpy.load('x.npy', allow_pickle=True)",
        "AutoModel.from_pretrained('m', trust_remote_code=True)",
    ],
)
def test_the_scan_finds_each_kind_of_unsafe_load(snippet):
    assert unsafe_loading(snippet)


def test_the_scan_passes_safe_loads():
    assert unsafe_loading("import numpy as np\nnp.load('x.npy', allow_pickle=False)\nf(trust_remote_code=spec.x)") == []


def test_the_package_loads_no_pickle_and_never_hard_wires_remote_code():
    findings = {
        str(path.relative_to(PACKAGE)): found
        for path in sorted(PACKAGE.rglob("*.py"))
        if (found := unsafe_loading(path.read_text(encoding="utf-8")))
    }
    assert findings == {}


# --- trust_remote_code reaches every loader as the spec says ----------------------------------


class _Recorded(Exception):
    """Raised by a stand-in loader once it has recorded its call, so nothing heavy runs."""


def _recorder(calls: list[dict[str, Any]]):
    def record(*args: Any, **kwargs: Any):
        calls.append(kwargs)
        raise _Recorded

    return record


@pytest.fixture
def checkpoint(tmp_path: Path, tiny_checkpoint: Path) -> Path:
    """A private copy of the tiny checkpoint: a fresh path, so no cached export or reference model applies."""
    return Path(shutil.copytree(tiny_checkpoint, tmp_path / "copy"))


@pytest.mark.parametrize("trust", [None, True], ids=["spec-default", "spec-opts-in"])
def test_export_and_reference_get_the_specs_trust_remote_code(checkpoint, isolated_models, monkeypatch, trust):
    import optimum.exporters.onnx
    import sentence_transformers

    spec = local_spec(checkpoint) if trust is None else replace(local_spec(checkpoint), trust_remote_code=trust)
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(optimum.exporters.onnx, "main_export", _recorder(calls))
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", _recorder(calls))
    with pytest.raises(_Recorded):
        get_variant(spec, "fp32")
    with pytest.raises(_Recorded):
        parity.reference_model(spec)
    assert [call["trust_remote_code"] for call in calls] == [trust is True] * 2
    assert calls[1]["model_kwargs"] == {"use_safetensors": True}


@pytest.mark.parametrize("trust", [False, True])
def test_hub_fetches_code_only_for_a_trusting_spec_and_never_pickles(tmp_path, isolated_models, monkeypatch, trust):
    import huggingface_hub

    patterns: list[str] = []
    monkeypatch.setattr(
        huggingface_hub,
        "snapshot_download",
        lambda repo_id, **kwargs: patterns.extend(kwargs["allow_patterns"]) or str(tmp_path),
    )
    sources.materialize(ModelSpec("remote", HubSource("org/remote"), "MIT", trust_remote_code=trust))
    assert any(fnmatch("modeling_remote.py", p) for p in patterns) is trust
    assert not any(fnmatch(name, p) for p in patterns for name in ("pytorch_model.bin", "model.pt", "x.pkl"))


# --- a planted pickle is never unpickled ------------------------------------------------------


class _TouchOnUnpickle:
    """Unpickling this creates `marker`: the marker's existence proves a loader ran the pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def _plant_pickle(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(_TouchOnUnpickle(marker)))


@pytest.mark.parametrize("planted", ["pytorch_model.bin", "2_Dense/pytorch_model.bin", "model.pt"])
def test_pickle_only_weights_are_refused_unread(checkpoint, tmp_path, isolated_models, planted):
    marker = tmp_path / "unpickled"
    if "/" not in planted:
        (checkpoint / "model.safetensors").unlink()
    _plant_pickle(checkpoint / planted, marker)
    message = rf"copy/{planted} is a pickle and .* has no safetensors weights beside it"
    with pytest.raises(ModelFileError, match=message):
        get_variant(local_spec(checkpoint), "fp32")
    with pytest.raises(ModelFileError, match=message):
        parity.reference_model(local_spec(checkpoint))
    assert not marker.exists()


def test_a_pickle_beside_safetensors_weights_is_ignored(checkpoint, tmp_path, tiny_embedder):
    marker = tmp_path / "unpickled"
    _plant_pickle(checkpoint / "pytorch_model.bin", marker)
    reference = parity.reference_model(local_spec(checkpoint))
    assert reference.encode(["the cat"]).shape == (1, tiny_embedder.dim)
    assert not marker.exists()
