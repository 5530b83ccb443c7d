"""`embedkit` command line: every verb prints text for people or, with --json, one JSON object."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from .errors import EmbedkitError

Handler = Callable[[argparse.Namespace], dict[str, Any]]


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


def _cmd_models(args: argparse.Namespace) -> dict[str, Any]:
    from .specs import KNOWN_SPECS

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
    from .specs import HubSource, PipSource

    if isinstance(source, PipSource):
        return "pip: " + ", ".join(source.packages)
    if isinstance(source, HubSource):
        return f"hub: {source.repo_id}@{source.revision}"
    return f"local: {source.path}"


def _cmd_export(args: argparse.Namespace) -> dict[str, Any]:
    from .export import get_variant
    from .specs import get_spec

    spec = get_spec(args.model)
    variants = [get_variant(spec, name, args.quantization_arch) for name in args.variant or ["fp32"]]
    return {"variants": [{"variant": v.name, "path": str(v.path), "sha256": v.sha256, "manifest": v.manifest}
                         for v in variants]}


def _cmd_inspect(args: argparse.Namespace) -> dict[str, Any]:
    from .inspect import inspect_model

    path = Path(args.path)
    if path.is_dir():
        candidates = sorted(path.glob("*.onnx"))
        if len(candidates) != 1:
            raise EmbedkitError(f"{path} holds {len(candidates)} .onnx files; name one")
        path = candidates[0]
    return inspect_model(path)


def _load(args: argparse.Namespace):
    from .models import load

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
    from .parity import run_parity

    return run_parity(_load(args))


def _cmd_bench(args: argparse.Namespace) -> dict[str, Any]:
    from .bench import run_bench

    return run_bench(args.model, variants=args.variant or ["fp32", "int8-pc"], single_calls=args.calls,
                     n_sentences=args.sentences, seed=args.seed)


def _add_load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="MODEL[:VARIANT], e.g. all-MiniLM-L6-v2:int8-pc")
    parser.add_argument("--provider", default="CPU", help="CPU, CoreML, OpenVINO, CUDA or ORT's full name")
    parser.add_argument("--fallback", default=None, help="provider to use (and record) if --provider is missing")
    parser.add_argument("--provider-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads")


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

    bench = verbs.add_parser("bench", help="embedkit vs raw session.run vs sentence-transformers, interleaved")
    bench.add_argument("model", nargs="?", default="all-MiniLM-L6-v2")
    bench.add_argument("--variant", action="append", help="variants to bench (default fp32 and int8-pc)")
    bench.add_argument("--calls", type=int, default=300, help="single-text calls per contender")
    bench.add_argument("--sentences", type=int, default=1000, help="real sentences for batch-32 throughput")
    bench.add_argument("--seed", type=int, default=0)
    bench.set_defaults(handler=_cmd_bench)

    for register in _EXTRA_VERBS:
        register(verbs)
    return parser


# Verbs added by other modules (profile, score, sweep, report, verify) register themselves here.
_EXTRA_VERBS: list[Callable[[Any], None]] = []


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
