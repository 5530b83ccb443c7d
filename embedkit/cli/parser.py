"""The argument parser: one sub-parser per verb, its defaults read from the library (`embedkit.defaults`,
the profile grid's axes)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from embedkit import defaults
from embedkit.cli import commands
from embedkit.cli.arguments import positive_number
from embedkit.cli.commands import Result

DESCRIPTION = "`embedkit` command line: every verb prints text for people or, with --json, one JSON object."


def _add_weights_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", choices=defaults.WEIGHTS, default=defaults.DEFAULT_WEIGHTS,
                        help="checkpoint (default), or random: the model's architecture twin, "
                             "built from its bundled config (latency only)")  # fmt: skip


def _add_load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help=f"MODEL[:VARIANT], e.g. {defaults.DEFAULT_MODEL}:int8-pc")
    parser.add_argument("--provider", default=defaults.DEFAULT_PROVIDER,
                        help="CPU, CoreML, OpenVINO, CUDA or ORT's full name")  # fmt: skip
    parser.add_argument("--fallback", default=None, help="provider to use (and record) if --provider is missing")
    parser.add_argument("--provider-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads")
    _add_weights_option(parser)


def _add_trailing_json(parser: argparse.ArgumentParser) -> None:
    # `embedkit score ... --json` as well as `embedkit --json score ...`; SUPPRESS keeps the latter.
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object")


def _verb(verbs: Any, name: str, handler: Callable[[argparse.Namespace], Result], help: str,
          **defaults_: Any) -> argparse.ArgumentParser:  # fmt: skip
    parser: argparse.ArgumentParser = verbs.add_parser(name, help=help)
    parser.set_defaults(handler=handler, **defaults_)
    return parser


def _add_model_verbs(verbs: Any) -> None:
    from embedkit.models.export import QUANTIZATION_ARCHS, VARIANTS

    _verb(verbs, "models", commands.models_verb, "known model specs and where they come from")
    export = _verb(verbs, "export", commands.export_verb, "export variants of a model")
    export.add_argument("model")
    export.add_argument("--variant", action="append", help=f"{' '.join(VARIANTS)} (repeatable)")
    export.add_argument("--quantization-arch", default=None, help=f"{' '.join(QUANTIZATION_ARCHS)} (default: this CPU)")
    _add_weights_option(export)
    inspect = _verb(verbs, "inspect", commands.inspect_verb, "graph facts and the CoreML/NNAPI usability report")
    inspect.add_argument(
        "path", help="an .onnx file, a directory holding one, or MODEL[:VARIANT] (exported if need be)"
    )
    _add_weights_option(inspect)
    embed = _verb(verbs, "embed", commands.embed_verb, "embed texts")
    _add_load_options(embed)
    embed.add_argument("--text", action="append", help="a text (repeatable)")
    embed.add_argument("--file", help="a file with one text per line")
    embed.add_argument("--batch-size", type=int, default=defaults.BATCH_SIZE)
    embed.add_argument("--prompt", default=None, help="prompt name from the model spec, e.g. query")
    _add_load_options(
        _verb(verbs, "parity", commands.parity_verb, "compare a variant with the PyTorch reference; store the gate")
    )


def _add_quality_verbs(verbs: Any) -> None:
    score = _verb(verbs, "score", commands.score_verb, "MTEB main scores through mteb itself; writes a score record")
    _add_load_options(score)
    score.add_argument("--tasks", nargs="+", required=True, metavar="TASK",
                       help="MTEB task names, comma- or space-separated, e.g. STSBenchmark,SICK-R")  # fmt: skip
    score.add_argument("--data", default=None, help="local data mirror (sets EMBEDKIT_DATA for this run)")
    score.add_argument("--force", action="store_true", help="score a variant that failed its parity gate (recorded)")
    score.add_argument("--batch-size", type=int, default=defaults.BATCH_SIZE)
    score.add_argument("--out", default=None,
                       help="records directory (default results/records); mteb's result files go to OUT/mteb")  # fmt: skip
    _add_trailing_json(score)
    verify = _verb(verbs, "verify", commands.verify_verb, "re-run a score record without the cache; |delta| per task <= 1e-6",
                   exit_1_unless_passed=True)  # fmt: skip
    verify.add_argument("record", help="a score record file")
    verify.add_argument("--data", default=None, help="the local data mirror the record was scored on (EMBEDKIT_DATA)")
    _add_trailing_json(verify)
    probe = _verb(verbs, "probe", commands.probe_verb, "the seed plan's quick probe: pair separation and norms")
    _add_load_options(probe)
    probe.add_argument("--prompt", default=None, help="prompt name from the model spec, e.g. query")
    _add_trailing_json(probe)


def _add_latency_verbs(verbs: Any) -> None:
    from embedkit.latency.grid import AXES

    bench = _verb(
        verbs, "bench", commands.bench_verb, "embedkit vs raw session.run vs sentence-transformers, interleaved"
    )
    bench.add_argument("model", nargs="?", default=defaults.DEFAULT_MODEL)
    bench.add_argument("--variant", action="append",
                       help=f"variants to bench (default {', '.join(defaults.BENCH_VARIANTS)})")  # fmt: skip
    bench.add_argument("--calls", type=int, default=defaults.BENCH_SINGLE_CALLS, help="single-text calls per contender")
    bench.add_argument(
        "--sentences", type=int, default=defaults.BENCH_SENTENCES, help="real sentences for batch throughput"
    )
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--leak-calls", type=int, default=defaults.BENCH_LEAK_CALLS,
                       help="embed calls (mixed batch sizes) the leak check measures RSS growth over")  # fmt: skip
    bench.add_argument("--documents", type=int, default=defaults.BENCH_LONG_DOCUMENTS,
                       help="SciFact abstracts for the long-document workload (from the data mirror)")  # fmt: skip
    bench.add_argument("--out", default=None, help="directory for the bench record (default results/records)")
    _add_trailing_json(bench)
    profile = _verb(
        verbs, "profile", commands.profile_verb, "per-stage latency over a grid, one fresh process per point"
    )
    profile.add_argument("models", nargs="*", metavar="MODEL[:VARIANT]", help="e.g. all-MiniLM-L6-v2:int8-pc")
    profile.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="MODEL[:VARIANT][@PROVIDER] twice: run them interleaved, print the ratio A/B with its CI",
    )
    profile.add_argument(
        "--provider",
        action="append",
        help=f"{defaults.DEFAULT_PROVIDER} (default), OpenVINO, CoreML, CUDA (repeatable)",
    )
    profile.add_argument(
        "--provider-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="for the non-CPU providers; a key given with several values becomes a grid axis",
    )
    for axis in AXES:
        default = " ".join(axis.as_text(value) for value in axis.default)
        profile.add_argument(
            axis.flag,
            dest=axis.key,
            action="append",
            type=axis.parse,
            choices=axis.choices,
            help=f"{axis.help} (repeatable; default {default})",
        )
    profile.add_argument(
        "--samples", type=int, default=defaults.MIN_SAMPLES, help="at least this many timed calls per point"
    )
    profile.add_argument(
        "--min-seconds", type=float, default=defaults.MIN_SECONDS, help="and at least this long per point"
    )
    profile.add_argument(
        "--max-seconds", type=float, default=None, help="cap per point, even below --samples (the record says so)"
    )
    profile.add_argument("--out", default=None, help="records directory (default results/records)")  # fmt: skip
    _add_weights_option(profile)


def _add_result_verbs(verbs: Any) -> None:
    from embedkit.analysis.tradeoff import METRICS

    results = verbs.add_parser("results", help="work with result records")
    merge = _verb(results.add_subparsers(dest="results_verb", required=True), "merge", commands.results_merge_verb,
                  "merge records from many machines into one tree")  # fmt: skip
    merge.add_argument("sources", nargs="+")
    merge.add_argument("--into", required=True)
    decide = _verb(
        verbs, "decide", commands.decide_verb, "the decision card: GO / TRY ALTERNATIVE / FALLBACK from records"
    )
    decide.add_argument("results", nargs="*", help="record files or directories (default results/)")
    decide.add_argument("--excellent-ms", type=float, default=defaults.EXCELLENT_MS)
    decide.add_argument("--target-ms", type=float, default=defaults.TARGET_MS)
    decide.add_argument("--acceptable-ms", type=float, default=defaults.ACCEPTABLE_MS)
    decide.add_argument("--quality-floor", type=float, default=None, help="mean MTEB main score (0-1) to reach")
    decide.add_argument("--quality-excellent", type=float, default=None)
    decide.add_argument("--batch", type=int, default=defaults.DECISION_BATCH_SIZE,
                        help="the grid point judged: batch size")  # fmt: skip
    decide.add_argument("--seq", default=defaults.DECISION_SEQ_BUCKET, help="the grid point judged: sequence bucket")
    report = _verb(
        verbs, "report", commands.report_verb, "execute 04_tradeoff.ipynb on a sweep's records: report, figures"
    )
    report.add_argument("sweep", nargs="?", default=defaults.DEFAULT_SWEEP,
                        help="sweep name under results/, or a records directory")  # fmt: skip
    report.add_argument("--metric", choices=METRICS, default=METRICS[0],
                        help="x axis: P95 latency of one text (default), or texts/s")  # fmt: skip
    report.add_argument(
        "--tasks", nargs="+", default=None, help="MTEB tasks to average (default: those every score has)"
    )
    report.add_argument(
        "--batch",
        type=int,
        default=None,
        help="grid point: batch size (default 1 for latency, the largest profiled for throughput)",
    )
    report.add_argument("--seq", default=defaults.DECISION_SEQ_BUCKET, help="grid point: sequence bucket")
    report.add_argument("--kernel", default=defaults.KERNEL, help="Jupyter kernel that executes the notebook")


def _add_run_verbs(verbs: Any) -> None:
    sweep = _verb(
        verbs, "sweep", commands.sweep_verb, "run a sweep file: exports, quality (parallel), profiles (serial)"
    )
    sweep.add_argument("file", help="experiments/*.yaml")
    sweep.add_argument("--force", action="store_true", help="redo runs that are already complete")
    sweep.add_argument("--scheduler", default=None, help="address of an existing dask scheduler")
    sweep.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes for quality runs")
    sweep.add_argument(
        "--notebooks",
        default=None,
        help="directory of the stage notebooks (01_export, 02_profile, 03_quality); default embedkit's",
    )
    sweep.add_argument(
        "--memory-mb",
        type=positive_number,
        default=None,
        help="every run's memory ceiling (resident MB of its kernel and children); overrides the file",
    )
    sweep.add_argument(
        "--seconds",
        type=positive_number,
        default=None,
        help="every run's time budget from its kernel being ready; overrides the file",
    )
    demo = _verb(
        verbs,
        "demo",
        commands.demo_verb,
        f"the main job: run experiments/{defaults.DEFAULT_SWEEP}.yaml, publish its report",
    )
    demo.add_argument("--file", default=None, help=f"a sweep file (default embedkit's {defaults.DEFAULT_SWEEP}.yaml)")
    demo.add_argument("--force", action="store_true", help="redo runs that are already complete")


def _add_tune_verb(verbs: Any) -> None:
    tune = _verb(verbs, "tune", commands.tune_verb,
                 "search variant x provider x threads x spinning x max_seq_length for a latency or throughput goal")  # fmt: skip
    tune.add_argument("model", help=f"a model, e.g. {defaults.DEFAULT_MODEL}")
    goal = tune.add_mutually_exclusive_group(required=True)
    goal.add_argument("--p95-ms", type=positive_number, help="highest quality whose P95 (batch 1, short) fits this")
    goal.add_argument("--min-throughput", type=positive_number,
                      help=f"cheapest configuration reaching this many texts/s (batch {defaults.TUNE_THROUGHPUT_BATCH}, "
                           f"{defaults.TUNE_THROUGHPUT_SEQ} texts) above --floor")  # fmt: skip
    tune.add_argument("--tasks", action="append", required=True, help="mteb tasks (comma-separated or repeated)")
    tune.add_argument("--floor", type=positive_number, default=None, help="lowest acceptable mean main score")
    tune.add_argument(
        "--provider", action="append", default=None, help=f"providers (default {defaults.DEFAULT_PROVIDER})"
    )
    tune.add_argument("--variant", action="append", default=None,
                      help=f"variants to search (default {' '.join(defaults.TUNE_VARIANTS)})")  # fmt: skip
    tune.add_argument("--out", default=None, help="records directory (default results/records)")
    _add_trailing_json(tune)


def _add_published_verb(verbs: Any) -> None:
    published = _verb(verbs, "published", commands.published_verb,
                      "a model's published MTEB main scores (test split), read by mteb from the results repository")  # fmt: skip
    published.add_argument("model", help="a known hub spec (e.g. bge-small-en-v1.5) or a hub id org/name")
    published.add_argument("--tasks", nargs="+", default=None, metavar="TASK",
                           help="MTEB task names, comma- or space-separated (default: every task published)")  # fmt: skip
    published.add_argument("--results", default=None,
                           help="a copy of the results repository in mteb's ResultCache layout "
                                "(default $EMBEDKIT_PUBLISHED, else mteb's own cache, downloaded when missing)")  # fmt: skip
    published.add_argument("--record", action="store_true", help="also write a `published` record")
    published.add_argument("--out", default=None, help="records directory for --record (default results/records)")
    _add_trailing_json(published)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embedkit", description=DESCRIPTION)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    verbs = parser.add_subparsers(dest="verb", required=True)
    for add in (_add_model_verbs, _add_quality_verbs, _add_published_verb, _add_latency_verbs, _add_result_verbs,
                _add_run_verbs, _add_tune_verb):  # fmt: skip
        add(verbs)
    return parser
