"""Real texts for latency workloads: STSBenchmark's test sentences, from the local data mirror or,
without one, from the HF hub through `datasets` (the dataset and revision mteb's STSBenchmark task
reads), so that `profile` and `bench` work for a user who has the hub and no mirror; and long
documents (SciFact abstracts, from the mirror) for `bench`'s long-document workload."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedkit.errors import LocalDataError, UsageError
from embedkit.paths import data_dir
from embedkit.quality.mirror import data_sha256, distinct_sentences, read_scifact, sts_sentences
from embedkit.system import hub_offline

SOURCE_TASK = "STSBenchmark"
LONG_SOURCE_TASK = "SciFact"
_HOW_TO_FIX = (
    "set EMBEDKIT_DATA to a local data mirror (the layout of ../shared/data), "
    "or let embedkit reach the HF hub (unset HF_HUB_OFFLINE; the sentences then come through `datasets`)"
)


@dataclass(frozen=True)
class Sentences:
    """Distinct sentences in a seeded order, and where they came from (a record's `workload` says it)."""

    texts: list[str]
    provenance: dict[str, Any]


def benchmark_sentences(seed: int = 0, root: Path | None = None) -> Sentences:
    """STSBenchmark's distinct test sentences shuffled by `seed`: the mirror's when there is one (`root`
    or EMBEDKIT_DATA), else the hub's; a LocalDataError naming both ways when neither can be read."""
    if root is not None or data_dir() is not None:
        return Sentences(
            sts_sentences(seed, root),
            {"source": f"{SOURCE_TASK} test sentences (local mirror)", "data_sha256": data_sha256(SOURCE_TASK, root)},
        )
    return _from_hub(seed)


def _from_hub(seed: int) -> Sentences:
    if hub_offline():
        raise LocalDataError(
            f"no sentences for the workload: no local data mirror and HF_HUB_OFFLINE is set; {_HOW_TO_FIX}"
        )
    import mteb

    dataset = mteb.get_task(SOURCE_TASK).metadata.dataset
    try:
        import datasets

        rows = datasets.load_dataset(dataset["path"], revision=dataset["revision"], split="test")
    except Exception as error:  # unreachable, refused or missing: datasets raises many kinds
        raise LocalDataError(
            f"no sentences for the workload: no local data mirror, and {dataset['path']} could not be loaded "
            f"from the HF hub ({type(error).__name__}: {error}); {_HOW_TO_FIX}"
        ) from error
    pairs = ((str(row["sentence1"]), str(row["sentence2"])) for row in rows)
    return Sentences(
        distinct_sentences(pairs, seed),
        {
            "source": f"{SOURCE_TASK} test sentences (HF hub)",
            "dataset": dataset["path"],
            "revision": dataset["revision"],
            "data_sha256": {},
        },
    )


def long_documents(n: int, seed: int = 0, root: Path | None = None) -> Sentences:
    """`n` SciFact corpus abstracts (title and text joined as mteb joins them), a sample seeded by `seed`,
    from the local mirror (`root` or EMBEDKIT_DATA); a LocalDataError saying how to fix it without one."""
    if root is None and data_dir() is None:
        raise LocalDataError(
            f"no long documents for the workload: {LONG_SOURCE_TASK} abstracts are read from a local data "
            "mirror and none is set; set EMBEDKIT_DATA to one (the layout of ../shared/data)"
        )
    corpus = read_scifact(root).corpus
    if not 1 <= n <= len(corpus):
        raise UsageError(f"can sample 1..{len(corpus)} {LONG_SOURCE_TASK} abstracts, not {n}")
    sample = random.Random(seed).sample(corpus, n)
    return Sentences(
        [f"{document.title} {document.text}".strip() for document in sample],
        {
            "source": f"{LONG_SOURCE_TASK} corpus abstracts (local mirror)",
            "n": n,
            "seed": seed,
            "data_sha256": data_sha256(LONG_SOURCE_TASK, root),
        },
    )
