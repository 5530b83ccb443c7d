"""Calibration data for static int8 quantisation: real texts from the data mirror's train and dev material.

Static int8 fixes each activation's scale before deployment from the ranges seen on a calibration set,
so that set must look like what the model will embed — and must never be text a scored task later
evaluates, or the scores would be measured on the data the ranges were fitted to. A source is refused
when any of its files is one an mteb task of the mirror evaluates (`evaluated_by`): SICK's train file is
part of MTEB's SICK-R test (all 9,927 pairs), SciFact's corpus is what SciFact retrieves from.

`CalibrationReader` is ONNX Runtime's `CalibrationDataReader` over those texts, tokenized and batched
exactly as the embedder feeds the graph: longest first, padded to each batch's longest text, truncated at
max_seq_length, with the graph's own input names.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from embedkit import defaults
from embedkit.errors import CalibrationDataError, UnknownNameError
from embedkit.models.sources import materialize
from embedkit.models.specs import ModelSpec, get_spec
from embedkit.pipeline.tokenizer import Tokenizer, read_max_seq_length
from embedkit.quality import mirror
from embedkit.system import file_sha256

# Files an mteb task reads without evaluating them: mteb fits Banking77's classifier on its train split.
TRAINING_ONLY_FILES = frozenset({mirror.BANKING77_TRAIN[0]})


def _sts_sentences(spec: tuple[str, int]) -> Callable[[Path | None], list[str]]:
    def read(root: Path | None) -> list[str]:
        return list(dict.fromkeys(s for pair in mirror.read_stsbenchmark_file(spec, root) for s in pair[:2]))

    return read


def _sick_train(root: Path | None) -> list[str]:
    pairs = mirror.read_sick_r(root)[: mirror.SICK_FILES[0][1]]  # the train file comes first
    return list(dict.fromkeys(s for pair in pairs for s in pair[:2]))


def _scifact_corpus(root: Path | None) -> list[str]:
    return [f"{doc.title} {doc.text}".strip() for doc in mirror.read_scifact(root).corpus]


def _banking77_train(root: Path | None) -> list[str]:
    return list(dict.fromkeys(text for text, _ in mirror.read_banking77(root).train))


@dataclass(frozen=True)
class CalibrationSource:
    """Texts of one mirror file set, by name."""

    name: str
    files: tuple[str, ...]  # paths inside the mirror
    read: Callable[[Path | None], list[str]]  # distinct texts, in file order


SOURCES: dict[str, CalibrationSource] = {
    source.name: source
    for source in (
        CalibrationSource("stsbenchmark-train", (mirror.STSBENCHMARK_TRAIN[0],), _sts_sentences(mirror.STSBENCHMARK_TRAIN)),
        CalibrationSource("stsbenchmark-dev", (mirror.STSBENCHMARK_DEV[0],), _sts_sentences(mirror.STSBENCHMARK_DEV)),
        CalibrationSource("banking77-train", (mirror.BANKING77_TRAIN[0],), _banking77_train),
        CalibrationSource("stsbenchmark-test", (mirror.STSBENCHMARK_TEST[0],), _sts_sentences(mirror.STSBENCHMARK_TEST)),
        CalibrationSource("sick-train", (mirror.SICK_FILES[0][0],), _sick_train),
        CalibrationSource("scifact-corpus", (mirror.SCIFACT_CORPUS[0],), _scifact_corpus),
    )
}  # fmt: skip


def evaluated_by(relative: str) -> list[str]:
    """The mteb tasks of the mirror that evaluate (embed and score) the texts of this mirror file."""
    if relative in TRAINING_ONLY_FILES:
        return []
    return [task for task, files in mirror.TASK_FILES.items() if relative in files]


def check_source(name: str) -> CalibrationSource:
    """The source named `name`, refused when a scored task evaluates any of its files."""
    if name not in SOURCES:
        raise UnknownNameError(f"unknown calibration source {name!r}; known: {sorted(SOURCES)}")
    source = SOURCES[name]
    for relative in source.files:
        tasks = evaluated_by(relative)
        if tasks:
            raise CalibrationDataError(
                f"calibration source {name!r} reads {relative}, which mteb's {', '.join(tasks)} evaluates: "
                f"calibrating on it would fit the int8 ranges to the scored data; use "
                f"{', '.join(n for n in SOURCES if not any(evaluated_by(f) for f in SOURCES[n].files))}"
            )
    return source


@dataclass(frozen=True)
class CalibrationSet:
    """The texts activations are calibrated on, and their identity for the manifest."""

    texts: tuple[str, ...]
    identity: dict[str, Any]


@lru_cache(maxsize=4)
def calibration_set(
    sources: tuple[str, ...] = defaults.CALIBRATION_SOURCES,
    size: int = defaults.CALIBRATION_TEXTS,
    long_texts: int = defaults.CALIBRATION_LONG_TEXTS,
    seed: int = defaults.CALIBRATION_SEED,
    root: Path | None = None,
) -> CalibrationSet:
    """`size` texts drawn evenly from `sources` (shuffled by `seed`), of which `long_texts` join
    `CALIBRATION_LONG_JOIN` sentences each, so that ranges at max_seq_length are seen too."""
    if not sources:
        raise CalibrationDataError("give at least one calibration source")
    if not 0 <= long_texts <= size or size < 1:
        raise CalibrationDataError(f"need 1 <= size and 0 <= long_texts <= size, got size {size}, long {long_texts}")
    checked = [check_source(name) for name in sources]
    base = mirror.mirror_root(root)
    pools = {}
    for source in checked:
        texts = source.read(base)
        random.Random(seed).shuffle(texts)
        pools[source.name] = texts
    wanted = size - long_texts
    share = {name: wanted // len(pools) + (i < wanted % len(pools)) for i, name in enumerate(pools)}
    chosen: list[str] = []
    for name, texts in pools.items():
        if share[name] > len(texts):
            raise CalibrationDataError(f"calibration source {name!r} has {len(texts)} texts, {share[name]} wanted")
        chosen.extend(texts[: share[name]])
    # Long texts: consecutive unused sentences of the sources, joined; the tokenizer truncates them.
    spare = iter(text for name, texts in pools.items() for text in texts[share[name] :])
    join = defaults.CALIBRATION_LONG_JOIN
    for _ in range(long_texts):
        parts = [text for _, text in zip(range(join), spare, strict=False)]
        if len(parts) < join:
            raise CalibrationDataError(f"the calibration sources ran out building {long_texts} long texts")
        chosen.append(" ".join(parts))
    identity = {
        "sources": [
            {
                "name": source.name,
                "files": {relative: file_sha256(base / relative) for relative in source.files},
                "texts_available": len(pools[source.name]),
                "texts_used": share[source.name],
            }
            for source in checked
        ],
        "texts": len(chosen),
        "long_texts": long_texts,
        "long_join": join,
        "seed": seed,
        "texts_sha256": hashlib.sha256("\n".join(chosen).encode()).hexdigest(),
    }
    return CalibrationSet(tuple(chosen), identity)


class CalibrationReader:
    """ONNX Runtime's calibration feed (a `CalibrationDataReader`: it has `get_next`): the texts in embedder-shaped batches, as `input_names` name them."""

    def __init__(self, texts: Sequence[str], tokenizer: Tokenizer, input_names: Sequence[str], batch_size: int):
        ordered = sorted(texts, key=len, reverse=True)  # as Embedder.embed orders a call's texts
        self._batches = [ordered[start : start + batch_size] for start in range(0, len(ordered), batch_size)]
        self._tokenizer = tokenizer
        self._input_names = tuple(input_names)
        self._feeds: Iterator[dict[str, np.ndarray]] = self._make_feeds()

    def _make_feeds(self) -> Iterator[dict[str, np.ndarray]]:
        for texts in self._batches:
            batch = self._tokenizer.encode(texts)
            available: Mapping[str, np.ndarray | None] = {
                "input_ids": batch.input_ids,
                "attention_mask": batch.attention_mask,
                "token_type_ids": batch.token_type_ids,
            }
            yield {name: _required_feed(available, name) for name in self._input_names}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def __len__(self) -> int:
        return len(self._batches)

    def rewind(self) -> None:
        self._feeds = self._make_feeds()


def _required_feed(available: Mapping[str, np.ndarray | None], name: str) -> np.ndarray:
    feed = available.get(name)
    if feed is None:
        raise CalibrationDataError(f"the graph takes input {name!r}, which the tokenizer does not produce")
    return feed


def calibration_tokenizer(spec: ModelSpec, checkpoint: Path, graph: Mapping[str, Any]) -> Tokenizer:
    """The tokenizer the embedder will feed the quantized graph with (`graph`: its `graph_facts`): the same
    tokenizer.json, max_seq_length (`ModelFiles.max_seq_length`'s rule) and inputs."""
    tokenizer_directory = materialize(get_spec(spec.tokenizer_from)) if spec.tokenizer_from else checkpoint
    positions = graph.get("max_positions")
    declared = spec.max_seq_length or read_max_seq_length(tokenizer_directory) or positions
    if declared is None:
        raise CalibrationDataError(f"{spec.name}: no max_seq_length declared and none in the graph to calibrate at")
    length = min(declared, positions) if positions else declared
    return Tokenizer.from_file(tokenizer_directory / "tokenizer.json", length, "token_type_ids" in graph["inputs"])
