"""The verbs: each reads its parsed arguments, calls the library and returns one JSON-able dict."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from embedkit import defaults
from embedkit.cli.arguments import existing, model_variant, read_lines, split_model, task_names, use_data_mirror
from embedkit.errors import UsageError

Result = dict[str, Any]


def models_verb(args: argparse.Namespace) -> Result:
    from embedkit.models.export import VARIANTS
    from embedkit.models.specs import KNOWN_SPECS, describe_source
    from embedkit.models.twins import twin_models

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
                # --weights random builds its architecture twin from a bundled config
                "random_weights": spec.name in twin_models(),
            }
            for spec in KNOWN_SPECS.values()
        ]
    }


def export_verb(args: argparse.Namespace) -> Result:
    from embedkit.models.export import get_variant
    from embedkit.models.specs import get_spec
    from embedkit.models.twins import with_weights

    spec = with_weights(get_spec(args.model), args.weights)
    variants = [get_variant(spec, name, args.quantization_arch) for name in args.variant or [defaults.DEFAULT_VARIANT]]
    return {"variants": [{"variant": v.name, "path": str(v.path), "sha256": v.sha256, "manifest": v.manifest}
                         for v in variants]}  # fmt: skip


def inspect_verb(args: argparse.Namespace) -> Result:
    from embedkit.models.export import get_variant
    from embedkit.models.inspect import inspect_model
    from embedkit.models.specs import KNOWN_SPECS
    from embedkit.models.twins import resolve_spec

    # A known model's name (or any model with --weights random) is exported if need be, then inspected.
    if args.weights != defaults.DEFAULT_WEIGHTS or split_model(args.path)[0] in KNOWN_SPECS:
        model, variant = model_variant(args.path)
        return inspect_model(get_variant(resolve_spec(model, args.weights), variant).path)
    path = existing(args.path, "path")
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
    return load(model, variant, args.provider, fallback=args.fallback, intra_op_threads=args.threads,
                weights=args.weights, **options)  # fmt: skip


def embed_verb(args: argparse.Namespace) -> Result:
    texts = [*(args.text or []), *(read_lines(args.file) if args.file else [])]
    embedder = _load(args)
    result = embedder.embed_with_info(texts, batch_size=args.batch_size, prompt_name=args.prompt)
    return {**embedder.describe(), "n_texts": len(texts), "n_truncated": result.n_truncated,
            "embeddings": result.embeddings.tolist()}  # fmt: skip


def parity_verb(args: argparse.Namespace) -> Result:
    from embedkit.models.parity import run_parity

    return run_parity(_load(args))


def score_verb(args: argparse.Namespace) -> Result:
    from embedkit.quality.scoring import score, write_score_record

    tasks = task_names(args.tasks)
    use_data_mirror(args.data)
    embedder = _load(args)
    out_dir = Path(args.out) if args.out else None
    result = score(embedder, tasks, force=args.force, batch_size=args.batch_size,
                   output_dir=out_dir / "mteb" if out_dir else None)  # fmt: skip
    return {"scores": result.scores, "records": [str(write_score_record(result, embedder, out_dir).resolve())]}


def published_verb(args: argparse.Namespace) -> Result:
    from embedkit.quality.published import published_scores, write_published_record

    published = published_scores(args.model, task_names(args.tasks) if args.tasks else None, args.results)
    result: Result = {"scores": published.main_scores(), "source": published.source()}
    if args.record:
        result["records"] = [str(write_published_record(published, args.out).resolve())]
    return result


def verify_verb(args: argparse.Namespace) -> Result:
    from embedkit.quality.verify import verify_record

    use_data_mirror(args.data)
    return verify_record(existing(args.record, "record", directory=False)).to_dict()


def probe_verb(args: argparse.Namespace) -> Result:
    from embedkit.quality.probe import quick_probe

    embedder = _load(args)
    return {"model": embedder.spec.name, "variant": embedder.variant.name, "providers": embedder.providers,
            **quick_probe(embedder, prompt_name=args.prompt)}  # fmt: skip


def bench_verb(args: argparse.Namespace) -> Result:
    from embedkit.latency.bench import run_bench

    return run_bench(args.model, variants=args.variant or list(defaults.BENCH_VARIANTS), single_calls=args.calls,
                     n_sentences=args.sentences, seed=args.seed, leak_calls=args.leak_calls,
                     n_documents=args.documents, out=args.out)  # fmt: skip


def sweep_verb(args: argparse.Namespace) -> Result:
    from embedkit.runs.limits import Limits
    from embedkit.runs.sweep import run_sweep

    notebooks = None if args.notebooks is None else existing(args.notebooks, "--notebooks", directory=True)
    summary = run_sweep(existing(args.file, "sweep file", directory=False), force=args.force,
                        scheduler=args.scheduler, workers=args.workers, limits=Limits(args.memory_mb, args.seconds),
                        notebooks_dir=notebooks)  # fmt: skip
    return summary.to_dict()


def results_merge_verb(args: argparse.Namespace) -> Result:
    from embedkit.results.files import merge_records

    written = merge_records([existing(source, "source") for source in args.sources], args.into)
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


def profile_verb(args: argparse.Namespace) -> Result:
    from embedkit.latency.launcher import profile
    from embedkit.latency.summary import record_summary
    from embedkit.results.files import RECORD_SUFFIX, default_records_dir

    if args.compare:
        return _compare(args)
    if not args.models:
        raise UsageError("name at least one MODEL[:VARIANT], or --compare A B")
    out_dir = Path(args.out) if args.out else default_records_dir()
    written = profile(
        [model_variant(reference) for reference in args.models],
        _provider_configs(args.provider or [defaults.DEFAULT_PROVIDER], args.provider_option),
        _axis_arguments(args),
        min_samples=args.samples,
        min_seconds=args.min_seconds,
        max_seconds=args.max_seconds,
        out_dir=out_dir,
        progress=_report_progress,
        weights=args.weights,
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
        model, variant = model_variant(head if sep else reference)
        configs = _provider_configs([provider if sep else defaults.DEFAULT_PROVIDER], args.provider_option)
        if len(configs) != 1:
            raise UsageError("--compare takes one value per --provider-option key")
        backends.append(
            Backend(model, variant, configs[0], first["intra_op_threads"], first["spinning"], weights=args.weights)
        )
    return compare(backends[0], backends[1], scenario)


def decide_verb(args: argparse.Namespace) -> Result:
    from embedkit.analysis.decision import DecisionPolicy, decision_card
    from embedkit.paths import results_dir
    from embedkit.results.tables import load_frame

    policy = DecisionPolicy(excellent_ms=args.excellent_ms, target_ms=args.target_ms, acceptable_ms=args.acceptable_ms,
                            quality_floor=args.quality_floor, quality_excellent=args.quality_excellent,
                            batch_size=args.batch, seq_bucket=args.seq)  # fmt: skip
    sources = [existing(path, "results") for path in args.results] or [results_dir()]
    card = decision_card(load_frame(*sources), policy)
    if not args.json:
        return {"card": "\n" + card[["model", "variant", "provider", "verdict", "reason"]].to_string(index=False)}
    return {"card": json.loads(card.to_json(orient="records"))}


def report_verb(args: argparse.Namespace) -> Result:
    from embedkit.publish.report import run_report

    report = run_report(args.sweep, metric=args.metric, tasks=args.tasks, batch_size=args.batch, seq_bucket=args.seq,
                        kernel=args.kernel)  # fmt: skip
    return report.to_dict()


def _publish(sweep: str, pending: list[Any]) -> Any:
    """The sweep's report, drawn now under a progress bar; `pending`: runs still to come (an interim report)."""
    from embedkit.publish.report import run_report
    from embedkit.runs.sweep import phase_bar

    with phase_bar("report", 1) as progress:
        progress.set_postfix_str("interim: first round done" if pending else "complete")
        report = run_report(sweep, pending_runs=[run.label for run in pending])
        progress.update(1)
    if pending:
        progress.write(
            f"First report: {report.html} ({len(pending)} runs still to come; drawn again after them)", file=sys.stderr
        )
    return report


def demo_verb(args: argparse.Namespace) -> Result:
    """The main job: the default sweep, then its report; says where the report and figures are.

    A sweep file with a `first_report` section publishes a first report when its round 1 is done and
    the complete one at the end. A failed run (say, a provider that cannot compile a model) is a
    finding, not a crash: it is listed with its reason, and the report shows everything that did run.
    """
    from embedkit.analysis.tradeoff import tradeoff_and_card
    from embedkit.paths import project_file
    from embedkit.publish.summary import summary_text
    from embedkit.results.tables import load_frame
    from embedkit.runs.sweep import run_sweep

    started = time.perf_counter()
    sweep_file = existing(args.file, "--file", directory=False) if args.file else project_file(
        "experiments", f"{defaults.DEFAULT_SWEEP}.yaml")  # fmt: skip
    first_report_at: list[float] = []  # seconds from the start, once the first report is out

    def first_report(so_far: Any, pending: list[Any]) -> None:
        _publish(so_far.sweep, pending)
        first_report_at.append(round(time.perf_counter() - started, 1))

    summary = run_sweep(sweep_file, force=args.force, after_first_round=first_report)
    report = _publish(summary.sweep, [])
    failed = {o.run_id: o.error for o in summary.outcomes if o.state == "failed"}
    wall_seconds = round(time.perf_counter() - started, 1)
    first_report_seconds = first_report_at[0] if first_report_at else None
    # The words read the same records the report drew, through the same views.
    tradeoff, card = tradeoff_and_card(load_frame(Path(report.records_dir)))
    text = summary_text(report_html=report.html, figures=report.figures, tradeoff=tradeoff, card=card,
                        failed=failed, skipped=summary.skipped_providers, wall_seconds=wall_seconds,
                        first_report_seconds=first_report_seconds)  # fmt: skip
    return {"report": report.html, "figures": report.figures, "frontier": report.frontier, "points": report.n_points,
            "runs": summary.counts(), "sweep_dir": summary.directory, "failed": failed,
            "skipped_providers": summary.skipped_providers, "wall_seconds": wall_seconds,
            "first_report_seconds": first_report_seconds,
            "summary": text}  # fmt: skip


def tune_verb(args: argparse.Namespace) -> Result:
    from embedkit.pipeline.providers import resolve_provider
    from embedkit.results.files import default_records_dir
    from embedkit.runs.tune import Goal, Space, tune
    from embedkit.runs.tune_measure import WorkerMeasurements

    goal = Goal(p95_ms=args.p95_ms, min_throughput=args.min_throughput, floor=args.floor)
    providers = tuple(resolve_provider(name) for name in args.provider or [defaults.DEFAULT_PROVIDER])
    space = Space(variants=tuple(args.variant or defaults.TUNE_VARIANTS), providers=providers)
    out_dir = Path(args.out) if args.out else default_records_dir()
    body, path = tune(args.model, task_names(args.tasks), goal, WorkerMeasurements(out_dir), space, out_dir)
    return {**body, "record": str(path)}
