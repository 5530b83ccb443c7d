"""`embedkit` command line: every verb prints text for people or, with --json, one JSON object.

Each verb reads its arguments and calls the library; the defaults it shows are the library's own
(`embedkit.defaults`, the profile grid's axes). An `EmbedkitError` — a user's mistake or a refusal with
its reason — prints as one line (`{"error": …}` with --json) and exits 2; any other exception is a bug
and shows its traceback.
"""

from __future__ import annotations

import json
import sys

from embedkit.cli.arguments import split_model
from embedkit.cli.commands import Result
from embedkit.cli.parser import build_parser
from embedkit.errors import EmbedkitError

__all__ = ["build_parser", "main", "split_model"]


def _print_human(result: Result) -> None:
    if "summary" in result:  # a verb that writes its answer for people says it whole
        print(result["summary"])
        return
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
