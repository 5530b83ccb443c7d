"""Workload sentences: the mirror's, or the hub's through `datasets` when there is no mirror."""

from __future__ import annotations

import datasets
import pytest

from embedkit.errors import LocalDataError
from embedkit.latency.workload import bucket_texts
from embedkit.quality.mirror import read_stsbenchmark
from embedkit.quality.sentences import benchmark_sentences


@pytest.fixture()
def no_mirror(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("EMBEDKIT_DATA", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return monkeypatch


def test_without_a_mirror_the_hub_dataset_mteb_reads_gives_the_same_sentences(no_mirror, data_root):
    # A stand-in for the hub: the mirror's own STSBenchmark test pairs, served as `datasets` rows.
    rows = [
        {"sentence1": p.sentence1, "sentence2": p.sentence2, "score": p.score} for p in read_stsbenchmark(data_root)
    ]
    asked = []

    def load_dataset(path: str, *, revision: str, split: str) -> list[dict[str, object]]:
        asked.append((path, revision, split))
        return rows

    no_mirror.setattr(datasets, "load_dataset", load_dataset)
    from_hub = benchmark_sentences(seed=3)
    assert asked and asked[0][0] == "mteb/stsbenchmark-sts" and asked[0][2] == "test" and len(asked[0][1]) == 40
    assert from_hub.provenance["source"].endswith("(HF hub)") and from_hub.provenance["revision"] == asked[0][1]
    assert from_hub.texts == benchmark_sentences(seed=3, root=data_root).texts


def test_the_profile_workload_builds_from_the_hub_stand_in(no_mirror, data_root, tiny_embedder):
    rows = [{"sentence1": p.sentence1, "sentence2": p.sentence2} for p in read_stsbenchmark(data_root)[:200]]
    no_mirror.setattr(datasets, "load_dataset", lambda path, **_: rows)
    batch = bucket_texts(tiny_embedder.tokenizer, "short", 4)
    record = batch.to_record()
    assert record["source"].endswith("(HF hub)") and record["dataset"] == "mteb/stsbenchmark-sts"
    assert record["texts"] == 4 and all(count == batch.target_tokens for count in batch.token_counts)


def test_offline_without_a_mirror_one_message_says_both_ways(no_mirror):
    no_mirror.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LocalDataError, match=r"EMBEDKIT_DATA.*unset HF_HUB_OFFLINE"):
        benchmark_sentences()


def test_an_unreachable_hub_names_its_cause_and_both_ways(no_mirror):
    def unreachable(*_: object, **__: object) -> None:
        raise ConnectionError("no route to huggingface.co")

    no_mirror.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(LocalDataError, match=r"ConnectionError: no route.*EMBEDKIT_DATA.*HF hub"):
        benchmark_sentences()


@pytest.mark.parametrize(("value", "offline"), [("1", True), ("yes", True), ("ON", True), ("true", True),
                                                ("0", False), ("", False), ("false", False), ("maybe", False)])  # fmt: skip
def test_hub_offline_reads_the_switch_as_huggingface_hub_does(monkeypatch, value, offline):
    from huggingface_hub.constants import _is_true

    from embedkit.system import hub_offline

    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub_offline() is offline is _is_true(value)
