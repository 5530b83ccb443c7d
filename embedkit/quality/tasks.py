"""mteb's own tasks, with their data from the local mirror (`embedkit.quality.mirror`) when there is one.

Only a task's `load_data` is replaced, so mteb's metadata, splits, evaluator and main score stay; the
mirror's records are laid out as mteb's own loader lays out the hub's.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

import datasets.config
import huggingface_hub.constants
import mteb
from datasets import Dataset, DatasetDict
from mteb.abstasks import AbsTask

from embedkit.errors import LocalDataError, UsageError
from embedkit.paths import data_dir
from embedkit.quality import mirror

EVAL_SPLIT = "test"  # the one split mteb evaluates for every task of the local mirror


def get_task(name: str) -> AbsTask:
    """mteb's task `name`; with EMBEDKIT_DATA set, its data comes from the local mirror.

    Without EMBEDKIT_DATA the task loads from the Hugging Face hub as usual.
    """
    try:
        task = mteb.get_task(name)
    except KeyError as error:
        raise UsageError(f"mteb has no task {name!r}") from error
    root = data_dir()
    if root is None:
        return task
    if name not in mirror.LOCAL_TASKS:
        raise LocalDataError(
            f"{name} is not in the local data mirror ({root}), which holds {list(mirror.LOCAL_TASKS)};"
            " unset EMBEDKIT_DATA to load it from the hub"
        )
    _hub_offline()
    task.load_data = partial(_load_local_data, task, root)  # type: ignore[method-assign]
    return task


def local_data_root(task: AbsTask) -> Path | None:
    """The mirror `get_task` pointed this task at, or None for a task that loads from the hub."""
    loader = task.__dict__.get("load_data")
    return loader.args[1] if isinstance(loader, partial) and loader.func is _load_local_data else None


def _hub_offline() -> None:
    """Forbid hub access for the rest of the process: the data must come from the mirror.

    huggingface_hub and datasets read these switches once, at import (mteb has imported them by
    now), so their module-level settings are updated along with the environment.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    datasets.config.HF_HUB_OFFLINE = True
    datasets.config.HF_DATASETS_OFFLINE = True


def _load_local_data(task: AbsTask, root: Path, num_proc: int | None = None, **_: Any) -> None:
    """Stand-in for `task.load_data`: the mirror's files in the layout mteb's loader produces."""
    if task.data_loaded:
        return
    name = task.metadata.name
    if name in mirror.STS_TASKS:
        task.dataset = _sts_dataset(mirror.read_sts(name, root))
    elif name == "SciFact":
        task.dataset = _retrieval_dataset(mirror.read_scifact(root))
    else:
        task.dataset = _classification_dataset(mirror.read_banking77(root))
    task.dataset_transform(num_proc=num_proc)  # as mteb's load_data does; a no-op for these tasks
    task.data_loaded = True


def _sts_dataset(pairs: list[mirror.STSPair]) -> DatasetDict:
    columns = {
        "sentence1": [pair.sentence1 for pair in pairs],
        "sentence2": [pair.sentence2 for pair in pairs],
        "score": [pair.score for pair in pairs],
    }
    return DatasetDict({EVAL_SPLIT: Dataset.from_dict(columns)})


def _retrieval_dataset(retrieval: mirror.RetrievalData) -> dict[str, dict[str, dict[str, Any]]]:
    corpus = Dataset.from_dict(
        {
            "id": [doc.id for doc in retrieval.corpus],
            "title": [doc.title for doc in retrieval.corpus],
            "text": [doc.text for doc in retrieval.corpus],
        }
    )
    queries = Dataset.from_dict(
        {"id": [query.id for query in retrieval.queries], "text": [query.text for query in retrieval.queries]}
    )
    split = {
        "corpus": corpus,
        "queries": queries,
        "relevant_docs": retrieval.relevant_docs,
        "top_ranked": None,  # plain retrieval: no first-stage ranking to rerank
    }
    return {"default": {EVAL_SPLIT: split}}


def _classification_dataset(classification: mirror.ClassificationData) -> DatasetDict:
    return DatasetDict(
        {
            split: Dataset.from_dict({"text": [row.text for row in rows], "label": [row.label for row in rows]})
            for split, rows in (("train", classification.train), (EVAL_SPLIT, classification.test))
        }
    )
