"""The local data mirror is read exactly as MTEB reads each format, and refuses incomplete files."""

from __future__ import annotations

import csv
import hashlib
import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from embedkit.errors import EmbedkitError
from embedkit.quality import mirror as data


@pytest.fixture
def mirror(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The local data mirror (conftest's `data_root`, which skips without one), as EMBEDKIT_DATA."""
    monkeypatch.setenv("EMBEDKIT_DATA", str(data_root))
    return data_root


def _copy_into(mirror: Path, tmp_path: Path, relative: str, keep_lines: int | None = None) -> Path:
    """Copy one mirror file into a scratch mirror, optionally keeping only its first lines."""
    target = tmp_path / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if keep_lines is None:
        shutil.copyfile(mirror / relative, target)
    else:
        with (mirror / relative).open(encoding="utf-8", newline="") as source:
            target.write_text("".join(source.readlines()[:keep_lines]), encoding="utf-8", newline="")
    return target


# --- counts and columns, per format ----------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "rows", "score_range"),
    [
        ("STSBenchmark", 1379, (0, 5)),
        ("SICK-R", 9927, (1, 5)),
        ("STS12", 3108, (0, 5)),
        ("STS13", 1500, (0, 5)),
        ("STS14", 3750, (0, 5)),
        ("STS15", 3000, (0, 5)),
        ("STS16", 1186, (0, 5)),
        ("BIOSSES", 100, (0, 4)),
    ],
)
def test_sts_tasks_have_mtebs_pair_counts_and_raw_scores(
    mirror: Path, task: str, rows: int, score_range: tuple[float, float]
) -> None:
    pairs = data.read_sts(task)
    assert len(pairs) == rows
    assert all(isinstance(text, str) and text for p in pairs for text in (p.sentence1, p.sentence2))
    low, high = score_range
    assert all(low <= p.score <= high for p in pairs)


def test_stsbenchmark_uses_fields_5_6_4_and_keeps_bare_quotes(mirror: Path) -> None:
    with (mirror / "stsbenchmark/sts-test.csv").open(encoding="utf-8", newline="") as handle:
        raw = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    pairs = data.read_stsbenchmark()
    assert [(p.sentence1, p.sentence2, p.score) for p in pairs] == [(r[5], r[6], float(r[4])) for r in raw]
    assert any(len(r) == 9 for r in raw), "rows with licence columns are part of the file"
    assert any('"' in p.sentence1 + p.sentence2 for p in pairs), "QUOTE_NONE keeps double quotes in the text"


def test_sick_r_concatenates_the_three_files(mirror: Path) -> None:
    pairs = data.read_sick_r()
    start = 0
    for relative, rows in data.SICK_FILES:  # train, trial, test, in that order
        with (mirror / relative).open(encoding="utf-8", newline="") as handle:
            first = next(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
        assert pairs[start] == (first["sentence_A"], first["sentence_B"], float(first["relatedness_score"]))
        start += rows
    assert start == len(pairs) == 9927


def test_semeval_text_is_not_stripped(mirror: Path) -> None:
    # STS16's first pair ends in a space in the original release; mteb keeps it.
    first = data.read_semeval_sts("STS16")[0]
    assert first.sentence1.endswith(" ")
    assert first.score == 3.0


def test_scifact_keeps_only_the_test_queries_with_their_qrels(mirror: Path) -> None:
    scifact = data.read_scifact()
    assert len(scifact.corpus) == 5183
    assert len(scifact.queries) == 300
    assert sum(len(docs) for docs in scifact.relevant_docs.values()) == 339
    assert {q.id for q in scifact.queries} == set(scifact.relevant_docs)
    corpus_ids = {doc.id for doc in scifact.corpus}
    assert all(doc_id in corpus_ids for docs in scifact.relevant_docs.values() for doc_id in docs)
    assert all(isinstance(doc.id, str) and isinstance(doc.title, str) for doc in scifact.corpus)
    assert all(relevance == 1 for docs in scifact.relevant_docs.values() for relevance in docs.values())


def test_banking77_labels_index_sorted_categories_and_row_order_is_kept(mirror: Path) -> None:
    banking = data.read_banking77()
    assert (len(banking.train), len(banking.test), len(banking.label_names)) == (10003, 3080, 77)
    assert banking.label_names == sorted(banking.label_names)
    with (mirror / "banking77/train.csv").open(encoding="utf-8", newline="") as handle:
        raw_train = list(csv.DictReader(handle))
    assert [row.text for row in banking.train] == [row["text"] for row in raw_train]
    assert [banking.label_names[row.label] for row in banking.train] == [row["category"] for row in raw_train]


# --- provenance and samples ------------------------------------------------------------------


def test_data_sha256_covers_every_file_a_task_reads(mirror: Path) -> None:
    digests = data.data_sha256("SICK-R")
    assert list(digests) == [path for path, _ in data.SICK_FILES]
    for relative, digest in digests.items():
        assert digest == hashlib.sha256((mirror / relative).read_bytes()).hexdigest()
    assert set(data.TASK_FILES) == set(data.LOCAL_TASKS)


def test_sts_sentences_are_every_distinct_test_sentence_in_a_reproducible_order(mirror: Path) -> None:
    sentences = data.sts_sentences(seed=3)
    known = list(dict.fromkeys(s for p in data.read_stsbenchmark() for s in (p.sentence1, p.sentence2)))
    assert len(set(sentences)) == len(sentences) and sorted(sentences) == sorted(known)
    assert sentences == data.sts_sentences(seed=3)
    assert sentences != data.sts_sentences(seed=4)
    shuffled = known.copy()
    random.Random(3).shuffle(shuffled)
    assert sentences == shuffled, "first-seen order, shuffled by random.Random(seed)"


# --- errors ----------------------------------------------------------------------------------


def test_unset_mirror_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMBEDKIT_DATA", raising=False)
    with pytest.raises(data.LocalDataError, match="EMBEDKIT_DATA"):
        data.read_biosses()


@pytest.mark.parametrize("read", [lambda: data.data_sha256("NFCorpus"), lambda: data.read_sts("NFCorpus")])
def test_a_task_the_mirror_does_not_hold_is_a_local_data_error(mirror: Path, read: Callable[[], object]) -> None:
    with pytest.raises(data.LocalDataError, match="NFCorpus"):
        read()


def test_missing_file_names_the_file_and_expected_count(mirror: Path, tmp_path: Path) -> None:
    _copy_into(mirror, tmp_path, "sick/SICK_train.txt")
    with pytest.raises(data.MissingDataFileError, match=r"SICK_trial\.txt.*500 rows") as caught:
        data.read_sick_r(tmp_path)
    assert isinstance(caught.value, FileNotFoundError)
    assert isinstance(caught.value, ValueError)


def test_short_file_names_the_file_and_expected_count(mirror: Path, tmp_path: Path) -> None:
    _copy_into(mirror, tmp_path, "biosses/biosses.tsv", keep_lines=51)  # header + 50 rows
    with pytest.raises(data.RowCountError, match=r"biosses\.tsv: expected 100 rows .*BIOSSES.*found 50"):
        data.read_biosses(tmp_path)


def test_short_scifact_qrels_are_refused(mirror: Path, tmp_path: Path) -> None:
    for relative in data.TASK_FILES["SciFact"]:
        _copy_into(mirror, tmp_path, relative)
    _copy_into(mirror, tmp_path, "scifact/qrels/test.tsv", keep_lines=200)
    with pytest.raises(data.RowCountError, match=r"test\.tsv: expected 339 rows"):
        data.read_scifact(tmp_path)


def _replace_line(path: Path, index: int, edit: Callable[[str], str]) -> None:
    """Rewrite line `index` (0-based) of a scratch mirror file with `edit` (which gets it without its newline)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[index] = edit(lines[index])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _fields(keep: int) -> Callable[[str], str]:
    return lambda line: "\t".join(line.split("\t")[:keep])


def _last_field(value: str) -> Callable[[str], str]:
    return lambda line: "\t".join([*line.split("\t")[:-1], value])


def _json_without(key: str) -> Callable[[str], str]:
    return lambda line: json.dumps({k: v for k, v in json.loads(line).items() if k != key})


@pytest.mark.parametrize(
    ("relative", "index", "edit", "read", "message"),
    [
        # STSBenchmark has no header: positional fields, line 10 is row 10.
        ("stsbenchmark/sts-test.csv", 9, _fields(5), data.read_stsbenchmark, r"sts-test\.csv, line 10: no field 5"),
        (
            "biosses/biosses.tsv",
            5,
            _fields(2),
            data.read_biosses,
            r"biosses\.tsv, line 6: fewer fields than the header",
        ),
        (
            "biosses/biosses.tsv",
            5,
            lambda line: line + "\textra",
            data.read_biosses,
            r"biosses\.tsv, line 6: more fields than the header",
        ),
        (
            "biosses/biosses.tsv",
            3,
            _last_field("n/a"),
            data.read_biosses,
            r"biosses\.tsv, line 4: field 'score' is 'n/a', not a valid float",
        ),
        (
            "biosses/biosses.tsv",
            3,
            _last_field("nan"),
            data.read_biosses,
            r"biosses\.tsv, line 4: field 'score' is 'nan', not a finite number",
        ),
        (
            "sick/SICK_train.txt",
            0,
            lambda header: header.replace("relatedness_score", "relatedness"),
            data.read_sick_r,
            r"SICK_train\.txt, line 2: no field 'relatedness_score'",
        ),
        (
            "scifact/qrels/test.tsv",
            7,
            _last_field("1.0"),
            data.read_scifact,
            r"test\.tsv, line 8: field 'score' is '1\.0', not a valid int",
        ),
        (
            "scifact/corpus.jsonl",
            2,
            lambda line: line[: len(line) // 2],
            data.read_scifact,
            r"corpus\.jsonl, line 3: not JSON \(.+, column \d+\)",
        ),
        (
            "scifact/corpus.jsonl",
            2,
            _json_without("text"),
            data.read_scifact,
            r"corpus\.jsonl, line 3: no field 'text'",
        ),
        (
            "scifact/queries.jsonl",
            4,
            lambda line: "[1, 2]",
            data.read_scifact,
            r"queries\.jsonl, line 5: a JSON list, not an object",
        ),
    ],
    ids=[
        "sts-short-row",
        "tsv-short-row",
        "tsv-long-row",
        "non-numeric-score",
        "nan-score",
        "missing-column",
        "non-integer-relevance",
        "truncated-json",
        "json-missing-key",
        "json-not-an-object",
    ],
)
def test_malformed_row_names_the_file_line_and_field(
    mirror: Path,
    tmp_path: Path,
    relative: str,
    index: int,
    edit: Callable[[str], str],
    read: Callable[[Path], object],
    message: str,
) -> None:
    # The damaged file is cut to a few rows: the malformed one must be reported before the row count.
    # The task's other files are copied whole, so that only the damage can fail the read.
    task = next(task for task, files in data.TASK_FILES.items() if relative in files)
    for other in data.TASK_FILES[task]:
        if other != relative:
            _copy_into(mirror, tmp_path, other)
    _replace_line(_copy_into(mirror, tmp_path, relative, keep_lines=20), index, edit)
    with pytest.raises(data.LocalDataError, match=message) as caught:
        read(tmp_path)
    assert isinstance(caught.value, EmbedkitError)


def test_non_utf8_file_is_named(mirror: Path, tmp_path: Path) -> None:
    target = _copy_into(mirror, tmp_path, "biosses/biosses.tsv", keep_lines=10)
    target.write_bytes(target.read_bytes().replace(b"Craf", b"\xff\xfeCraf", 1))
    with pytest.raises(data.LocalDataError, match=r"biosses\.tsv: not UTF-8 text"):
        data.read_biosses(tmp_path)
