"""Where a records frame keeps MTEB scores: one `scores.<TASK>` column per task (`records_frame`
flattens each score record's `scores` object so). The one place that knows that column naming, and
the tables of score records built on it (one row per record and task, with deltas to fp32)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from embedkit.results.files import record_paths
from embedkit.results.tables import load_frame, records_frame

SCORE_PREFIX = "scores."
REFERENCE_VARIANT = "fp32"  # what the other variants of a model are compared with


def score_column(task: str) -> str:
    """The records-frame column holding `task`'s main score."""
    return f"{SCORE_PREFIX}{task}"


def task_columns(columns: Iterable[str]) -> list[str]:
    """The score columns among `columns`, in their order."""
    return [column for column in columns if column.startswith(SCORE_PREFIX)]


def task_of(column: str) -> str:
    """The task a score column holds."""
    return column.removeprefix(SCORE_PREFIX)


def scored_tasks(row: Mapping[str, Any] | pd.Series) -> list[str]:
    """The tasks one records-frame row has a score for (NaN: the record did not score that task)."""
    return [task_of(column) for column in task_columns(row.keys()) if pd.notna(row[column])]


def score_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of `frame` that are score records (none when it has no `kind` column)."""
    return frame[frame["kind"] == "score"] if "kind" in frame else frame.iloc[0:0]


def common_tasks(frame: pd.DataFrame) -> tuple[str, ...]:
    """Tasks that every scored model variant has in one record (its most complete), sorted; () when
    there are no score records. A variant scored in rounds (STS first, every task later) counts with its
    complete record, not with the partial one it had first."""
    most_complete: dict[tuple[str, str], set[str]] = {}
    for _, row in score_rows(frame).iterrows():
        key, tasks = (str(row["model"]), str(row["variant"])), set(scored_tasks(row))
        if len(tasks) > len(most_complete.get(key, set())):
            most_complete[key] = tasks
    return tuple(sorted(set.intersection(*most_complete.values()))) if most_complete else ()


def mean_score(row: Mapping[str, Any] | pd.Series, tasks: Iterable[str]) -> float:
    """The mean main score of one row over `tasks`."""
    chosen = list(tasks)
    return float(sum(row[score_column(task)] for task in chosen) / len(chosen))


def score_record_paths(*sources: Path | str) -> list[Path]:
    """The score records among `sources` (files, or directories searched recursively)."""
    prefix = "score-"  # records.make_record_id starts every record's file name with its kind
    return [path for path in record_paths(*sources) if path.name.startswith(prefix)]


_TASK_FRAME_IDENTITY = ["record_id", "machine_id", "created_at", "model", "variant", "provider", "forced", "path"]
_TASK_FRAME_COLUMNS = [*_TASK_FRAME_IDENTITY, "task", "score", "reference_score", "delta", "reference_record_id"]


def task_scores(frame: pd.DataFrame, reference_variant: str = REFERENCE_VARIANT) -> pd.DataFrame:
    """One row per (score record, task) of a records frame (`embedkit.results.tables.load_frame`), with the score's
    delta to the reference variant of the same model and provider (its latest record, when there is one).

    Columns: the record's identity, task, score, reference_score, delta (NaN without a reference),
    reference_record_id.
    """
    scored = score_rows(frame)
    columns = task_columns(scored.columns)
    if scored.empty or not columns:
        return pd.DataFrame(columns=_TASK_FRAME_COLUMNS)
    long = scored.melt(id_vars=_TASK_FRAME_IDENTITY, value_vars=columns, var_name="task", value_name="score")
    long = long.dropna(subset=["score"])
    long["task"] = long["task"].map(task_of)
    key = ["model", "provider", "task"]
    reference = (
        long[long["variant"] == reference_variant]
        .sort_values("created_at")
        .drop_duplicates(subset=key, keep="last")[[*key, "score", "record_id"]]
        .rename(columns={"score": "reference_score", "record_id": "reference_record_id"})
    )
    table = long.merge(reference, on=key, how="left")
    table["delta"] = table["score"] - table["reference_score"]
    return table[_TASK_FRAME_COLUMNS].sort_values(["model", "provider", "variant", "task", "created_at"],
                                                  ignore_index=True)  # fmt: skip


def scores_frame(*sources: Path | str, reference_variant: str = REFERENCE_VARIANT) -> pd.DataFrame:
    """`task_scores` of every score record under `sources` (other kinds are not read).

    A source that does not exist (e.g. a results tree nothing has written to yet) holds no records.
    """
    paths = score_record_paths(*(source for source in sources if Path(source).exists()))
    return task_scores(load_frame(*paths) if paths else records_frame([]), reference_variant)
