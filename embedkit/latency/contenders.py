"""What `embedkit bench` times: embedkit's variants, raw `session.run`, and what people pick instead.

sentence-transformers on PyTorch is the reference. Beside it stand the alternatives a user reaches
for when they want speed: its ONNX backend (`SentenceTransformer(path, backend="onnx")`, which exports
the checkpoint itself when it holds no ONNX file — done in a temporary copy, so the checkpoint in
`models/` stays as it is), that export's dynamic int8 quantization for this CPU
(`export_dynamic_quantized_onnx_model(model, arch, path)`), and its OpenVINO backend when
optimum-intel and openvino are installed. Each keeps its library's defaults.

Before anything is timed, every contender's vectors are compared with the reference's on the parity
texts (min and mean cosine), against the gate of the embedkit variant it corresponds to: a
contender that fails is reported and not timed, so nothing wins by being wrong.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedkit import defaults
from embedkit.models.parity import cosines, gate_of
from embedkit.pipeline.embedder import Embedder

EMBEDKIT, RAW, ST = "embedkit", "raw session.run", "sentence-transformers"
ST_TORCH = f"{ST} torch"
ST_ONNX = f"{ST} onnx"
ST_OPENVINO = f"{ST} openvino"
# The embedkit variant whose parity gate each sentence-transformers backend is judged by.
ST_GATES = {"torch": "fp32", "onnx": "fp32", "onnx-int8": "int8-pc", "openvino": "fp32"}
OPENVINO_MODULES = ("optimum.intel", "openvino")


@dataclass
class Contender:
    """One way to embed texts: `call` is what is timed, `vectors` what parity compares (None: no vectors)."""

    name: str
    family: str  # EMBEDKIT, RAW or ST
    call: Callable[[list[str]], Any]
    vectors: Callable[[list[str]], np.ndarray] | None = None
    gate: tuple[str, float] | None = None
    model_path: Path | None = None  # its ONNX graph, for the physical bound
    parity: dict[str, Any] | None = field(default=None)

    @property
    def timed(self) -> bool:
        """Whether it is timed: it passed its parity check, or it has no vectors of its own (raw)."""
        return self.parity is None or bool(self.parity["passed"])


def check_parity(contender: Contender, texts: Sequence[str], reference: np.ndarray) -> dict[str, Any]:
    """Cosines of the contender's vectors to the reference vectors, judged by its gate; stored on it."""
    if contender.vectors is None or contender.gate is None:
        raise ValueError(f"{contender.name} has no vectors or no gate to check")
    similarity = cosines(np.asarray(contender.vectors(list(texts)), dtype=np.float32), reference)
    metric, threshold = contender.gate
    measured = float(similarity.min() if metric == "min" else similarity.mean())
    contender.parity = {
        "min_cosine": float(similarity.min()),
        "mean_cosine": float(similarity.mean()),
        "gate": {"metric": f"{metric}_cosine", "threshold": threshold, "measured": measured},
        "passed": measured >= threshold,
        "n_texts": len(texts),
    }
    return contender.parity


def embedkit_contender(embedder: Embedder) -> Contender:
    variant = embedder.variant
    return Contender(f"{EMBEDKIT} {variant.name}", EMBEDKIT, embedder.embed, embedder.embed, gate_of(variant.name),
                     variant.path)  # fmt: skip


def raw_contender(embedder: Embedder, text: str) -> Contender:
    """`session.run` on one pre-tokenized text: the floor under embedkit's pipeline (single text only)."""
    feeds = embedder.feeds(embedder.tokenizer.encode([text]))
    return Contender(f"{RAW} ({embedder.variant.name})", RAW, lambda _texts: embedder.session.run(feeds),
                     model_path=embedder.variant.path)  # fmt: skip


def st_contender(name: str, model: Any, backend: str, model_path: Path | None = None) -> Contender:
    def call(texts: list[str]) -> Any:
        return model.encode(texts, batch_size=defaults.BATCH_SIZE, convert_to_numpy=True)

    def vectors(texts: list[str]) -> np.ndarray:
        return np.asarray(model.encode(texts, batch_size=defaults.BATCH_SIZE, convert_to_numpy=True,
                                       normalize_embeddings=True))  # fmt: skip

    return Contender(name, ST, call, vectors, gate_of(ST_GATES[backend]), model_path)


def _onnx_file(model: Any) -> Path:
    return Path(model[0].auto_model.path)


def sentence_transformers_alternatives(
    checkpoint: Path, work: Path, quantization_arch: str, trust_remote_code: bool = False, openvino: bool = True
) -> tuple[list[Contender], dict[str, str]]:
    """sentence-transformers' ONNX, ONNX int8 and (`openvino`) OpenVINO backends on a copy of `checkpoint` in `work`.

    Returns the contenders and, per backend that could not be built, why (OpenVINO without its packages).
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the checkpoint is local; never reach for the hub
    copy = work / checkpoint.name
    shutil.copytree(checkpoint, copy, ignore=shutil.ignore_patterns("onnx", "openvino", "*.onnx"))

    def load(backend: str, **model_kwargs: Any) -> Any:
        return SentenceTransformer(str(copy), backend=backend, device="cpu", trust_remote_code=trust_remote_code,
                                   model_kwargs=model_kwargs)  # fmt: skip

    onnx_model = load("onnx")
    export_dynamic_quantized_onnx_model(onnx_model, quantization_arch, str(copy))
    # sentence-transformers names the file after the preset's weight type: model_qint8_avx512_vnni.onnx, …
    (quantized,) = sorted((copy / "onnx").glob(f"model_*_{quantization_arch}.onnx"))
    int8_model = load("onnx", file_name=f"onnx/{quantized.name}")
    contenders = [
        st_contender(ST_ONNX, onnx_model, "onnx", _onnx_file(onnx_model)),
        st_contender(f"{ST_ONNX} {quantized.stem.removeprefix('model_')}", int8_model, "onnx-int8", quantized),
    ]
    unavailable: dict[str, str] = {}
    if not openvino:
        return contenders, unavailable
    missing = [module for module in OPENVINO_MODULES if importlib.util.find_spec(module.split(".")[0]) is None
               or importlib.util.find_spec(module) is None]  # fmt: skip
    if missing:
        unavailable["openvino"] = f"not installed: {', '.join(missing)} (pip install 'optimum-intel[openvino]')"
    else:
        contenders.append(st_contender(ST_OPENVINO, load("openvino"), "openvino"))
    return contenders, unavailable
