"""`embedkit` command line: every verb prints text for people or, with --json, one JSON object.

Each verb reads its arguments and calls the library; the defaults it shows are the library's own
(`embedkit.defaults`, the profile grid's axes). An `EmbedkitError` — a user's mistake or a refusal with
its reason — prints as one line (`{"error": …}` with --json) and exits 2; any other exception is a bug
and shows its traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from embedkit import defaults
from embedkit.errors import EmbedkitError, UsageError

Result = dict[str, Any]


# --- arguments that name things ------------------------------------------------------------------


def split_model(reference: str) -> tuple[str, str | None]:
    """`MODEL[:VARIANT]` -> (model, variant or None). Paths may contain ':' only on Windows drives."""
    model, sep, variant = reference.rpartition(":")
    if not sep or not model or "/" in variant:
        return reference, None
    return model, variant


def _model_variant(reference: str) -> tuple[str, str]:
    from embedkit.models.specs import get_spec

    model, variant = split_model(reference)
    return model, variant or get_spec(model).packaged_variant


def _existing(path: str, what: str, *, directory: bool | None = None) -> Path:
    """`path` when it exists (as a directory or a file, if `directory` says which); else a UsageError."""
    found = Path(path).expanduser()
    if not found.exists():
        raise UsageError(f"{what} {path}: no such file or directory")
    if directory is True and not found.is_dir():
        raise UsageError(f"{what} {path}: not a directory")
    if directory is False and not found.is_file():
        raise UsageError(f"{what} {path}: not a file")
    return found


def _read_lines(path: str) -> list[str]:
    """The lines of a text file given on the command line; a missing or unreadable file is a UsageError."""
    file = _existing(path, "--file", directory=False)
    try:
        return file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--file {path}: cannot read it as UTF-8 text: {error}") from error


def _task_names(values: list[str]) -> list[str]:
    """`--tasks A,B C` -> ["A", "B", "C"]: commas and separate words both separate tasks."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        raise UsageError("--tasks names no task")
    return names


def _use_data_mirror(directory: str | None) -> None:
    """`--data DIR`: the local data mirror for this run (EMBEDKIT_DATA, which the task loaders read)."""
    if directory is not None:
        os.environ["EMBEDKIT_DATA"] = str(_existing(directory, "--data", directory=True).resolve())


def _positive_number(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


# --- verbs ---------------------------------------------------------------------------------------


def _cmd_models(args: argparse.Namespace) -> Result:
    from embedkit.models.export import VARIANTS
    from embedkit.models.specs import KNOWN_SPECS, describe_source

    return {
        "models": [
            {
                "name": spec.name,
                "source": type(spec.source).__name__,
                "location": describe_source(spec.source),
                "pooling": spec.pooling or "from checkpoint",
                "max_seq_length": spec.max_seq_length or "from checkpoint",
                "prompts": spec.prompts,
                "licence": spec.licence,
                "variants": [spec.packaged_variant] if spec.is_onnx_only else list(VARIANTS),
                "description": spec.description,
            }
            for spec in KNOWN_SPECS.values()
        ]
    }


def _cmd_export(args: argparse.Namespace) -> Result:
    from embedkit.models.export import get_variant
    from embedkit.models.specs import get_spec

    spec = get_spec(args.model)
    variants = [get_variant(spec, name, args.quantization_arch) for name in args.variant or [defaults.DEFAULT_VARIANT]]
    return {"variants": [{"variant": v.name, "path": str(v.path), "sha256": v.sha256, "manifest": v.manifest}
                         for v in variants]}  # fmt: skip


def _cmd_inspect(args: argparse.Namespace) -> Result:
    from embedkit.models.inspect import inspect_model

    path = _existing(args.path, "path")
    if path.is_dir():
        candidates = sorted(path.glob("*.onnx"))
        if len(candidates) != 1:
            raise UsageError(f"{path} holds {len(candidates)} .onnx files; name one")
        path = candidates[0]
    return inspect_model(path)


def _load(args: argparse.Namespace) -> Any:
    from embedkit.models.loading import load
    from embedkit.pipeline.providers import parse_options

    model, variant = split_model(args.model)
    options: dict[str, Any] = parse_options(args.provider_option)
    return load(model, variant, args.provider, fallback=args.fallback, intra_op_threads=args.threads, **options)


def _cmd_embed(args: argparse.Namespace) -> Result:
    texts = [*(args.text or []), *(_read_lines(args.file) if args.file else [])]
    embedder = _load(args)
    result = embedder.embed_with_info(texts, batch_size=args.batch_size, prompt_name=args.prompt)
    return {**embedder.describe(), "n_texts": len(texts), "n_truncated": result.n_truncated,
            "embeddings": result.embeddings.tolist()}  # fmt: skip


def _cmd_parity(args: argparse.Namespace) -> Result:
    from embedkit.models.parity import run_parity

    return run_parity(_load(args))


def _cmd_score(args: argparse.Namespace) -> Result:
    from embedkit.quality.scoring import score, write_score_record

    tasks = _task_names(args.tasks)
    _use_data_mirror(args.data)
    embedder = _load(args)
    out_dir = Path(args.out) if args.out else None
    result = score(embedder, tasks, force=args.force, batch_size=args.batch_size,
                   output_dir=out_dir / "mteb" if out_dir else None)  # fmt: skip
    return {"scores": result.scores, "records": [str(write_score_record(result, embedder, out_dir).resolve())]}


def _cmd_verify(args: argparse.Namespace) -> Result:
    from embedkit.quality.verify import verify_record

    _use_data_mirror(args.data)
    return verify_record(_existing(args.record, "record", directory=False)).to_dict()


def _cmd_probe(args: argparse.Namespace) -> Result:
    from embedkit.quality.probe import quick_probe

    embedder = _load(args)
    return {"model": embedder.spec.name, "variant": embedder.variant.name, "providers": embedder.providers,
            **quick_probe(embedder, prompt_name=args.prompt)}  # fmt: skip


def _cmd_bench(args: argparse.Namespace) -> Result:
    from embedkit.latency.bench import run_bench

    return run_bench(args.model, variants=args.variant or list(defaults.BENCH_VARIANTS), single_calls=args.calls,
                     n_sentences=args.sentences, seed=args.seed, leak_calls=args.leak_calls)  # fmt: skip


def _cmd_sweep(args: argparse.Namespace) -> Result:
    from embedkit.runs.limits import Limits
    from embedkit.runs.sweep import run_sweep

    notebooks = {} if args.notebooks is None else {"notebooks_dir": _existing(args.notebooks, "--notebooks",
                                                                               directory=True)}  # fmt: skip
    summary = run_sweep(_existing(args.file, "sweep file", directory=False), force=args.force,
                        scheduler=args.scheduler, workers=args.workers, limits=Limits(args.memory_mb, args.seconds),
                        **notebooks)  # fmt: skip
    return summary.to_dict()


def _cmd_results_merge(args: argparse.Namespace) -> Result:
    from embedkit.results.files import merge_records

    written = merge_records([_existing(source, "source") for source in args.sources], args.into)
    return {"into": args.into, "written": [str(p) for p in written]}


def _provider_configs(providers: list[str], option_pairs: list[str]) -> list[Any]:
    """Each provider under each option combination; options go to the accelerators, not to CPU."""
    from embedkit.latency.grid import ProviderConfig
    from embedkit.pipeline.providers import CPU, option_combinations, resolve_provider

    configs = []
    for name in providers:
        is_cpu = resolve_provider(name) == CPU
        for options in [{}] if is_cpu else option_combinations(option_pairs):
            configs.append(ProviderConfig.of(name, options))
    return list(dict.fromkeys(configs))


def _axis_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The grid axes given on the command line, by axis key (None: the axis's default)."""
    from embedkit.latency.grid import AXES

    return {axis.key: getattr(args, axis.key) for axis in AXES}


def _report_progress(index: int, total: int, point: Any, record: dict[str, Any] | None) -> None:
    if record is None:
        print(f"[{index + 1}/{total}] {point.label()} ...", file=sys.stderr, flush=True)
    else:
        total_stats = record["stages"]["total"]
        print(f"    total p50 {total_stats['p50']:.2f} ms, p95 {total_stats['p95']:.2f} ms (n={total_stats['n']})",
              file=sys.stderr, flush=True)  # fmt: skip


def _cmd_profile(args: argparse.Namespace) -> Result:
    from embedkit.latency.launcher import profile
    from embedkit.latency.summary import record_summary
    from embedkit.results.files import RECORD_SUFFIX, default_records_dir

    if args.compare:
        return _compare(args)
    if not args.models:
        raise UsageError("name at least one MODEL[:VARIANT], or --compare A B")
    out_dir = Path(args.out) if args.out else default_records_dir()
    written = profile(
        [_model_variant(reference) for reference in args.models],
        _provider_configs(args.provider or [defaults.DEFAULT_PROVIDER], args.provider_option),
        _axis_arguments(args),
        min_samples=args.samples,
        min_seconds=args.min_seconds,
        max_seconds=args.max_seconds,
        out_dir=out_dir,
        progress=_report_progress,
    )
    if not args.json:
        return {"out": str(out_dir), "points": [record_summary(record) for record in written]}
    # The raw samples stay in the record files: they are compressed blobs, not for reading.
    return {"records": [{**{k: v for k, v in record.items() if k != "samples"},
                         "record_path": str(out_dir / f"{record['record_id']}{RECORD_SUFFIX}")}
                        for record in written]}  # fmt: skip


def _compare(args: argparse.Namespace) -> Result:
    from embedkit.latency.grid import AXES, Backend, Scenario, axis_values
    from embedkit.latency.launcher import compare

    given = _axis_arguments(args)
    several = [axis.flag for axis in AXES if len(given[axis.key] or ()) > 1]
    if several:
        raise UsageError(f"--compare measures one value of each axis; {', '.join(several)} given several")
    values = axis_values(given)
    first = {axis.field: values[axis.key][0] for axis in AXES}
    scenario = Scenario(first["batch_size"], first["seq_bucket"], args.samples, args.min_seconds, args.max_seconds)
    backends = []
    for reference in args.compare:
        head, sep, provider = reference.rpartition("@")
        model, variant = _model_variant(head if sep else reference)
        configs = _provider_configs([provider if sep else defaults.DEFAULT_PROVIDER], args.provider_option)
        if len(configs) != 1:
            raise UsageError("--compare takes one value per --provider-option key")
        backends.append(Backend(model, variant, configs[0], first["intra_op_threads"], first["spinning"]))
    return compare(backends[0], backends[1], scenario)


def _cmd_decide(args: argparse.Namespace) -> Result:
    from embedkit.analysis.decision import DecisionPolicy, decision_card
    from embedkit.paths import results_dir
    from embedkit.results.tables import load_frame

    policy = DecisionPolicy(excellent_ms=args.excellent_ms, target_ms=args.target_ms, acceptable_ms=args.acceptable_ms,
                            quality_floor=args.quality_floor, quality_excellent=args.quality_excellent,
                            batch_size=args.batch, seq_bucket=args.seq)  # fmt: skip
    sources = [_existing(path, "results") for path in args.results] or [results_dir()]
    card = decision_card(load_frame(*sources), policy)
    if not args.json:
        return {"card": "\n" + card[["model", "variant", "provider", "verdict", "reason"]].to_string(index=False)}
    return {"card": json.loads(card.to_json(orient="records"))}


def _cmd_report(args: argparse.Namespace) -> Result:
    from embedkit.publish.report import run_report

    report = run_report(args.sweep, metric=args.metric, tasks=args.tasks, batch_size=args.batch, seq_bucket=args.seq,
                        kernel=args.kernel)  # fmt: skip
    return report.to_dict()


def _cmd_demo(args: argparse.Namespace) -> Result:
    """The main job: the default sweep, then its report; says where the report and figures are.

    A failed run (say, a provider that cannot compile a model) is a finding, not a crash: it is listed
    with its reason, and the report shows everything that did run.
    """
    from embedkit.paths import project_file
    from embedkit.publish.report import run_report
    from embedkit.runs.sweep import run_sweep

    started = time.perf_counter()
    sweep_file = _existing(args.file, "--file", directory=False) if args.file else project_file(
        "experiments", f"{defaults.DEFAULT_SWEEP}.yaml")  # fmt: skip
    summary = run_sweep(sweep_file, force=args.force)
    report = run_report(summary.sweep)
    return {"report": report.html, "figures": report.figures, "frontier": report.frontier, "points": report.n_points,
            "runs": summary.counts(), "sweep_dir": summary.directory,
            "failed": {o.run_id: o.error for o in summary.outcomes if o.state == "failed"},
            "wall_seconds": round(time.perf_counter() - started, 1)}  # fmt: skip


# --- the parser ----------------------------------------------------------------------------------


def _add_load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help=f"MODEL[:VARIANT], e.g. {defaults.DEFAULT_MODEL}:int8-pc")
    parser.add_argument("--provider", default=defaults.DEFAULT_PROVIDER,
                        help="CPU, CoreML, OpenVINO, CUDA or ORT's full name")  # fmt: skip
    parser.add_argument("--fallback", default=None, help="provider to use (and record) if --provider is missing")
    parser.add_argument("--provider-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads")


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

    _verb(verbs, "models", _cmd_models, "known model specs and where they come from")
    export = _verb(verbs, "export", _cmd_export, "export variants of a model")
    export.add_argument("model")
    export.add_argument("--variant", action="append", help=f"{' '.join(VARIANTS)} (repeatable)")
    export.add_argument("--quantization-arch", default=None, help=f"{' '.join(QUANTIZATION_ARCHS)} (default: this CPU)")
    inspect = _verb(verbs, "inspect", _cmd_inspect, "graph facts and the CoreML/NNAPI usability report")
    inspect.add_argument("path", help="an .onnx file or a directory holding one")
    embed = _verb(verbs, "embed", _cmd_embed, "embed texts")
    _add_load_options(embed)
    embed.add_argument("--text", action="append", help="a text (repeatable)")
    embed.add_argument("--file", help="a file with one text per line")
    embed.add_argument("--batch-size", type=int, default=defaults.BATCH_SIZE)
    embed.add_argument("--prompt", default=None, help="prompt name from the model spec, e.g. query")
    _add_load_options(
        _verb(verbs, "parity", _cmd_parity, "compare a variant with the PyTorch reference; store the gate")
    )


def _add_quality_verbs(verbs: Any) -> None:
    score = _verb(verbs, "score", _cmd_score, "MTEB main scores through mteb itself; writes a score record")
    _add_load_options(score)
    score.add_argument("--tasks", nargs="+", required=True, metavar="TASK",
                       help="MTEB task names, comma- or space-separated, e.g. STSBenchmark,SICK-R")  # fmt: skip
    score.add_argument("--data", default=None, help="local data mirror (sets EMBEDKIT_DATA for this run)")
    score.add_argument("--force", action="store_true", help="score a variant that failed its parity gate (recorded)")
    score.add_argument("--batch-size", type=int, default=defaults.BATCH_SIZE)
    score.add_argument("--out", default=None,
                       help="records directory (default results/records); mteb's result files go to OUT/mteb")  # fmt: skip
    _add_trailing_json(score)
    verify = _verb(verbs, "verify", _cmd_verify, "re-run a score record without the cache; |delta| per task <= 1e-6",
                   exit_1_unless_passed=True)  # fmt: skip
    verify.add_argument("record", help="a score record file")
    verify.add_argument("--data", default=None, help="the local data mirror the record was scored on (EMBEDKIT_DATA)")
    _add_trailing_json(verify)
    probe = _verb(verbs, "probe", _cmd_probe, "the seed plan's quick probe: pair separation and norms")
    _add_load_options(probe)
    probe.add_argument("--prompt", default=None, help="prompt name from the model spec, e.g. query")
    _add_trailing_json(probe)


def _add_latency_verbs(verbs: Any) -> None:
    from embedkit.latency.grid import AXES

    bench = _verb(verbs, "bench", _cmd_bench, "embedkit vs raw session.run vs sentence-transformers, interleaved")
    bench.add_argument("model", nargs="?", default=defaults.DEFAULT_MODEL)
    bench.add_argument("--variant", action="append",
                       help=f"variants to bench (default {' and '.join(defaults.BENCH_VARIANTS)})")  # fmt: skip
    bench.add_argument("--calls", type=int, default=defaults.BENCH_SINGLE_CALLS, help="single-text calls per contender")
    bench.add_argument(
        "--sentences", type=int, default=defaults.BENCH_SENTENCES, help="real sentences for batch throughput"
    )
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--leak-calls", type=int, default=defaults.BENCH_LEAK_CALLS,
                       help="embed calls (mixed batch sizes) the leak check measures RSS growth over")  # fmt: skip
    profile = _verb(verbs, "profile", _cmd_profile, "per-stage latency over a grid, one fresh process per point")
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


def _add_result_verbs(verbs: Any) -> None:
    from embedkit.analysis.tradeoff import METRICS

    results = verbs.add_parser("results", help="work with result records")
    merge = _verb(results.add_subparsers(dest="results_verb", required=True), "merge", _cmd_results_merge,
                  "merge records from many machines into one tree")  # fmt: skip
    merge.add_argument("sources", nargs="+")
    merge.add_argument("--into", required=True)
    decide = _verb(verbs, "decide", _cmd_decide, "the decision card: GO / TRY ALTERNATIVE / FALLBACK from records")
    decide.add_argument("results", nargs="*", help="record files or directories (default results/)")
    decide.add_argument("--excellent-ms", type=float, default=defaults.EXCELLENT_MS)
    decide.add_argument("--target-ms", type=float, default=defaults.TARGET_MS)
    decide.add_argument("--acceptable-ms", type=float, default=defaults.ACCEPTABLE_MS)
    decide.add_argument("--quality-floor", type=float, default=None, help="mean MTEB main score (0-1) to reach")
    decide.add_argument("--quality-excellent", type=float, default=None)
    decide.add_argument("--batch", type=int, default=defaults.DECISION_BATCH_SIZE,
                        help="the grid point judged: batch size")  # fmt: skip
    decide.add_argument("--seq", default=defaults.DECISION_SEQ_BUCKET, help="the grid point judged: sequence bucket")
    report = _verb(verbs, "report", _cmd_report, "execute 04_tradeoff.ipynb on a sweep's records: report, figures")
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
    sweep = _verb(verbs, "sweep", _cmd_sweep, "run a sweep file: exports, quality (parallel), profiles (serial)")
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
        type=_positive_number,
        default=None,
        help="every run's memory ceiling (resident MB of its kernel and children); overrides the file",
    )
    sweep.add_argument(
        "--seconds",
        type=_positive_number,
        default=None,
        help="every run's time budget from its kernel being ready; overrides the file",
    )
    demo = _verb(
        verbs, "demo", _cmd_demo, f"the main job: run experiments/{defaults.DEFAULT_SWEEP}.yaml, publish its report"
    )
    demo.add_argument("--file", default=None, help=f"a sweep file (default embedkit's {defaults.DEFAULT_SWEEP}.yaml)")
    demo.add_argument("--force", action="store_true", help="redo runs that are already complete")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embedkit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    verbs = parser.add_subparsers(dest="verb", required=True)
    for add in (_add_model_verbs, _add_quality_verbs, _add_latency_verbs, _add_result_verbs, _add_run_verbs):
        add(verbs)
    return parser


def _print_human(result: Result) -> None:
    for key, value in result.items():
        if key == "embeddings":
            print(f"embeddings: {len(value)} x {len(value[0]) if value else 0}")
        elif isinstance(value, (dict, list)):
            print(f"{key}: {json.dumps(value, indent=2, default=str)}")
        else:
            print(f"{key}: {value}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
    except EmbedkitError as error:
        if args.json:
            print(json.dumps({"error": {"type": type(error).__name__, "message": str(error)}}))
        else:
            print(f"embedkit {args.verb}: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, default=str))
    else:
        _print_human(result)
    return 1 if getattr(args, "exit_1_unless_passed", False) and not result["passed"] else 0


if __name__ == "__main__":
    sys.exit(main())
