"""Readers for the local evaluation-data mirror (layout of ``../shared/data``, see its README).

Each reader maps one raw format exactly the way MTEB's own task reads that data set (the mirror
README's "How MTEB reads these files"), and checks the row count MTEB uses, so a truncated or
missing file fails loudly here instead of silently producing a different score. This module needs
neither mteb nor datasets: it is also what the profiler and benchmark draw real sentences from.
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

from embedkit.errors import LocalDataError, MissingDataFileError, RowCountError
from embedkit.paths import data_dir
from embedkit.system import file_sha256

Record = TypeVar("Record")
Row = TypeVar("Row")
Number = TypeVar("Number", int, float)


class _FieldError(Exception):
    """One field of one record is absent or unreadable; `_convert` adds the file and line."""


class STSPair(NamedTuple):
    sentence1: str
    sentence2: str
    score: float  # on the data set's own scale; the mteb task rescales it


class Document(NamedTuple):
    id: str
    title: str
    text: str


class Query(NamedTuple):
    id: str
    text: str


class LabelledText(NamedTuple):
    text: str
    label: int  # index into ClassificationData.label_names


@dataclass(frozen=True)
class RetrievalData:
    corpus: list[Document]
    queries: list[Query]
    relevant_docs: dict[str, dict[str, int]]  # query id -> {document id: relevance}


@dataclass(frozen=True)
class ClassificationData:
    train: list[LabelledText]
    test: list[LabelledText]
    label_names: list[str]


STSBENCHMARK_TEST = ("stsbenchmark/sts-test.csv", 1379)
# The splits no mteb task evaluates (calibration material, embedkit.models.calibration).
STSBENCHMARK_TRAIN = ("stsbenchmark/sts-train.csv", 5749)
STSBENCHMARK_DEV = ("stsbenchmark/sts-dev.csv", 1500)
# MTEB's SICK-R evaluates every pair of the three SICK files as its "test" split (9927 pairs).
SICK_FILES = (
    ("sick/SICK_train.txt", 4500),
    ("sick/SICK_trial.txt", 500),
    ("sick/SICK_test_annotated.txt", 4927),
)
SEMEVAL_STS_FILES = {
    "STS12": ("semeval-sts/sts12-test.tsv", 3108),
    "STS13": ("semeval-sts/sts13-test.tsv", 1500),
    "STS14": ("semeval-sts/sts14-test.tsv", 3750),
    "STS15": ("semeval-sts/sts15-test.tsv", 3000),
    "STS16": ("semeval-sts/sts16-test.tsv", 1186),
}
BIOSSES_FILE = ("biosses/biosses.tsv", 100)
SCIFACT_CORPUS = ("scifact/corpus.jsonl", 5183)
SCIFACT_QUERIES = ("scifact/queries.jsonl", 300)  # the test queries, i.e. those in the test qrels
SCIFACT_TEST_QRELS = ("scifact/qrels/test.tsv", 339)
BANKING77_TRAIN = ("banking77/train.csv", 10003)
BANKING77_TEST = ("banking77/test.csv", 3080)
BANKING77_LABELS = 77

STS_TASKS = ("STSBenchmark", "SICK-R", *SEMEVAL_STS_FILES, "BIOSSES")
LOCAL_TASKS = (*STS_TASKS, "SciFact", "Banking77Classification")

TASK_FILES: dict[str, tuple[str, ...]] = {
    "STSBenchmark": (STSBENCHMARK_TEST[0],),
    "SICK-R": tuple(path for path, _ in SICK_FILES),
    **{task: (path,) for task, (path, _) in SEMEVAL_STS_FILES.items()},
    "BIOSSES": (BIOSSES_FILE[0],),
    "SciFact": (SCIFACT_CORPUS[0], SCIFACT_QUERIES[0], SCIFACT_TEST_QRELS[0]),
    "Banking77Classification": (BANKING77_TRAIN[0], BANKING77_TEST[0]),
}


def mirror_root(root: Path | None = None) -> Path:
    """The mirror to read: `root` if given, else EMBEDKIT_DATA."""
    resolved = root if root is not None else data_dir()
    if resolved is None:
        raise LocalDataError("no local data mirror: set EMBEDKIT_DATA (layout of ../shared/data)")
    return Path(resolved)


def read_stsbenchmark(root: Path | None = None) -> list[STSPair]:
    """STSBenchmark test: fields 5, 6 and 4 (0-based) of sts-test.csv, read with QUOTE_NONE.

    Sentences contain bare double quotes, and some rows carry two extra licence columns.
    """
    return read_stsbenchmark_file(STSBENCHMARK_TEST, root)


def read_stsbenchmark_file(spec: tuple[str, int], root: Path | None = None) -> list[STSPair]:
    """One STSBenchmark file (`STSBENCHMARK_TEST`, `_TRAIN` or `_DEV`: path and row count), read as the test is."""
    path = _required(root, spec, "STSBenchmark")
    rows = _convert(path, _tsv_rows(path), _stsbenchmark_pair)
    return _checked(path, rows, spec[1], "STSBenchmark")


def read_sick_r(root: Path | None = None) -> list[STSPair]:
    """SICK-R: the train, trial and test files concatenated (9927 pairs), relatedness as score."""
    pairs: list[STSPair] = []
    for spec in SICK_FILES:
        path = _required(root, spec, "SICK-R")
        rows = _convert(path, _tsv_records(path), _sick_pair)
        pairs.extend(_checked(path, rows, spec[1], "SICK-R"))
    return pairs


def read_semeval_sts(task: str, root: Path | None = None) -> list[STSPair]:
    """STS12-STS16: the scored pairs of one SemEval year (converted TSV, header line)."""
    if task not in SEMEVAL_STS_FILES:
        raise LocalDataError(f"{task!r} is not an STS task of the local mirror; it holds {list(STS_TASKS)}")
    spec = SEMEVAL_STS_FILES[task]
    path = _required(root, spec, task)
    rows = _convert(path, _tsv_records(path), _sts_pair)
    return _checked(path, rows, spec[1], task)


def read_biosses(root: Path | None = None) -> list[STSPair]:
    """BIOSSES: 100 pairs, score = mean of the five annotators (0-4)."""
    path = _required(root, BIOSSES_FILE, "BIOSSES")
    rows = _convert(path, _tsv_records(path), _sts_pair)
    return _checked(path, rows, BIOSSES_FILE[1], "BIOSSES")


def read_sts(task: str, root: Path | None = None) -> list[STSPair]:
    """The evaluated pairs of any STS task the mirror holds."""
    if task == "STSBenchmark":
        return read_stsbenchmark(root)
    if task == "SICK-R":
        return read_sick_r(root)
    if task == "BIOSSES":
        return read_biosses(root)
    return read_semeval_sts(task, root)


def read_scifact(root: Path | None = None) -> RetrievalData:
    """SciFact test: the whole corpus, the 300 queries that have test qrels, and those qrels."""
    qrels_path = _required(root, SCIFACT_TEST_QRELS, "SciFact")
    qrels = _convert(qrels_path, _tsv_records(qrels_path), _qrel)
    _checked(qrels_path, qrels, SCIFACT_TEST_QRELS[1], "SciFact")
    relevant_docs: dict[str, dict[str, int]] = {}
    for query_id, doc_id, relevance in qrels:
        relevant_docs.setdefault(query_id, {})[doc_id] = relevance

    corpus_path = _required(root, SCIFACT_CORPUS, "SciFact")
    corpus = _convert(corpus_path, _jsonl_records(corpus_path), _document)
    _checked(corpus_path, corpus, SCIFACT_CORPUS[1], "SciFact")

    # Like mteb's retrieval loader: keep the queries that have qrels, in the queries file's order.
    queries_path = _required(root, SCIFACT_QUERIES, "SciFact")
    all_queries = _convert(queries_path, _jsonl_records(queries_path), _query)
    queries = [query for query in all_queries if query.id in relevant_docs]
    _checked(queries_path, queries, SCIFACT_QUERIES[1], "SciFact", unit="test queries")
    return RetrievalData(corpus=corpus, queries=queries, relevant_docs=relevant_docs)


def read_banking77(root: Path | None = None) -> ClassificationData:
    """Banking77: train and test in file order, labels = index over the sorted category names.

    Row order matters: mteb undersamples the training set by row index.
    """
    splits: dict[str, list[tuple[str, str]]] = {}
    for split, spec in (("train", BANKING77_TRAIN), ("test", BANKING77_TEST)):
        path = _required(root, spec, "Banking77Classification")
        rows = _convert(path, _csv_records(path), _labelled_text)
        splits[split] = _checked(path, rows, spec[1], "Banking77Classification")
    label_names = sorted({category for rows in splits.values() for _, category in rows})
    if len(label_names) != BANKING77_LABELS:
        raise LocalDataError(
            f"{BANKING77_TRAIN[0]} + {BANKING77_TEST[0]}: expected {BANKING77_LABELS} categories "
            f"(MTEB's Banking77Classification), found {len(label_names)}"
        )
    index = {name: i for i, name in enumerate(label_names)}
    return ClassificationData(
        train=[LabelledText(text, index[category]) for text, category in splits["train"]],
        test=[LabelledText(text, index[category]) for text, category in splits["test"]],
        label_names=label_names,
    )


def data_sha256(task: str, root: Path | None = None) -> dict[str, str]:
    """sha256 of each mirror file a task reads, keyed by its path inside the mirror (provenance)."""
    if task not in TASK_FILES:
        raise LocalDataError(f"{task!r} is not in the local mirror; it holds {list(LOCAL_TASKS)}")
    base = mirror_root(root)
    digests = {}
    for relative in TASK_FILES[task]:
        path = base / relative
        if not path.is_file():
            raise MissingDataFileError(f"{path} is missing (needed by MTEB's {task})")
        digests[relative] = file_sha256(path)
    return digests


def sts_sentences(seed: int = 0, root: Path | None = None) -> list[str]:
    """The distinct STSBenchmark test sentences (first-seen order over the pairs), shuffled by `seed`.

    Their lengths span short captions to long news sentences, which is what length-bucketed
    latency measurements need; a prefix of the list is a reproducible sample.
    """
    return distinct_sentences(((pair.sentence1, pair.sentence2) for pair in read_stsbenchmark(root)), seed)


def distinct_sentences(pairs: Iterable[tuple[str, str]], seed: int) -> list[str]:
    """Each sentence of the pairs once (first-seen order), then shuffled by `seed`: wherever the pairs come from."""
    sentences = list(dict.fromkeys(sentence for pair in pairs for sentence in pair))
    random.Random(seed).shuffle(sentences)
    return sentences


def _required(root: Path | None, spec: tuple[str, int], task: str) -> Path:
    relative, expected = spec
    path = mirror_root(root) / relative
    if not path.is_file():
        raise MissingDataFileError(f"{path} is missing: MTEB's {task} reads {expected} rows from it")
    return path


def _checked(path: Path, rows: list[Row], expected: int, task: str, unit: str = "rows") -> list[Row]:
    if len(rows) != expected:
        raise RowCountError(f"{path}: expected {expected} {unit} (MTEB's {task}), found {len(rows)}")
    return rows


def _convert(path: Path, records: Iterable[tuple[int, Record]], make: Callable[[Record], Row]) -> list[Row]:
    """Apply `make` to each (line number, record), reporting an unreadable record by file and line."""
    converted: list[Row] = []
    for line, record in records:
        try:
            converted.append(make(record))
        except _FieldError as error:
            raise LocalDataError(f"{path}, line {line}: {error}") from error
    return converted


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Name the file when its bytes are not UTF-8 or the csv module cannot split them."""
    try:
        yield
    except UnicodeDecodeError as error:
        raise LocalDataError(f"{path}: not UTF-8 text ({error.reason})") from error
    except csv.Error as error:
        raise LocalDataError(f"{path}: {error}") from error


def _tsv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    # QUOTE_NONE: the STS files contain bare double quotes that are part of the text.
    with path.open(encoding="utf-8", newline="") as handle, _reading(path):
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        for row in reader:
            yield reader.line_num, row


def _tsv_records(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as handle, _reading(path):
        yield from _complete_records(path, csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    # RFC-4180 quoting: some Banking77 texts hold newlines inside quotes, so lines are not rows.
    with path.open(encoding="utf-8", newline="") as handle, _reading(path):
        yield from _complete_records(path, csv.DictReader(handle))


def _complete_records(path: Path, reader: csv.DictReader[str]) -> Iterator[tuple[int, dict[str, str]]]:
    # DictReader fills the columns a short (e.g. truncated) row lacks with None, and files a long
    # row's surplus under the key None (a stray tab shifts every later column): refuse both here,
    # before a None or a shifted field slips through as a sentence.
    for record in reader:
        if None in record.values():
            raise LocalDataError(f"{path}, line {reader.line_num}: fewer fields than the header")
        if None in record:
            raise LocalDataError(f"{path}, line {reader.line_num}: more fields than the header")
        yield reader.line_num, record


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    with path.open(encoding="utf-8") as handle, _reading(path):
        for line_number, line in enumerate(handle, start=1):
            if line.strip():
                yield line_number, _json_object(path, line_number, line)


def _json_object(path: Path, line_number: int, line: str) -> dict[str, object]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise LocalDataError(f"{path}, line {line_number}: not JSON ({error.msg}, column {error.colno})") from error
    if not isinstance(record, dict):
        raise LocalDataError(f"{path}, line {line_number}: a JSON {type(record).__name__}, not an object")
    return record


def _field(record: Mapping[str, object] | Sequence[str], key: str | int) -> object:
    try:
        return record[key]  # type: ignore[index]  # a str key for records, an int index for rows
    except (KeyError, IndexError):
        raise _FieldError(f"no field {key!r}") from None


def _text(record: Mapping[str, object] | Sequence[str], key: str | int) -> str:
    value = _field(record, key)
    if not isinstance(value, str):
        raise _FieldError(f"field {key!r} is {value!r}, not text")
    return value


def _identifier(record: Mapping[str, object], key: str) -> str:
    # BEIR ids are strings, but some corpora write numeric ids as JSON numbers.
    value = _field(record, key)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _FieldError(f"field {key!r} is {value!r}, not an id")
    return str(value)


def _parsed(record: Mapping[str, object] | Sequence[str], key: str | int, parse: Callable[[str], Number]) -> Number:
    text = _text(record, key)
    try:
        value = parse(text)
    except ValueError:
        raise _FieldError(f"field {key!r} is {text!r}, not a valid {parse.__name__}") from None
    if not math.isfinite(value):  # "nan" and "inf" parse, but no score or relevance is either
        raise _FieldError(f"field {key!r} is {text!r}, not a finite number")
    return value


def _stsbenchmark_pair(row: list[str]) -> STSPair:
    return STSPair(_text(row, 5), _text(row, 6), _parsed(row, 4, float))


def _sts_pair(record: dict[str, str]) -> STSPair:
    return STSPair(_text(record, "sentence1"), _text(record, "sentence2"), _parsed(record, "score", float))


def _sick_pair(record: dict[str, str]) -> STSPair:
    return STSPair(
        _text(record, "sentence_A"), _text(record, "sentence_B"), _parsed(record, "relatedness_score", float)
    )


def _qrel(record: dict[str, str]) -> tuple[str, str, int]:
    return _text(record, "query-id"), _text(record, "corpus-id"), _parsed(record, "score", int)


def _labelled_text(record: dict[str, str]) -> tuple[str, str]:
    return _text(record, "text"), _text(record, "category")


def _document(record: dict[str, object]) -> Document:
    return Document(_identifier(record, "_id"), str(record.get("title") or ""), _text(record, "text"))


def _query(record: dict[str, object]) -> Query:
    return Query(_identifier(record, "_id"), _text(record, "text"))
