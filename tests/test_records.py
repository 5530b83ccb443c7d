"""Record schema, atomic files, provenance, and merging records from several machines."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from embedkit.errors import (
    CorruptRecordError,
    InvalidRecordError,
    RecordClashError,
    RecordVersionError,
    UnknownNameError,
)
from embedkit.latency import placement
from embedkit.results import provenance
from embedkit.results.files import (
    RECORD_SUFFIX,
    QuarantineWarning,
    load_record_set,
    load_records,
    read_record,
    write_record,
)
from embedkit.results.records import new_record
from embedkit.results.samples import decode_samples, encode_samples, latency_sections
from embedkit.results.schema import SCHEMA_VERSION, record_schema
from embedkit.results.tables import load_frame

MODEL = "all-MiniLM-L6-v2"


def model_block(model: str = MODEL, variant: str = "fp32") -> dict[str, Any]:
    return {
        "spec": {"name": model, "pooling": "mean", "max_seq_length": 256},
        "variant": {"name": variant, "sha256": "ab" * 32, "manifest": {"files": {"model.onnx": {"sha256": "cd" * 32}}}},
    }


def profile_body(center_ms: float = 10.0, *, seed: int = 0, variant: str = "fp32") -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    total = rng.normal(center_ms, center_ms * 0.01, 300)
    stage_samples = {"tokenize": total * 0.05, "feeds": total * 0.01, "run": total * 0.9, "pool": total * 0.04}
    cpu = placement.ProviderShare(nodes=120, node_share=1.0, time_us=90_000, time_share=1.0, partitions=1)
    return {
        "model": model_block(variant=variant),
        "grid": {
            "model": MODEL,
            "variant": variant,
            "provider": "CPUExecutionProvider",
            "provider_options": {},
            "batch_size": 1,
            "seq_bucket": "short",
            "intra_op_threads": 2,
            "seq_length": 16,
        },
        **latency_sections({**stage_samples, "total": total}, resamples=200),
        "throughput": {"texts_per_s": np.float32(1000 / center_ms), "tokens_per_s": 16_000 / center_ms},
        "peak_rss_mb": 180.5,
        "cold_start": {"session_create_ms": 120.0, "first_run_ms": 30.0},
        "warmup": {"runs": 40, "stable": True, "last_relative_change": 0.01},
        "placement": placement.Placement(("CPUExecutionProvider",), 300, {"CPUExecutionProvider": cpu}).to_record(),
    }


def score_body(scores: dict[str, float] | None = None) -> dict[str, Any]:
    scores = scores or {"STSBenchmark": 0.82, "BIOSSES": 0.81}
    return {
        "model": model_block(),
        "provider": "CPUExecutionProvider",
        "scores": scores,
        "tasks": {task: {"main_score": value, "split": "test"} for task, value in scores.items()},
        "forced": False,
        "data_sha256": {task: "ef" * 32 for task in scores},
    }


def on_machine(machine_id: str) -> dict[str, Any]:
    return {**provenance.collect(), "machine_id": machine_id}


@pytest.fixture(scope="module")
def profile() -> dict[str, Any]:
    return new_record("profile", profile_body())


# --- provenance ---------------------------------------------------------------------------------


def test_provenance_is_complete_and_fits_the_record_schema() -> None:
    collected = provenance.collect()
    jsonschema.validate(collected, record_schema("profile")["properties"]["provenance"])
    assert collected["packages"]["onnxruntime"] is not None
    assert set(provenance.RELEVANT_PACKAGES) == set(collected["packages"])
    assert "CPUExecutionProvider" in collected["onnxruntime"]["available_providers"]
    assert collected["cpu"]["logical_cores"] >= 1
    assert collected["machine_id"] == provenance.collect()["machine_id"]


def test_provenance_results_are_independent_copies() -> None:
    first = provenance.collect()
    first["packages"]["numpy"] = "edited"
    assert provenance.collect()["packages"]["numpy"] != "edited"


def test_git_state_is_null_without_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable anywhere
    assert provenance.git_state() == {"commit": None, "dirty": None}


def test_machine_id_can_be_set_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    provenance.machine_id.cache_clear()
    monkeypatch.setenv(provenance.MACHINE_ID_ENV, "mac-studio-1")
    try:
        assert provenance.machine_id() == ("mac-studio-1", "env:EMBEDKIT_MACHINE_ID")
    finally:
        provenance.machine_id.cache_clear()


# --- round trip ---------------------------------------------------------------------------------


def test_profile_round_trip(profile: dict[str, Any], tmp_path: Path) -> None:
    path = write_record(profile, tmp_path)
    assert path == tmp_path / f"{profile['record_id']}{RECORD_SUFFIX}"
    assert read_record(path) == profile
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    assert profile["record_id"].startswith(f"profile-{profile['machine_id']}-")
    assert isinstance(profile["throughput"]["texts_per_s"], float)  # numpy scalars became JSON numbers


def test_samples_round_trip_and_reproduce_the_statistics(profile: dict[str, Any]) -> None:
    total = decode_samples(profile["samples"]["total"])
    assert total.dtype == np.float32 and total.size == 300
    assert profile["stages"]["total"]["p95"] == pytest.approx(float(np.percentile(total.astype(np.float64), 95)))
    encoded = encode_samples(np.array([1.5, 2.25, 1e-3]))
    np.testing.assert_array_equal(decode_samples(encoded), np.array([1.5, 2.25, 1e-3], dtype=np.float32))


def test_damaged_samples_are_detected() -> None:
    encoded = encode_samples([1.0, 2.0])
    with pytest.raises(InvalidRecordError, match="n says"):
        decode_samples({**encoded, "n": 3})
    with pytest.raises(InvalidRecordError, match="does not decode"):
        decode_samples({**encoded, "data": encoded["data"][:-4]})


def test_score_round_trip(tmp_path: Path) -> None:
    score = new_record("score", score_body())
    assert read_record(write_record(score, tmp_path)) == score


# --- rejection ----------------------------------------------------------------------------------


def _broken(record: dict[str, Any], edit) -> dict[str, Any]:
    copied = copy.deepcopy(record)
    edit(copied)
    return copied


INVALID_EDITS = {
    "missing stage": lambda r: r["stages"].pop("pool"),
    "negative latency": lambda r: r["stages"]["total"].update(p95=-1.0),
    "missing CI": lambda r: r["stages"]["run"].pop("p95_ci"),
    "short provider name": lambda r: r["grid"].update(provider="CPU"),
    "unknown top-level field": lambda r: r.update(extra=1),
    "unknown kind": lambda r: r.update(kind="sweep-run"),
    "sample count mismatch": lambda r: r["stages"]["total"].update(n=299),
    "grid names another variant": lambda r: r["grid"].update(variant="int8"),
    "machine differs from provenance": lambda r: r.update(machine_id="elsewhere"),
    "share above one": lambda r: r["placement"]["providers"]["CPUExecutionProvider"].update(node_share=1.5),
    "bad sha256": lambda r: r["model"]["variant"].update(sha256="xyz"),
    "NaN value": lambda r: r.update(peak_rss_mb=float("nan")),
}


@pytest.mark.parametrize("edit", INVALID_EDITS.values(), ids=INVALID_EDITS.keys())
def test_invalid_records_are_rejected_on_write_and_on_read(profile: dict[str, Any], tmp_path: Path, edit) -> None:
    bad = _broken(profile, edit)
    with pytest.raises(InvalidRecordError):
        write_record(bad, tmp_path)
    assert list(tmp_path.iterdir()) == []
    path = tmp_path / "bad.record.json"
    path.write_text(json.dumps(bad))  # NaN is written as a bare NaN literal: not JSON either
    with pytest.raises((InvalidRecordError, CorruptRecordError)) as caught:
        read_record(path)
    assert caught.value.path == path and str(path) in str(caught.value)


def test_score_needs_details_for_every_score() -> None:
    body = score_body()
    body["tasks"].pop("BIOSSES")
    with pytest.raises(InvalidRecordError, match="task details"):
        new_record("score", body)


def test_score_from_the_hub_names_dataset_revisions_instead_of_files(tmp_path: Path) -> None:
    hub = {
        "data_sha256": {},
        "data_revision": {
            "STSBenchmark": {"path": "mteb/stsbenchmark-sts", "revision": "b0fddb56ed78048fa8b90373c8a3cfc37b684831"},
            "BIOSSES": {"path": "mteb/biosses-sts", "revision": "d3fb88f8f02e40887cd149695127462bbcf29b4a"},
        },
        "scoring": {"batch_size": 32, "provider_options": {}, "providers": ["CPUExecutionProvider"]},
    }
    score = new_record("score", {**score_body(), **hub})
    assert read_record(write_record(score, tmp_path)) == score

    unidentified = {**score_body(), "data_sha256": {}}
    with pytest.raises(InvalidRecordError, match=r"no data_sha256 and no data_revision for \['BIOSSES'"):
        new_record("score", unidentified)
    stray = {**score_body(), "data_revision": {"SciFact": {"path": "mteb/scifact", "revision": "abc"}}}
    with pytest.raises(InvalidRecordError, match="SciFact"):
        new_record("score", stray)


@pytest.mark.parametrize(("version", "word"), [(SCHEMA_VERSION + 1, "newer"), (0, "older")])
def test_other_schema_versions_give_a_clear_error(profile: dict[str, Any], tmp_path: Path, version, word) -> None:
    path = tmp_path / "other.record.json"
    path.write_text(json.dumps({**profile, "schema_version": version}))
    with pytest.raises(RecordVersionError, match=word) as caught:
        read_record(path)
    assert caught.value.path == path


@pytest.mark.parametrize(
    "content", [b'{"schema_version": 1, "kind": "prof', b"\x89PNG\r\n\x1a\n", b"[1, 2, 3]", b""], ids=repr
)
def test_corrupt_files_name_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "corrupt.record.json"
    path.write_bytes(content)
    with pytest.raises(CorruptRecordError) as caught:
        read_record(path)
    assert caught.value.path == path and "corrupt.record.json" in str(caught.value)


def test_a_failed_write_leaves_the_previous_file_intact(
    profile: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_record(profile, tmp_path)
    before = path.read_bytes()
    changed = {**profile, "peak_rss_mb": 999.0}

    def crash(*_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_record(changed, tmp_path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_corrupt_records_are_quarantined_on_load_and_listed(profile: dict[str, Any], tmp_path: Path) -> None:
    good = write_record(profile, tmp_path)
    torn = tmp_path / "torn.record.json"
    torn.write_bytes(good.read_bytes()[:50])
    with pytest.warns(QuarantineWarning, match="torn.record.json"):
        loaded = load_record_set(tmp_path)
    assert loaded.records == [profile] and loaded.paths == [good]
    [entry] = loaded.quarantined
    assert entry.path == str(torn) and not torn.exists() and Path(entry.moved_to).read_bytes() == good.read_bytes()[:50]
    frame = load_frame(tmp_path)  # moved aside: not found again
    assert list(frame["record_id"]) == [profile["record_id"]] and frame.attrs["quarantined"] == []


def test_a_corrupt_record_that_cannot_be_moved_is_still_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torn = tmp_path / "torn.record.json"
    torn.write_text("{")

    def read_only(*_: Any) -> None:
        raise PermissionError("read-only file system")

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.warns(QuarantineWarning, match="could not be moved aside"):
        frame = load_frame(tmp_path)
    assert frame.empty and torn.exists()
    assert frame.attrs["quarantined"][0]["path"] == str(torn) and frame.attrs["quarantined"][0]["moved_to"] is None


def test_invalid_records_are_not_quarantined_but_refused(profile: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "invalid.record.json"
    path.write_text(json.dumps({**profile, "peak_rss_mb": -1}))
    with pytest.raises(InvalidRecordError):
        load_records(tmp_path)
    assert path.exists()


def test_unknown_kind_has_no_schema() -> None:
    with pytest.raises(UnknownNameError, match="known kinds: profile, score"):
        record_schema("sweep-run")


# --- many machines ------------------------------------------------------------------------------


def test_records_from_several_machines_merge_without_clashing(tmp_path: Path) -> None:
    linux, mac = tmp_path / "linux", tmp_path / "mac"
    linux_box = on_machine("linux-box")
    on_linux = [new_record("profile", profile_body(10.0, seed=seed), provenance=linux_box) for seed in (1, 2)]
    on_mac = new_record("profile", profile_body(6.0, seed=3), provenance=on_machine("mac-m2"))
    score = new_record("score", score_body(), provenance=linux_box)
    for record in [*on_linux, score]:
        write_record(record, linux)
    write_record(on_mac, mac)
    write_record(on_linux[0], mac)  # the same record copied to the other results dir
    (linux / "mteb_result.json").write_text("{}")  # other JSON in a results dir is not a record

    frame = load_frame(linux, mac)
    assert len(frame) == 4 and frame["record_id"].is_unique
    assert sorted(frame["machine_id"].unique()) == ["linux-box", "mac-m2"]
    assert list(frame.columns[:8]) == [
        "record_id", "kind", "machine_id", "created_at", "model", "variant", "provider", "path"
    ]  # fmt: skip
    assert {"stages.total.p95", "grid.batch_size", "scores.STSBenchmark", "provenance.cpu.model"} <= set(frame.columns)
    assert not any(column.startswith(("samples", "tasks.", "model.variant.manifest")) for column in frame.columns)
    assert (frame.loc[frame.kind == "profile", "provider"] == "CPUExecutionProvider").all()


def test_two_different_records_with_one_id_clash(profile: dict[str, Any], tmp_path: Path) -> None:
    write_record(profile, tmp_path / "a")
    write_record({**profile, "peak_rss_mb": 1.0}, tmp_path / "b")
    with pytest.raises(RecordClashError, match=profile["record_id"]):
        load_records(tmp_path)
