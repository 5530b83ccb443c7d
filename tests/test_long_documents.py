"""The bench's long-document workload: SciFact abstracts from the mirror, or one clear refusal without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedkit.errors import LocalDataError, UsageError
from embedkit.quality.sentences import long_documents


def test_a_fixed_seeded_sample_of_abstracts_with_its_provenance(data_root: Path) -> None:
    documents = long_documents(6, seed=3, root=data_root)
    assert len(documents.texts) == len(set(documents.texts)) == 6
    assert documents.texts == long_documents(6, seed=3, root=data_root).texts
    assert documents.texts != long_documents(6, seed=4, root=data_root).texts
    assert documents.provenance["n"] == 6 and "scifact/corpus.jsonl" in documents.provenance["data_sha256"]
    with pytest.raises(UsageError, match=r"1\.\.5183"):
        long_documents(6000, root=data_root)


def test_without_a_mirror_the_workload_refuses_with_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMBEDKIT_DATA", raising=False)
    with pytest.raises(LocalDataError, match="set EMBEDKIT_DATA"):
        long_documents(8)
