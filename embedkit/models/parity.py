"""The parity gate: a variant's embeddings against sentence-transformers on PyTorch, same checkpoint.

The sentence set covers what breaks exports: an empty string, one-word texts, unicode and emoji,
and texts longer than max_seq_length. The result is stored beside the variant; scoring refuses a
variant that failed unless forced.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from embedkit.pipeline.embedder import Embedder
from embedkit.errors import ParityError
from embedkit.models.export import PARITY, Variant, library_versions
from embedkit.models.sources import pytorch_checkpoint
from embedkit.models.specs import ModelSpec, reference_of

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
}


def reference_model(spec: ModelSpec):
    """sentence-transformers (PyTorch, CPU) on the spec's reference checkpoint."""
    reference = reference_of(spec)
    if reference is None:
        raise ParityError(f"{spec.name} ships only ONNX: there is no PyTorch checkpoint to compare with")
    return _sentence_transformer(str(pytorch_checkpoint(reference)), reference.trust_remote_code)


@lru_cache(maxsize=4)
def _sentence_transformer(checkpoint: str, trust_remote_code: bool):
    from sentence_transformers import SentenceTransformer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the checkpoint is local; never reach for the hub
    # use_safetensors: never fall back to unpickling a pytorch_model.bin lying beside the weights.
    return SentenceTransformer(
        checkpoint, device="cpu", trust_remote_code=trust_remote_code, model_kwargs={"use_safetensors": True}
    )


def reference_embeddings(spec: ModelSpec, texts: Sequence[str]) -> np.ndarray:
    model = reference_model(spec)
    return model.encode(list(texts), batch_size=32, convert_to_numpy=True, normalize_embeddings=True)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(axis=1)


def run_parity(embedder: Embedder, texts: Sequence[str] = PARITY_TEXTS) -> dict[str, Any]:
    """Compare, decide, and store the result beside the variant."""
    variant = embedder.variant
    similarity = cosines(embedder.embed(texts), reference_embeddings(embedder.spec, texts))
    metric, threshold = THRESHOLDS.get(variant.name, ("mean", 0.98))
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
        "reference": {"model": reference_of(embedder.spec).name, "libraries": library_versions(
            ("sentence-transformers", "torch", "transformers"))},
        "checked_at": datetime.now(timezone.utc).isoformat(),
    }
    (variant.directory / PARITY).write_text(json.dumps(result, indent=2, sort_keys=True))
    return result


def require_parity(variant: Variant, force: bool = False) -> bool:
    """True when the variant may be used for published results; False when it is forced past a failure."""
    parity = variant.parity
    if parity is None or parity["passed"]:
        return True
    if force:
        return False
    raise ParityError(
        f"{parity['model']}:{variant.name} failed the parity gate ({parity['gate']['metric']} "
        f"{parity['gate']['measured']:.6f} < {parity['gate']['threshold']}); pass force=True to use it anyway"
    )
