"""`embedkit` command line: every verb prints text for people or, with --json, one JSON object."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from embedkit.errors import EmbedkitError
from embedkit.paths import PROJECT_ROOT
from embedkit import defaults
from embedkit.pipeline.session import SPINNING_MODES


def split_model(reference: str) -> tuple[str, str | None]:
    """`MODEL[:VARIANT]` -> (model, variant or None). Paths may contain ':' only on Windows drives."""
    model, sep, variant = reference.rpartition(":")
    if not sep or not model or "/" in variant:
        return reference, None
    return model, variant


def _provider_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--provider-option takes KEY=VALUE, got {pair!r}")
        options[key] = value
    return options


def _positive_number(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _cmd_models(args: argparse.Namespace) -> dict[str, Any]:
    from embedkit.models.specs import KNOWN_SPECS

    return {
        "models": [
            {
                "name": spec.name,
                "source": type(spec.source).__name__,
                "location": _describe_source(spec.source),
                "pooling": spec.pooling or "from checkpoint",
                "max_seq_length": spec.max_seq_length or "from checkpoint",
                "prompts": spec.prompts,
                "licence": spec.licence,
                "variants": [spec.packaged_variant] if spec.is_onnx_only else "fp32 O1 O2 O3 O4 int8 int8-pc fp16".split(),
                "description": spec.description,
            }
            for spec in KNOWN_SPECS.values()
        ]
    }


def _describe_source(source: Any) -> str:
    from embedkit.models.specs import HubSource, PipSource

    if isinstance(source, PipSource):
        return "pip: " + ", ".join(source.packages)
    if isinstance(source, HubSource):
        return f"hub: {source.repo_id}@{source.revision}"
    return f"local: {source.path}"


def _cmd_export(args: argparse.Namespace) -> dict[str, Any]:
    from embedkit.models.export import get_variant
    from embedkit.models.specs import get_spec

    spec = get_spec(args.model)
    variants = [get_variant(spec, name, args.quantization_arch) for name in args.variant or ["fp32"]]
    return {"variants": [{"variant": v.name, "path": str(v.path), "sha256": v.sha256, "manifest": v.manifest}
                         for v in variants]}


def _cmd_inspect(args: argparse.Namespace) -> dict[str, Any]:
    from embedkit.models.inspect import inspect_model

    path = Path(args.path)
    if path.is_dir():
        candidates = sorted(path.glob("*.onnx"))
        if len(candidates) != 1:
            raise EmbedkitError(f"{path} holds {len(candidates)} .onnx files; name one")
        path = candidates[0]
    return inspect_model(path)


def _load(args: argparse.Namespace):
    from embedkit.models.loading import load

    model, variant = split_model(args.model)
    return load(model, variant, args.provider, fallback=args.fallback, intra_op_threads=args.threads,
                **_provider_options(args.provider_option))


def _cmd_embed(args: argparse.Namespace) -> dict[str, Any]:
    texts = list(args.text or [])
    if args.file:
        texts += Path(args.file).read_text(encoding="utf-8").splitlines()
    embedder = _load(args)
    result = embedder.embed_with_info(texts, batch_size=args.batch_size, prompt_name=args.prompt)
    return {**embedder.describe(), "n_texts": len(texts), "n_truncated": result.n_truncated,
            "embeddings": result.embeddings.tolist()}


def _cmd_parity(args: argparse.Namespace) -> dict[str, Any]:
    from embedkit.models.parity import run_parity

    return run_parity(_load(args))


def _task_names(values: list[str]) -> list[str]:
    """`--tasks A,B C` -> ["A", "B", "C"]: commas and separate words both separate tasks."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        raise ValueError("--tasks names no task")
    return names


def _use_data_mirror(directory: str | None) -> None:
    """`--data DIR`: the local data mirror for this run (EMBEDKIT_DATA, which the task loaders read)."""
    if directory is None:
        return
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise ValueError(f"--data {directory}: no such directory")
    os.environ["EMBEDKIT_DATA"] = str(path.resolve())


def _cmd_score(args: argparse.Namespace) -> dict[str, Any]:
    from embedkit.quality.scoring import score, write_score_record

    tasks = _task_names(args.tasks)
    _use_data_mirror(args.data)
    embedder = _load(args)
    out_dir = Path(args.out) if args.out else None
    result = score(embedder, tasks, force=args.force, batch_size=args.batch_size,
                   output_dir=out_dir / "mteb" if out_dir else None)
    return {"scores": result.scores, "records": [str(write_score_record(result, embedder, out_dir).resolve())]}


def _cmd_verify(args: argparse.Namespace) -> dict[str, Any]:
    from embedkit.quality.scoring import verify_record

    _use_data_mirror(args.data)
    return verify_record(args.record).to_dict()


def _cmd_probe(args: argparse.Namespace) -> dict[str, Any]:
    from embedkit.quality.scoring import quick_probe

    embedder = _load(args)
    return {"model": embedder.spec.name, "variant": embedder.variant.name, "providers": embedder.providers,
            **quick_probe(embedder, prompt_name=args.prompt)}


def _cmd_bench(args: argparse.Namespace) -> dict[str, Any]:
    from embedkit.latency.bench import run_bench

    return run_bench(args.model, variants=args.variant or ["fp32", "int8-pc"], single_calls=args.calls,
                     n_sentences=args.sentences, seed=args.seed, leak_calls=args.leak_calls)


def _cmd_sweep(args: argparse.Namespace) -> dict[str, Any]:
    from embedkit.runs.limits import Limits
    from embedkit.runs.sweep import run_sweep

    summary = run_sweep(Path(args.file), force=args.force, scheduler=args.scheduler, workers=args.workers,
                        notebooks_dir=Path(args.notebooks), limits=Limits(args.memory_mb, args.seconds))
    return summary.to_dict()


def _cmd_results_merge(args: argparse.Namespace) -> dict[str, Any]:
    from embedkit.results.records import merge_records

    written = merge_records(args.sources, args.into)
    return {"into": args.into, "written": [str(p) for p in written]}


def _option_axes(pairs: list[str]) -> list[dict[str, str]]:
    """`KEY=VALUE` pairs -> every combination of the values given per key (a repeated key is a grid axis)."""
    import itertools

    values: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--provider-option takes KEY=VALUE, got {pair!r}")
        values.setdefault(key, []).append(value)
    return [dict(zip(values, combination)) for combination in itertools.product(*values.values())]


def _provider_configs(providers: list[str], option_pairs: list[str]) -> list[Any]:
    """Each provider under each option combination; options go to the accelerators, not to CPU."""
    from embedkit.latency.grid import ProviderConfig
    from embedkit.pipeline.providers import resolve_provider

    configs = []
    for name in providers:
        is_cpu = resolve_provider(name) == "CPUExecutionProvider"
        for options in [{}] if is_cpu else _option_axes(option_pairs):
            configs.append(ProviderConfig.of(name, options))
    return list(dict.fromkeys(configs))


def _model_variant(reference: str) -> tuple[str, str]:
    from embedkit.models.specs import get_spec

    model, variant = split_model(reference)
    return model, variant or get_spec(model).packaged_variant


def _threads(values: list[int] | None) -> list[int | None]:
    # 0 asks for ONNX Runtime's default (one thread per physical core), as ORT itself reads 0.
    return [value or None for value in values] if values else [2]


def _report_progress(index: int, total: int, point: Any, record: dict[str, Any] | None) -> None:
    if record is None:
        print(f"[{index + 1}/{total}] {point.label()} ...", file=sys.stderr, flush=True)
    else:
        total_stats = record["stages"]["total"]
        print(f"    total p50 {total_stats['p50']:.2f} ms, p95 {total_stats['p95']:.2f} ms (n={total_stats['n']})",
              file=sys.stderr, flush=True)


def _cmd_profile(args: argparse.Namespace) -> dict[str, Any]:
    from embedkit.latency.profiler import profile, record_summary
    from embedkit.results.records import RECORD_SUFFIX, default_records_dir

    if args.compare:
        return _compare(args)
    if not args.models:
        raise ValueError("name at least one MODEL[:VARIANT], or --compare A B")
    out_dir = Path(args.out) if args.out else default_records_dir()
    written = profile(
        [_model_variant(reference) for reference in args.models],
        _provider_configs(args.provider or ["CPU"], args.provider_option),
        batch_sizes=args.batch or [1, 8, 32],
        seq_buckets=args.seq or ["short", "medium", "long"],
        threads=_threads(args.threads),
        spinning=args.spinning or [defaults.SPINNING],
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
                        for record in written]}


def _compare(args: argparse.Namespace) -> dict[str, Any]:
    from embedkit.latency.grid import Backend, Scenario
    from embedkit.latency.profiler import compare

    if any(len(values or []) > 1 for values in (args.batch, args.seq, args.threads, args.spinning)):
        raise ValueError("--compare measures one batch size, sequence bucket, thread count and spinning mode")
    scenario = Scenario((args.batch or [1])[0], (args.seq or ["short"])[0], args.samples, args.min_seconds,
                        args.max_seconds)
    backends = []
    for reference in args.compare:
        head, sep, provider = reference.rpartition("@")
        model, variant = _model_variant(head if sep else reference)
        configs = _provider_configs([provider if sep else "CPU"], args.provider_option)
        if len(configs) != 1:
            raise ValueError("--compare takes one value per --provider-option key")
        backends.append(Backend(model, variant, configs[0], _threads(args.threads)[0],
                                (args.spinning or [defaults.SPINNING])[0]))
    return compare(backends[0], backends[1], scenario)


def _cmd_decide(args: argparse.Namespace) -> dict[str, Any]:
    from embedkit.analysis.decision import DecisionPolicy, decision_card
    from embedkit.paths import results_dir
    from embedkit.results.records import load_frame

    policy = DecisionPolicy(excellent_ms=args.excellent_ms, target_ms=args.target_ms, acceptable_ms=args.acceptable_ms,
                            quality_floor=args.quality_floor, quality_excellent=args.quality_excellent,
                            batch_size=args.batch, seq_bucket=args.seq)
    card = decision_card(load_frame(*(args.results or [results_dir()])), policy)
    if not args.json:
        return {"card": "\n" + card[["model", "variant", "provider", "verdict", "reason"]].to_string(index=False)}
    return {"card": json.loads(card.to_json(orient="records"))}


def _cmd_report(args: argparse.Namespace) -> dict[str, Any]:
    from embedkit.publish.report import run_report

    report = run_report(args.sweep, metric=args.metric, tasks=args.tasks, batch_size=args.batch, seq_bucket=args.seq,
                        kernel=args.kernel)
    return report.to_dict()


def _cmd_demo(args: argparse.Namespace) -> dict[str, Any]:
    """The main job: the default sweep, then its report; says where the report and figures are.

    A failed run (say, a provider that cannot compile a model) is a finding, not a crash: it is listed
    with its reason, and the report shows everything that did run.
    """
    from embedkit.publish.report import run_report
    from embedkit.runs.sweep import run_sweep

    started = time.perf_counter()
    summary = run_sweep(Path(args.file), force=args.force)
    report = run_report(summary.sweep)
    return {"report": report.html, "figures": report.figures, "frontier": report.frontier, "points": report.n_points,
            "runs": summary.counts(), "sweep_dir": summary.directory,
            "failed": {o.run_id: o.error for o in summary.outcomes if o.state == "failed"},
            "wall_seconds": round(time.perf_counter() - started, 1)}


def _add_load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="MODEL[:VARIANT], e.g. all-MiniLM-L6-v2:int8-pc")
    parser.add_argument("--provider", default="CPU", help="CPU, CoreML, OpenVINO, CUDA or ORT's full name")
    parser.add_argument("--fallback", default=None, help="provider to use (and record) if --provider is missing")
    parser.add_argument("--provider-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads")


def _add_trailing_json(parser: argparse.ArgumentParser) -> None:
    # `embedkit score ... --json` as well as `embedkit --json score ...`; SUPPRESS keeps the latter.
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embedkit", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    verbs = parser.add_subparsers(dest="verb", required=True)

    verbs.add_parser("models", help="known model specs and where they come from").set_defaults(handler=_cmd_models)

    export = verbs.add_parser("export", help="export variants of a model")
    export.add_argument("model")
    export.add_argument("--variant", action="append", help="fp32 O1 O2 O3 O4 int8 int8-pc fp16 (repeatable)")
    export.add_argument("--quantization-arch", default=None, help="avx512_vnni avx512 avx2 arm64 (default: this CPU)")
    export.set_defaults(handler=_cmd_export)

    inspect = verbs.add_parser("inspect", help="graph facts and the CoreML/NNAPI usability report")
    inspect.add_argument("path", help="an .onnx file or a directory holding one")
    inspect.set_defaults(handler=_cmd_inspect)

    embed = verbs.add_parser("embed", help="embed texts")
    _add_load_options(embed)
    embed.add_argument("--text", action="append", help="a text (repeatable)")
    embed.add_argument("--file", help="a file with one text per line")
    embed.add_argument("--batch-size", type=int, default=32)
    embed.add_argument("--prompt", default=None, help="prompt name from the model spec, e.g. query")
    embed.set_defaults(handler=_cmd_embed)

    parity = verbs.add_parser("parity", help="compare a variant with the PyTorch reference and store the gate")
    _add_load_options(parity)
    parity.set_defaults(handler=_cmd_parity)

    score = verbs.add_parser("score", help="MTEB main scores through mteb itself; writes a score record")
    _add_load_options(score)
    score.add_argument("--tasks", nargs="+", required=True, metavar="TASK",
                       help="MTEB task names, comma- or space-separated, e.g. STSBenchmark,SICK-R")
    score.add_argument("--data", default=None, help="local data mirror (sets EMBEDKIT_DATA for this run)")
    score.add_argument("--force", action="store_true", help="score a variant that failed its parity gate (recorded)")
    score.add_argument("--batch-size", type=int, default=32)
    score.add_argument("--out", default=None,
                       help="records directory (default results/records); mteb's result files go to OUT/mteb")
    _add_trailing_json(score)
    score.set_defaults(handler=_cmd_score)

    verify = verbs.add_parser("verify", help="re-run a score record without the cache; |delta| per task must be <= 1e-6")
    verify.add_argument("record", help="a score record file")
    verify.add_argument("--data", default=None, help="the local data mirror the record was scored on (EMBEDKIT_DATA)")
    _add_trailing_json(verify)
    verify.set_defaults(handler=_cmd_verify, exit_1_unless_passed=True)

    probe = verbs.add_parser("probe", help="the seed plan's quick probe: pair separation and norms")
    _add_load_options(probe)
    probe.add_argument("--prompt", default=None, help="prompt name from the model spec, e.g. query")
    _add_trailing_json(probe)
    probe.set_defaults(handler=_cmd_probe)

    bench = verbs.add_parser("bench", help="embedkit vs raw session.run vs sentence-transformers, interleaved")
    bench.add_argument("model", nargs="?", default="all-MiniLM-L6-v2")
    bench.add_argument("--variant", action="append", help="variants to bench (default fp32 and int8-pc)")
    bench.add_argument("--calls", type=int, default=300, help="single-text calls per contender")
    bench.add_argument("--sentences", type=int, default=1000, help="real sentences for batch-32 throughput")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--leak-calls", type=int, default=10_000,
                       help="embed calls (mixed batch sizes) the leak check measures RSS growth over")
    bench.set_defaults(handler=_cmd_bench)

    sweep = verbs.add_parser("sweep", help="run a sweep file: exports, quality (parallel), profiles (serial)")
    sweep.add_argument("file", help="experiments/*.yaml")
    sweep.add_argument("--force", action="store_true", help="redo runs that are already complete")
    sweep.add_argument("--scheduler", default=None, help="address of an existing dask scheduler")
    sweep.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes for quality runs")
    sweep.add_argument("--notebooks", default=str(PROJECT_ROOT / "notebooks"),
                       help="directory of the stage notebooks (01_export, 02_profile, 03_quality) to run")
    sweep.add_argument("--memory-mb", type=_positive_number, default=None,
                       help="every run's memory ceiling (resident MB of its kernel and children); overrides the file")
    sweep.add_argument("--seconds", type=_positive_number, default=None,
                       help="every run's time budget from its kernel being ready; overrides the file")
    sweep.set_defaults(handler=_cmd_sweep)

    results = verbs.add_parser("results", help="work with result records")
    results_verbs = results.add_subparsers(dest="results_verb", required=True)
    merge = results_verbs.add_parser("merge", help="merge records from many machines into one tree")
    merge.add_argument("sources", nargs="+")
    merge.add_argument("--into", required=True)
    merge.set_defaults(handler=_cmd_results_merge)

    profile = verbs.add_parser("profile", help="per-stage latency over a grid, one fresh process per point")
    profile.add_argument("models", nargs="*", metavar="MODEL[:VARIANT]", help="e.g. all-MiniLM-L6-v2:int8-pc")
    profile.add_argument("--compare", nargs=2, metavar=("A", "B"),
                         help="MODEL[:VARIANT][@PROVIDER] twice: run them interleaved, print the ratio A/B with its CI")
    profile.add_argument("--provider", action="append", help="CPU (default), OpenVINO, CoreML, CUDA (repeatable)")
    profile.add_argument("--provider-option", action="append", default=[], metavar="KEY=VALUE",
                         help="for the non-CPU providers; a key given with several values becomes a grid axis")
    profile.add_argument("--batch", action="append", type=int, help="batch size (repeatable; default 1 8 32)")
    profile.add_argument("--seq", action="append", choices=["short", "medium", "long"],
                         help="sequence bucket: short ~16 tokens, medium ~64, long = max_seq_length (repeatable)")
    profile.add_argument("--threads", action="append", type=int,
                         help="intra-op threads (repeatable; default 2; 0: ORT's default)")
    profile.add_argument("--spinning", action="append", choices=SPINNING_MODES,
                         help=f"how ORT's idle workers wait (repeatable; default {defaults.SPINNING}): always is "
                              "ORT's default, in-run stops when a run returns, never blocks at once")
    profile.add_argument("--samples", type=int, default=300, help="at least this many timed calls per point")
    profile.add_argument("--min-seconds", type=float, default=10.0, help="and at least this long per point")
    profile.add_argument("--max-seconds", type=float, default=None,
                         help="cap per point, even below --samples (the record says so)")
    profile.add_argument("--out", default=None, help="records directory (default results/records)")
    profile.set_defaults(handler=_cmd_profile)

    decide = verbs.add_parser("decide", help="the decision card: GO / TRY ALTERNATIVE / FALLBACK from records")
    decide.add_argument("results", nargs="*", help="record files or directories (default results/)")
    decide.add_argument("--excellent-ms", type=float, default=15.0)
    decide.add_argument("--target-ms", type=float, default=20.0)
    decide.add_argument("--acceptable-ms", type=float, default=30.0)
    decide.add_argument("--quality-floor", type=float, default=None, help="mean MTEB main score (0-1) to reach")
    decide.add_argument("--quality-excellent", type=float, default=None)
    decide.add_argument("--batch", type=int, default=1, help="the grid point judged: batch size")
    decide.add_argument("--seq", default="short", help="the grid point judged: sequence bucket")
    decide.set_defaults(handler=_cmd_decide)

    report = verbs.add_parser("report", help="execute 04_tradeoff.ipynb on a sweep's records: HTML report and figures")
    report.add_argument("sweep", nargs="?", default="default", help="sweep name under results/, or a records directory")
    report.add_argument("--metric", choices=["latency", "throughput"], default="latency",
                        help="x axis: P95 latency of one text (default), or texts/s")
    report.add_argument("--tasks", nargs="+", default=None, help="MTEB tasks to average (default: those every score has)")
    report.add_argument("--batch", type=int, default=None,
                        help="grid point: batch size (default 1 for latency, the largest profiled for throughput)")
    report.add_argument("--seq", default="short", help="grid point: sequence bucket")
    report.add_argument("--kernel", default="embedkit", help="Jupyter kernel that executes the notebook")
    report.set_defaults(handler=_cmd_report)

    demo = verbs.add_parser("demo", help="the main job: run experiments/default.yaml and publish its report")
    demo.add_argument("--file", default=str(PROJECT_ROOT / "experiments" / "default.yaml"))
    demo.add_argument("--force", action="store_true", help="redo runs that are already complete")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def _print_human(result: dict[str, Any]) -> None:
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
    except (EmbedkitError, KeyError, ValueError, TypeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        if args.json:
            print(json.dumps({"error": {"type": type(exc).__name__, "message": message}}))
        else:
            print(f"embedkit {args.verb}: {message}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, default=str))
    else:
        _print_human(result)
    return 1 if getattr(args, "exit_1_unless_passed", False) and not result["passed"] else 0


if __name__ == "__main__":
    sys.exit(main())
