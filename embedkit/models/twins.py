"""Architecture twins: a model's graph with random weights, built from its bundled config alone.

An ONNX graph's latency depends on its architecture, variant, provider and input shapes, not on its
weight values, so a twin measures a model's latency without its checkpoint. A twin is built once with
transformers' `AutoModel.from_config` under a fixed, recorded seed, saved as a sentence-transformers
checkpoint (weights, pooling, Normalize, max_seq_length, tokenizer) in
`models/twins/<name>-<config sha16>/seed-<seed>/`, and exported through the same path as any checkpoint
(embedkit.models.export). Its embeddings mean nothing: the quality verbs refuse it (`refuse_random`).

The configs live in `embedkit/models/configs/<name>/` (sources in `configs/SOURCES.md`). The tokenizer
is the real one where it is available offline: the BERT twins reuse all-MiniLM-L6-v2's tokenizer.json,
after checking that it is bert-base-uncased's WordPiece vocabulary the config names (`check_vocabulary`).
Qwen3 has no tokenizer offline: a stand-in byte-level BPE (`qwen3_stand_in`) with Qwen2's pre-tokenizer,
its EOS/pad id, the EOS that Qwen3-Embedding's post-processor appends and left padding. Profile buckets are
defined in tokens, so a workload has the bucket's token count whichever tokenizer cut it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from embedkit import defaults
from embedkit.errors import ModelFileError, RandomWeightsError, UnknownModelError, UsageError
from embedkit.models.sources import COMPLETE_MARKER, materialize, read_json, tree_sha256
from embedkit.models.specs import LocalSource, ModelSpec, Weights, get_spec
from embedkit.paths import child_path, models_dir
from embedkit.system import file_sha256, package_versions, peak_rss_mb

CONFIGS_DIR = Path(__file__).with_name("configs")
TWIN_LIBRARIES = ("torch", "transformers", "tokenizers")
# The tokenizer files a BERT twin copies from the checkpoint whose tokenizer it borrows.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
# Qwen2's pre-tokenizer split (its tokenizer.json), which Qwen3 keeps: letters, single digits, punctuation.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN_EOS = "<|endoftext|>"
# The build's facts (seed, tokenizer, weights sha256, peak RSS); a `.embedkit` name keeps it out of the
# checkpoint's tree hash, so two builds of one twin export to the same variant keys.
TWIN_FILE = ".embedkit-twin.json"
# Merges the stand-in BPE may learn at most: its training sentences run out long before.
_STAND_IN_MAX_VOCAB = 32_768


def twin_models() -> tuple[str, ...]:
    """The spec names whose configs are bundled: the models that have twins."""
    return tuple(sorted(p.name for p in CONFIGS_DIR.iterdir() if (p / "config.json").is_file()))


def bundled_config(name: str) -> Path:
    directory = CONFIGS_DIR / name
    if not (directory / "config.json").is_file():
        raise UnknownModelError(f"no bundled config for {name!r}: random weights exist for {', '.join(twin_models())}")
    return directory


def config_sha256(name: str) -> str:
    """One hash of the bundled config files (architecture, pooling, max_seq_length, tokenizer facts)."""
    return tree_sha256(bundled_config(name))


def with_weights(spec: ModelSpec, weights: str, seed: int = defaults.TWIN_SEED) -> ModelSpec:
    """`spec` itself for checkpoint weights; for random weights, its twin's spec (building the twin once)."""
    if weights not in defaults.WEIGHTS:
        raise UsageError(f"unknown weights {weights!r}; expected one of {defaults.WEIGHTS}")
    if weights == "checkpoint" or spec.weights.is_random:
        return spec
    directory = build_twin(spec.name, seed)
    facts = read_json(directory / TWIN_FILE, "twin facts")
    return replace(
        spec,
        source=LocalSource(directory),
        weights=Weights("random", seed, config_sha256(spec.name)),
        tokenizer_from=None,
        tokenizer_source=str(facts["tokenizer"]),
        description=f"{spec.description} -- architecture twin, random weights (seed {seed})",
    )


def resolve_spec(model: str | ModelSpec, weights: str = defaults.DEFAULT_WEIGHTS) -> ModelSpec:
    """The spec of `model` (spec name, local dir, hub id) with the weights asked for."""
    return with_weights(model if isinstance(model, ModelSpec) else get_spec(model), weights)


def refuse_random(spec: Any, verb: str) -> None:
    """A RandomWeightsError when `spec` is a twin: `verb` measures quality, which random weights lack.

    `spec`: a ModelSpec, or any spec-like object; one without `weights` is a checkpoint's.
    """
    weights = getattr(spec, "weights", None)
    if isinstance(weights, Weights) and weights.is_random:
        raise RandomWeightsError(
            f"{verb} refuses {spec.name}: it has random weights (an architecture twin, seed {weights.seed}), "
            "whose embeddings mean nothing; use its checkpoint (weights='checkpoint') or its published scores"
        )


def build_twin(name: str, seed: int = defaults.TWIN_SEED) -> Path:
    """The twin's sentence-transformers checkpoint directory, built on first use."""
    target = child_path(models_dir(), "twins", f"{name}-{config_sha256(name)[:16]}", f"seed-{seed}")
    if (target / COMPLETE_MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as scratch:
        staging = Path(scratch) / "out"
        build_checkpoint(bundled_config(name), seed, staging)
        (staging / COMPLETE_MARKER).write_text(f"{name} seed {seed}")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    return target


def build_checkpoint(config_dir: Path, seed: int, out: Path, corpus: list[str] | None = None) -> dict[str, Any]:
    """A sentence-transformers checkpoint in `out` with random weights for the config in `config_dir`
    (config.json, modules.json, sentence_bert_config.json, 1_Pooling/, tokenizer_config.json); returns
    the build's facts, also written to `out/.embedkit-twin.json`. `corpus`: what a stand-in tokenizer is
    trained on (default: the benchmark sentences the latency workloads read)."""
    config = read_json(config_dir / "config.json", "model config")
    _save_random_model(config_dir, seed, out)
    for relative in ("modules.json", "sentence_bert_config.json", "1_Pooling/config.json"):
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(config_dir / relative, out / relative)
    (out / "2_Normalize").mkdir()
    facts = {
        "seed": seed,
        "config_sha256": tree_sha256(config_dir),
        "tokenizer": _write_tokenizer(config, config_dir, out, corpus),
        "weights_sha256": file_sha256(out / "model.safetensors"),
        "libraries": package_versions(TWIN_LIBRARIES),
        "peak_rss_mb": peak_rss_mb(),
    }
    (out / TWIN_FILE).write_text(json.dumps(facts, indent=2, sort_keys=True))
    return facts


def _save_random_model(config_dir: Path, seed: int, out: Path) -> None:
    import torch
    import transformers

    config = transformers.AutoConfig.from_pretrained(config_dir)
    torch.manual_seed(seed)
    transformers.set_seed(seed)
    model = transformers.AutoModel.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    model.eval()
    model.save_pretrained(out, safe_serialization=True)


def _write_tokenizer(config: dict[str, Any], config_dir: Path, out: Path, corpus: list[str] | None) -> str:
    """Put the twin's tokenizer files in `out`; returns what produced them, for the records."""
    if config.get("model_type") == "bert":
        source = materialize(get_spec(defaults.DEFAULT_MODEL))
        check_vocabulary(source / "tokenizer.json", config_dir)
        for file_name in _TOKENIZER_FILES:
            if (source / file_name).is_file():
                shutil.copy(source / file_name, out / file_name)
        return f"{defaults.DEFAULT_MODEL} tokenizer.json (bert-base-uncased WordPiece)"
    if config.get("model_type") == "qwen3":
        content = qwen3_stand_in(config, corpus if corpus is not None else _stand_in_corpus())
        (out / "tokenizer.json").write_text(content, encoding="utf-8")
        vocab = json.loads(content)["model"]["vocab"]
        n_tokens = len(vocab)
        # The bundled tokenizer facts, with the EOS/pad at the stand-in's id.
        facts = read_json(config_dir / "tokenizer_config.json", "bundled tokenizer config")
        facts["added_tokens_decoder"] = {str(vocab[QWEN_EOS]): {"content": QWEN_EOS, "special": True}}
        (out / "tokenizer_config.json").write_text(json.dumps(facts, indent=2, sort_keys=True))
        return f"stand-in:qwen3-byte-level-bpe ({n_tokens} tokens, trained on STSBenchmark sentences)"
    raise ModelFileError(f"{config_dir}: no twin tokenizer for model_type {config.get('model_type')!r}")


def check_vocabulary(tokenizer_file: Path, config_dir: Path) -> None:
    """Raise ModelFileError unless `tokenizer_file` is the vocabulary the bundled config states: its size
    (config.json's vocab_size), its pad id and the special tokens' ids (tokenizer_config.json), lower-casing."""
    config = read_json(config_dir / "config.json", "bundled model config")
    facts = read_json(config_dir / "tokenizer_config.json", "bundled tokenizer config")
    content = read_json(tokenizer_file, "tokenizer")
    vocab: dict[str, int] = content["model"]["vocab"]
    problems = []
    if len(vocab) != config["vocab_size"]:
        problems.append(f"{len(vocab)} tokens, the config says vocab_size {config['vocab_size']}")
    for token_id, token in facts["added_tokens_decoder"].items():
        if vocab.get(token["content"]) != int(token_id):
            problems.append(f"{token['content']} is id {vocab.get(token['content'])}, the config says {token_id}")
    pad = facts["pad_token"]
    if vocab.get(pad) != config.get("pad_token_id"):
        problems.append(f"pad {pad} is id {vocab.get(pad)}, the config says pad_token_id {config.get('pad_token_id')}")
    lowercase = bool((content.get("normalizer") or {}).get("lowercase"))
    if lowercase != facts["do_lower_case"]:
        problems.append(f"lower-casing is {lowercase}, the config says do_lower_case {facts['do_lower_case']}")
    if problems:
        raise ModelFileError(f"{tokenizer_file} is not the vocabulary {config_dir.name} uses: " + "; ".join(problems))


def _stand_in_corpus() -> list[str]:
    from embedkit.quality.sentences import benchmark_sentences

    return benchmark_sentences().texts


def qwen3_stand_in(config: dict[str, Any], corpus: list[str], max_vocab: int = _STAND_IN_MAX_VOCAB) -> str:
    """A byte-level BPE trained on `corpus` with Qwen2's pre-tokenizer: English words come out as one token
    each, as Qwen's 151k-token vocabulary mostly gives them. Its EOS `<|endoftext|>` (also the pad token)
    is appended to every text as Qwen3-Embedding's post-processor does; it pads on the left. The EOS
    takes the id after the trained tokens, not Qwen's (151643): a vocabulary with a gap below it is one
    `tokenizers` warns about, id by id, on stdout whenever it is saved (optimum's export saves it). Ids
    only index the embedding table, whose shape is the config's either way.

    Returns the tokenizer.json text."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=min(max_vocab, int(config["vocab_size"]) - 1),  # one row left for the EOS
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    content = json.loads(tokenizer.to_str())
    eos_id = len(content["model"]["vocab"])
    content["model"]["vocab"][QWEN_EOS] = eos_id
    content["added_tokens"] = [
        {"id": eos_id, "content": QWEN_EOS, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
    ]  # fmt: skip
    content["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": QWEN_EOS, "type_id": 0}}],
        "pair": [
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": QWEN_EOS, "type_id": 0}},
            {"Sequence": {"id": "B", "type_id": 0}},
            {"SpecialToken": {"id": QWEN_EOS, "type_id": 0}},
        ],
        "special_tokens": {QWEN_EOS: {"id": QWEN_EOS, "ids": [eos_id], "tokens": [QWEN_EOS]}},
    }
    content["padding"] = {"strategy": "BatchLongest", "direction": "Left", "pad_to_multiple_of": None,
                          "pad_id": eos_id, "pad_type_id": 0, "pad_token": QWEN_EOS}  # fmt: skip
    return json.dumps(content, ensure_ascii=False)
