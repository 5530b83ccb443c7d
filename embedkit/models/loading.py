"""The front door: `load(model, variant, provider)` -> a ready Embedder.

A load resolves the model's files once (`ModelFiles`: for a hub model each resolution is a
`snapshot_download` call) and hands them to every step that reads them: the export, the tokenizer,
the pooling configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedkit import defaults
from embedkit.errors import ModelFileError
from embedkit.models.export import Variant, get_variant
from embedkit.models.sources import materialize, read_json
from embedkit.models.specs import ModelSpec, get_spec
from embedkit.models.twins import resolve_spec, with_weights
from embedkit.pipeline.embedder import Embedder
from embedkit.pipeline.pooling import read_pooling_mode
from embedkit.pipeline.session import OrtSession, SessionConfig
from embedkit.pipeline.tokenizer import Tokenizer, read_max_seq_length
from embedkit.system import file_sha256

# sentence-transformers' own default when a checkpoint does not say.
DEFAULT_MAX_SEQ_LENGTH = 512


@dataclass(frozen=True)
class ModelFiles:
    """A model's files on this machine, resolved (fetched if need be) once."""

    spec: ModelSpec
    directory: Path  # the checkpoint, or the directory of the ONNX file a source ships
    tokenizer_directory: Path  # where its tokenizer.json (and sentence_bert_config.json) live

    @classmethod
    def of(cls, spec: ModelSpec, weights: str = defaults.DEFAULT_WEIGHTS) -> ModelFiles:
        """`spec`'s files; with `weights="random"`, its architecture twin's (built once)."""
        spec = with_weights(spec, weights)
        directory = materialize(spec)
        tokenizer_directory = materialize(get_spec(spec.tokenizer_from)) if spec.tokenizer_from else directory
        return cls(spec, directory, tokenizer_directory)

    def pooling_mode(self) -> str:
        """The spec's pooling, else the checkpoint's 1_Pooling/config.json; never a silent default."""
        if self.spec.pooling:
            return self.spec.pooling
        config = self.directory / "1_Pooling" / "config.json"
        if not config.is_file():
            raise ModelFileError(f"{self.spec.name}: no pooling in the spec and no {config}; set the spec's pooling")
        content = read_json(config, "pooling config")
        if not isinstance(content, dict):
            raise ModelFileError(f"pooling config {config} is a JSON {type(content).__name__}, not an object")
        try:
            return read_pooling_mode(content)
        except ValueError as exc:
            raise ModelFileError(f"pooling config {config}: {exc}") from exc

    def max_seq_length(self, variant: Variant) -> int:
        """The spec's, else the checkpoint's max_seq_length, never beyond the graph's position table."""
        declared = self.spec.max_seq_length or read_max_seq_length(self.tokenizer_directory) or DEFAULT_MAX_SEQ_LENGTH
        positions = variant.manifest["graph"].get("max_positions")
        return min(declared, positions) if positions else declared

    def tokenizer(self, variant: Variant) -> Tokenizer:
        """The tokenizer `variant` is fed by, truncating at the model's max_seq_length, with token_type_ids
        when the graph takes them (its manifest says which inputs it takes)."""
        tokenizer_file = self.tokenizer_directory / "tokenizer.json"
        with_token_type_ids = "token_type_ids" in variant.manifest["graph"]["inputs"]
        tokenizer = Tokenizer.from_file(tokenizer_file, self.max_seq_length(variant), with_token_type_ids)
        rows = variant.manifest["graph"].get("embedding_rows")
        if rows is not None and tokenizer.vocab_size > rows:
            raise ModelFileError(
                f"tokenizer {tokenizer_file} has {tokenizer.vocab_size} tokens but {variant.path} embeds only "
                f"{rows}: they do not belong together"
            )
        return tokenizer


def load(
    model: str | ModelSpec = defaults.DEFAULT_MODEL,
    variant: str | None = None,
    provider: str = defaults.DEFAULT_PROVIDER,
    *,
    fallback: str | None = None,
    graph_optimization: str = "all",
    intra_op_threads: int | None = None,
    inter_op_threads: int | None = None,
    enable_profiling: bool = False,
    spinning: str = defaults.SPINNING,
    weights: str = defaults.DEFAULT_WEIGHTS,
    **provider_options: Any,
) -> Embedder:
    """An Embedder for `model` (spec name, local dir or hub id), exporting `variant` on first use.

    `weights="random"`: the model's architecture twin (embedkit.models.twins), for latency only.
    """
    files = ModelFiles.of(resolve_spec(model, weights))
    spec = files.spec
    chosen = get_variant(spec, variant or spec.packaged_variant, directory=files.directory)
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
    return embedder_for(spec, chosen, OrtSession(chosen.path, config), files)


def embedder_for(
    spec: ModelSpec,
    variant: Variant,
    session: OrtSession,
    files: ModelFiles | None = None,
    tokenizer: Tokenizer | None = None,
    weights: str = defaults.DEFAULT_WEIGHTS,
) -> Embedder:
    """An Embedder around a session already created on `variant` (the profiler times that creation).

    `files`: the model's files, when the caller has resolved them; `tokenizer`: one the caller already
    built for this variant (`ModelFiles.tokenizer`); `weights`: as for `load`, when `files` is not given.
    """
    files = files or ModelFiles.of(spec, weights)
    spec = files.spec
    return Embedder(tokenizer or files.tokenizer(variant), session, files.pooling_mode(), spec.normalize, spec, variant)


def weights_and_tokenizer(spec: ModelSpec, tokenizer: Tokenizer) -> dict[str, Any]:
    """What a record says about the model's weights and what produced its input ids (`record["model"]`)."""
    source = spec.tokenizer_source or f"{spec.tokenizer_from or spec.name} tokenizer.json"
    facts: dict[str, Any] = {"source": source}
    if tokenizer.source is not None and Path(tokenizer.source).is_file():
        facts["sha256"] = file_sha256(Path(tokenizer.source))
    return {"weights": spec.weights.to_record(), "tokenizer": facts}
