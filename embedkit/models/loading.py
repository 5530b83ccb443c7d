"""The front door: `load(model, variant, provider)` -> a ready Embedder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedkit.pipeline.embedder import Embedder
from embedkit.errors import ModelFileError
from embedkit.models.export import Variant, get_variant
from embedkit.pipeline.pooling import read_pooling_mode
from embedkit import defaults
from embedkit.pipeline.session import OrtSession, SessionConfig
from embedkit.models.sources import materialize, read_json
from embedkit.models.specs import ModelSpec, get_spec
from embedkit.pipeline.tokenizer import Tokenizer, read_max_seq_length

# sentence-transformers' own default when a checkpoint does not say.
DEFAULT_MAX_SEQ_LENGTH = 512


def tokenizer_dir(spec: ModelSpec) -> Path:
    """The directory whose tokenizer.json this model uses."""
    return materialize(get_spec(spec.tokenizer_from)) if spec.tokenizer_from else materialize(spec)


def pooling_mode(spec: ModelSpec) -> str:
    """The spec's pooling, else the checkpoint's 1_Pooling/config.json; never a silent default."""
    if spec.pooling:
        return spec.pooling
    config = materialize(spec) / "1_Pooling" / "config.json"
    if not config.is_file():
        raise ModelFileError(f"{spec.name}: no pooling in the spec and no {config}; set the spec's pooling")
    content = read_json(config, "pooling config")
    if not isinstance(content, dict):
        raise ModelFileError(f"pooling config {config} is a JSON {type(content).__name__}, not an object")
    try:
        return read_pooling_mode(content)
    except ValueError as exc:
        raise ModelFileError(f"pooling config {config}: {exc}") from exc


def max_seq_length(spec: ModelSpec, variant: Variant) -> int:
    declared = spec.max_seq_length or read_max_seq_length(tokenizer_dir(spec)) or DEFAULT_MAX_SEQ_LENGTH
    positions = variant.manifest["graph"].get("max_positions")
    return min(declared, positions) if positions else declared


def load(
    model: str | ModelSpec = "all-MiniLM-L6-v2",
    variant: str | None = None,
    provider: str = "CPU",
    *,
    fallback: str | None = None,
    graph_optimization: str = "all",
    intra_op_threads: int | None = None,
    inter_op_threads: int | None = None,
    enable_profiling: bool = False,
    spinning: str = defaults.SPINNING,
    **provider_options: Any,
) -> Embedder:
    """An Embedder for `model` (spec name, local dir or hub id), exporting `variant` on first use."""
    spec = model if isinstance(model, ModelSpec) else get_spec(model)
    chosen = get_variant(spec, variant or spec.packaged_variant)
    config = SessionConfig(
        provider=provider,
        provider_options=provider_options,
        fallback=fallback,
        graph_optimization=graph_optimization,
        intra_op_threads=intra_op_threads,
        inter_op_threads=inter_op_threads,
        enable_profiling=enable_profiling,
        spinning=spinning,
    )
    return embedder_for(spec, chosen, OrtSession(chosen.path, config))


def embedder_for(spec: ModelSpec, variant: Variant, session: OrtSession) -> Embedder:
    """An Embedder around a session already created on `variant` (the profiler times that creation)."""
    tokenizer = tokenizer_for(spec, variant, with_token_type_ids="token_type_ids" in session.input_names)
    return Embedder(tokenizer, session, pooling_mode(spec), spec.normalize, spec, variant)


def tokenizer_for(spec: ModelSpec, variant: Variant, with_token_type_ids: bool = True) -> Tokenizer:
    """The tokenizer `variant` is fed by, truncating at the model's max_seq_length."""
    tokenizer_file = tokenizer_dir(spec) / "tokenizer.json"
    tokenizer = Tokenizer.from_file(tokenizer_file, max_seq_length(spec, variant), with_token_type_ids)
    rows = variant.manifest["graph"].get("embedding_rows")
    if rows is not None and tokenizer.vocab_size > rows:
        raise ModelFileError(
            f"tokenizer {tokenizer_file} has {tokenizer.vocab_size} tokens but {variant.path} embeds only {rows}: "
            "they do not belong together"
        )
    return tokenizer
