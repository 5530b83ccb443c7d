"""The mteb encoder around an embedkit embedder: mteb's encode calls become `Embedder.embed` calls with
the prompt mteb's own precedence picks from the model spec. Caching is a wrapper around it
(`embedkit.quality.cache`); this encoder always embeds."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import mteb
import numpy as np
from mteb.models import ModelMeta
from mteb.models.abs_encoder import AbsEncoder, get_prompt_name
from mteb.models.model_meta import ScoringFunction
from mteb.types import PromptType

from embedkit import defaults
from embedkit.pipeline.providers import short_name

if TYPE_CHECKING:
    from mteb.abstasks.task_metadata import TaskMetadata
    from mteb.types import BatchedInput
    from mteb.types._encoder_io import TextInput
    from torch.utils.data import DataLoader


class ModelSpecLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def prompts(self) -> Mapping[str, str]: ...


class VariantLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    @property
    def manifest(self) -> Mapping[str, Any]: ...

    @property
    def parity(self) -> Mapping[str, Any] | None: ...


class TokenizerLike(Protocol):
    @property
    def max_seq_length(self) -> int: ...


class EmbedderLike(Protocol):
    """What scoring needs from an embedder (embedkit's `Embedder`, or a test adapter)."""

    @property
    def spec(self) -> ModelSpecLike: ...

    @property
    def tokenizer(self) -> TokenizerLike: ...

    @property
    def variant(self) -> VariantLike: ...

    @property
    def dim(self) -> int: ...

    @property
    def providers(self) -> Sequence[str]: ...

    def embed(
        self, texts: list[str], batch_size: int = defaults.BATCH_SIZE, prompt_name: str | None = None
    ) -> np.ndarray: ...


# ModelSpec prompt keys that mteb calls differently (sentence-transformers says "passage").
_SPEC_TO_MTEB_PROMPT_KEY = {"passage": PromptType.document.value}


def model_meta_for(embedder: EmbedderLike) -> ModelMeta:
    """An mteb ModelMeta whose name and revision identify model, variant and provider.

    Result files live under <name>/<revision>/, so distinct variants or providers never overwrite
    each other. Descriptive fields are copied from mteb's registry entry for the model when it has
    one (the checkpoint the variant was exported from).
    """
    spec, variant = embedder.spec, embedder.variant
    identity: dict[str, Any] = {
        "name": f"embedkit/{spec.name.rsplit('/', 1)[-1]}",
        "revision": f"{variant.name}-{short_name(embedder.providers[0])}-{variant.sha256[:12]}",
        "loader": None,
        "loader_kwargs": {},
        "framework": ["ONNX"],
        "embed_dim": embedder.dim,
        "modalities": ["text"],
        "model_type": ["dense"],
    }
    registered = _registered_meta(spec.name)
    if registered is None:
        return ModelMeta.create_empty(
            overwrites={
                **identity,
                "similarity_fn_name": ScoringFunction.COSINE,
                "use_instructions": bool(spec.prompts),
                "max_tokens": getattr(spec, "max_seq_length", None),
            }
        )
    return registered.model_copy(
        update={
            **identity,
            "adapted_from": registered.name,
            "similarity_fn_name": registered.similarity_fn_name or ScoringFunction.COSINE,
            # measured for the registered (PyTorch) checkpoint, not for this variant
            "memory_usage_mb": None,
        }
    )


def _registered_meta(model_name: str) -> ModelMeta | None:
    """mteb's registry entry for `model_name`, matched exactly or by its part after the org.

    Specs of hub models are named "org--name" (a path-safe hub id).
    """
    metas = mteb.get_model_metas()
    hub_id = model_name.replace("--", "/", 1)
    exact = [meta for meta in metas if meta.name == hub_id]
    if exact:
        return exact[0]
    suffix = "/" + hub_id.rsplit("/", 1)[-1]
    matches = [meta for meta in metas if meta.name and meta.name.endswith(suffix)]
    return matches[0] if len(matches) == 1 else None


@dataclass(frozen=True)
class EncodeStats:
    """What an encoder did: texts mteb asked for, texts actually embedded, time spent embedding."""

    texts_requested: int = 0
    texts_encoded: int = 0
    encode_seconds: float = 0.0

    def __add__(self, other: EncodeStats) -> EncodeStats:
        return EncodeStats(
            self.texts_requested + other.texts_requested,
            self.texts_encoded + other.texts_encoded,
            self.encode_seconds + other.encode_seconds,
        )

    def since(self, earlier: EncodeStats) -> EncodeStats:
        return EncodeStats(
            self.texts_requested - earlier.texts_requested,
            self.texts_encoded - earlier.texts_encoded,
            self.encode_seconds - earlier.encode_seconds,
        )


def _texts_of(inputs: Iterable[BatchedInput]) -> list[str]:
    """The texts of mteb's batched inputs (text batches: the encoder declares the text modality only), in order."""
    return [text for batch in inputs for text in cast("TextInput", batch)["text"]]


def rows_for(texts: Sequence[str], vectors: Mapping[str, np.ndarray], dim: int) -> np.ndarray:
    """One float32 row per text (repeats included) from one vector per distinct text."""
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    return np.stack([vectors[text] for text in texts]).astype(np.float32, copy=False)


class TextEncoder(ABC):
    """mteb's `encode` in terms of `embed`: the batches' texts, with the prompt mteb's precedence picks."""

    @abstractmethod
    def prompt_name_for(self, task_metadata: TaskMetadata, prompt_type: PromptType | None) -> str | None:
        """The spec's prompt key that mteb's precedence picks for this task and prompt type (None: no prompt)."""

    @abstractmethod
    def embed(
        self, texts: list[str], *, prompt_name: str | None = None, batch_size: int = defaults.BATCH_SIZE
    ) -> np.ndarray:
        """One float32 row per text."""

    def encode(
        self,
        inputs: DataLoader[BatchedInput],
        *,
        task_metadata: TaskMetadata,
        hf_split: str,
        hf_subset: str,
        prompt_type: PromptType | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        prompt_name = self.prompt_name_for(task_metadata, prompt_type)
        batch_size = kwargs.get("batch_size", defaults.BATCH_SIZE)
        return self.embed(_texts_of(inputs), prompt_name=prompt_name, batch_size=batch_size)


class EmbedkitEncoder(TextEncoder, AbsEncoder):
    """mteb encoder around an embedkit embedder, with prompts from the model spec.

    The spec's prompts become mteb `model_prompts` ("passage" is mteb's "document"), so mteb's own
    precedence (task-query, task, type-query, type, query/document) picks the prompt for every
    encode call, as it does for sentence-transformers models.
    """

    mteb_model_meta: ModelMeta  # never None, unlike AbsEncoder's

    def __init__(self, embedder: EmbedderLike) -> None:
        self.model = embedder
        self.mteb_model_meta = model_meta_for(embedder)
        self.stats = EncodeStats()
        self.providers = list(embedder.providers)
        spec_keys = {_SPEC_TO_MTEB_PROMPT_KEY.get(key, key): key for key in embedder.spec.prompts}
        prompts, _ = self.validate_task_to_prompt_name(
            {mteb_key: embedder.spec.prompts[key] for mteb_key, key in spec_keys.items()},
            raise_for_invalid_keys=False,
        )
        self.model_prompts = prompts
        self._spec_prompt_keys = {mteb_key: spec_keys[mteb_key] for mteb_key in prompts or {}}

    def prompt_name_for(self, task_metadata: TaskMetadata, prompt_type: PromptType | None) -> str | None:
        mteb_key = get_prompt_name(self.model_prompts, task_metadata, prompt_type)
        return self._spec_prompt_keys[mteb_key] if mteb_key else None

    def prompt(self, prompt_name: str | None) -> str | None:
        """The text the spec's prompt `prompt_name` puts before each text."""
        return self.model.spec.prompts[prompt_name] if prompt_name else None

    def embed(
        self, texts: list[str], *, prompt_name: str | None = None, batch_size: int = defaults.BATCH_SIZE
    ) -> np.ndarray:
        """Embeddings of `texts`; the embedder gets each distinct text once, in first-seen order."""
        distinct = list(dict.fromkeys(texts))
        seconds = 0.0
        vectors: dict[str, np.ndarray] = {}
        if distinct:
            started = time.perf_counter()
            embedded = self.model.embed(distinct, batch_size=batch_size, prompt_name=prompt_name)
            seconds = time.perf_counter() - started
            vectors = dict(zip(distinct, np.asarray(embedded, dtype=np.float32), strict=True))
        self.stats += EncodeStats(len(texts), len(distinct), seconds)
        return rows_for(texts, vectors, self.model.dim)
