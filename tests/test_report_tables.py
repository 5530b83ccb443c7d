"""What the report shows beside the plots: every point's records and re-run commands, the machines."""

from __future__ import annotations

import math

import pandas as pd
from records_factory import CPU

from embedkit import defaults
from embedkit.analysis.tradeoff import Tradeoff
from embedkit.latency.grid import AXES
from embedkit.publish import report
from embedkit.publish.commands import profile_command, score_command


def test_point_sources_name_records_and_rerun_commands(tradeoff: Tradeoff, frame: pd.DataFrame, sweep) -> None:
    sources = report.point_sources(tradeoff, frame).set_index("point")
    openvino = sources.loc["all-MiniLM-L6-v2:fp32 · OpenVINO"]
    assert openvino.profile_record_id == sweep[1]["openvino"]["record_id"]
    assert openvino.profile_command == (
        "embedkit profile all-MiniLM-L6-v2:fp32 --provider OpenVINO --provider-option num_of_threads=2 "
        "--batch 1 --seq short --threads 2"
    )
    assert openvino.score_command == (
        "embedkit score all-MiniLM-L6-v2:fp32 --provider CPU --tasks BIOSSES SICK-R STSBenchmark SciFact"
    )
    mac = sources[sources["machine_id"] == "mac-m2"]
    assert (mac["score_machine_id"] == "linux-box").all()  # quality measured elsewhere, and said so


def test_profile_command_repeats_the_sampling_and_default_threads() -> None:
    row = {
        "grid.model": "m", "grid.variant": "int8", "grid.provider": CPU, "grid.batch_size": 8,
        "grid.seq_bucket": "long", "grid.intra_op_threads": None, "grid.sampling.min_samples": 300,
        "grid.sampling.min_seconds": 3.0, "grid.sampling.max_seconds": math.nan,
    }  # fmt: skip
    assert profile_command(row) == (
        "embedkit profile m:int8 --provider CPU --batch 8 --seq long --threads 0 --samples 300 --min-seconds 3"
    )
    assert profile_command({**row, "grid.spinning": "always"}) == (
        "embedkit profile m:int8 --provider CPU --batch 8 --seq long --threads 0 --spinning always --samples 300 "
        "--min-seconds 3"
    )


def test_profile_command_names_every_grid_axis() -> None:
    row = {"grid.model": "m", "grid.variant": "fp32", "grid.provider": CPU}
    row |= {f"grid.{axis.field}": axis.default[0] for axis in AXES}
    command = profile_command(row)
    for axis in AXES:
        if axis.default == (None,):
            assert axis.flag not in command  # None is the flag's own default (max_seq_length: the model's)
        else:
            assert f" {axis.flag} {axis.as_text(axis.default[0])}" in command
    capped = profile_command({**row, "grid.max_seq_length": 64})
    assert " --max-seq-length 64" in capped


def test_score_command_repeats_a_batch_size_other_than_the_default() -> None:
    score = {"model": "m", "variant": "int8", "provider": CPU, "forced": False}
    assert score_command({**score, "scoring.batch_size": defaults.BATCH_SIZE}, ["SICK-R"]) == (
        "embedkit score m:int8 --provider CPU --tasks SICK-R"
    )
    assert score_command({**score, "scoring.batch_size": 8.0, "forced": True}, ["SICK-R"]) == (
        "embedkit score m:int8 --provider CPU --tasks SICK-R --batch-size 8 --force"
    )


def test_machines_table_counts_each_machines_records(frame: pd.DataFrame) -> None:
    machines = report.machines_table(frame).set_index("machine_id")
    assert machines.loc["linux-box", ["profile records", "score records"]].tolist() == [8, 5]
    assert machines.loc["mac-m2", ["profile records", "score records"]].tolist() == [2, 0]
    assert machines.loc["mac-m2", "cpu"] == "Synthetic CPU @ 2.0GHz"
