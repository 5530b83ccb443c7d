"""The parity gate: a variant's embeddings against sentence-transformers on PyTorch, same checkpoint.

The sentence set covers what breaks exports: an empty string, one-word texts, unicode and emoji,
and texts longer than max_seq_length. The result is stored beside the variant; scoring refuses a
variant that failed unless forced.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

import numpy as np

from embedkit import defaults
from embedkit.errors import ParityError
from embedkit.models.export import PARITY
from embedkit.models.sources import pytorch_checkpoint
from embedkit.models.specs import ModelSpec, reference_of
from embedkit.models.twins import refuse_random
from embedkit.pipeline.embedder import Embedder
from embedkit.pipeline.pooling import l2_normalize
from embedkit.system import package_versions, utc_now

REFERENCE_LIBRARIES = ("sentence-transformers", "torch", "transformers")
_LONG = (
    "The quick brown fox jumps over the lazy dog while the committee reviews the quarterly report on "
    "renewable energy adoption, supply chain resilience and the long-term effects of monetary policy. "
)
PARITY_TEXTS: tuple[str, ...] = (
    "",
    "a",
    "cat",
    "Embeddings",
    "What is machine learning?",
    "machine learning algorithms",
    "artificial intelligence methods",
    "cooking italian pasta",
    "A man is playing a guitar on the stage.",
    "Two dogs are running through a snowy field.",
    "The stock market fell sharply after the central bank raised interest rates.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "How do I reset my card PIN at an ATM?",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "東京は日本の首都です。",
    "Ελληνικά κείμενα με τόνους και διαλυτικά ϊ ΰ",
    "مرحبا بالعالم",
    "emoji 😀🚀🔥 and symbols ©®™ ∑∫√",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\ninside",
    "UPPER CASE SHOUTING TEXT!!!",
    "numbers 3.14159 2.71828 1e-9 42",
    "https://example.org/path?query=1&other=two#anchor",
    "e-mail: someone@example.com, phone +1 (555) 010-9999",
    "def f(x): return x ** 2  # code snippet",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    _LONG * 2,
    _LONG * 8,
    _LONG * 30,
    " ".join(["token"] * 600),
)

# Minimum cosine to the reference, per variant: optimisations that only fuse ops must be exact to
# float rounding; O3 adds approximate GELU; fp16 and int8 are judged on the mean (their min is
# dominated by the hardest text). Per-tensor int8 is lossy by construction (MiniLM-L6 reaches a mean
# of about 0.94): its gate catches a broken quantisation, and MTEB scoring measures what it costs.
THRESHOLDS: dict[str, tuple[str, float]] = {
    "fp32": ("min", 0.99999),
    "O1": ("min", 0.99999),
    "O2": ("min", 0.99999),
    "O3": ("min", 0.9999),
    "O4": ("mean", 0.999),
    "fp16": ("mean", 0.999),
    "int8": ("mean", 0.90),
    "int8-pc": ("mean", 0.98),
    "int8-static": ("mean", 0.98),
}


def gate_of(variant: str) -> tuple[str, float]:
    """A variant's parity gate, (metric, threshold): its own, or a mean of 0.98 for a variant not listed."""
    return THRESHOLDS.get(variant, ("mean", 0.98))


def reference_model(spec: ModelSpec) -> Any:
    """sentence-transformers (PyTorch, CPU) on the spec's reference checkpoint."""
    reference = reference_of(spec)
    if reference is None:
        raise ParityError(f"{spec.name} ships only ONNX: there is no PyTorch checkpoint to compare with")
    return _sentence_transformer(str(pytorch_checkpoint(reference)), reference.trust_remote_code)


@lru_cache(maxsize=4)
def _sentence_transformer(checkpoint: str, trust_remote_code: bool) -> Any:
    from sentence_transformers import SentenceTransformer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the checkpoint is local; never reach for the hub
    # use_safetensors: never fall back to unpickling a pytorch_model.bin lying beside the weights.
    return SentenceTransformer(
        checkpoint, device="cpu", trust_remote_code=trust_remote_code, model_kwargs={"use_safetensors": True}
    )


def reference_embeddings(spec: ModelSpec, texts: Sequence[str]) -> np.ndarray:
    model = reference_model(spec)
    vectors = model.encode(
        list(texts), batch_size=defaults.BATCH_SIZE, convert_to_numpy=True, normalize_embeddings=True
    )
    return np.asarray(vectors, dtype=np.float32)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (n, dim) arrays."""
    return np.asarray((l2_normalize(a) * l2_normalize(b)).sum(axis=1))


def run_parity(embedder: Embedder, texts: Sequence[str] = PARITY_TEXTS) -> dict[str, Any]:
    """Compare, decide, and store the result beside the variant."""
    refuse_random(embedder.spec, "parity")
    variant = embedder.variant
    reference = reference_of(embedder.spec)
    if reference is None:
        raise ParityError(f"{embedder.spec.name} ships only ONNX: there is no PyTorch checkpoint to compare with")
    similarity = cosines(embedder.embed(texts), reference_embeddings(embedder.spec, texts))
    metric, threshold = gate_of(variant.name)
    measured = float(similarity.min() if metric == "min" else similarity.mean())
    result = {
        "model": embedder.spec.name,
        "variant": variant.name,
        "variant_sha256": variant.sha256,
        "provider": embedder.providers[0],
        "passed": bool(measured >= threshold),
        "gate": {"metric": f"{metric}_cosine", "threshold": threshold, "measured": measured},
        "min_cosine": float(similarity.min()),
        "mean_cosine": float(similarity.mean()),
        "worst_text": texts[int(similarity.argmin())][:80],
        "n_texts": len(texts),
        "reference": {"model": reference.name, "libraries": package_versions(REFERENCE_LIBRARIES)},
        "checked_at": utc_now(),
    }
    (variant.directory / PARITY).write_text(json.dumps(result, indent=2, sort_keys=True))
    return result


class Gated(Protocol):
    """Anything with a variant's name and stored parity result (a Variant, or a stand-in for one)."""

    @property
    def name(self) -> str: ...

    @property
    def parity(self) -> Mapping[str, Any] | None: ...


def require_parity(variant: Gated, force: bool = False) -> bool:
    """True when the variant may be used for published results; False when it is forced past a failure."""
    parity = variant.parity
    if parity is None or parity.get("passed") is True:
        return True
    if force:
        return False
    gate = parity.get("gate", {})
    raise ParityError(
        f"variant {variant.name} failed the parity gate ({gate.get('metric')} {gate.get('measured')} < "
        f"{gate.get('threshold')}); pass force=True to use it anyway"
    )
