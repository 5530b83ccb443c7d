"""The sweep file: its schema, a strict YAML reader, and problems reported as `FILE:LINE: KEY: problem`.

The schema's `profile` section is built from the grid's axes (embedkit.latency.grid.AXES), so a new
axis is a sweep key as soon as it is declared there. A file is checked completely before anything
runs: schema, keys given twice, model names listed twice, unknown providers and providers that are
named somewhere but not listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import jsonschema
import yaml

from embedkit import defaults
from embedkit.errors import EmbedkitError, SweepConfigError
from embedkit.latency.grid import AXES
from embedkit.models.export import VARIANTS
from embedkit.pipeline.providers import resolve_provider

_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "uniqueItems": True}
_LIMITS = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "memory_mb": {"type": "number", "exclusiveMinimum": 0},
        "seconds": {"type": "number", "exclusiveMinimum": 0},
    },
}
_AXIS_VALUES = {axis.key: {"type": "array", "items": axis.value_schema, "minItems": 1, "uniqueItems": True}
                for axis in AXES}  # fmt: skip
SWEEP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "models"],
    "properties": {
        # One path component under results/: no separator, no leading dot.
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]*$"},
        "description": {"type": "string"},
        "models": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "variants": {**_STRINGS, "items": {"enum": list(VARIANTS)}},
                    # "random": the model's architecture twin; its latency is measured, its quality is the
                    # published one (embedkit.quality.published), never scored here.
                    "weights": {"enum": list(defaults.WEIGHTS)},
                },
            },
        },
        "providers": _STRINGS,
        # Used when some environment on this machine provides them, skipped (and said so) otherwise.
        "optional_providers": _STRINGS,
        "provider_options": {"type": "object", "additionalProperties": {"type": "object"}},
        "limits": _LIMITS,  # every run's; a section's own limits override these for its runs
        "profile": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                **_AXIS_VALUES,
                "samples": {"type": "integer", "minimum": 2},
                "min_seconds": {"type": "number", "minimum": 0},
                # Caps one grid point's sampling even short of `samples`: large batches take seconds a
                # call. The record keeps its sample count and says why it stopped.
                "max_seconds": {"type": "number", "exclusiveMinimum": 0},
                "limits": _LIMITS,
            },
        },
        # What a first report needs, run as round 1 before the rest of the sweep (embedkit.runs.plan).
        "first_report": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {"batch_sizes": _AXIS_VALUES["batch_sizes"], "tasks": _STRINGS},
        },
        "quality": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "tasks": _STRINGS,
                "force": {"type": "boolean"},
                "batch_size": {"type": "integer", "minimum": 1},
                # Providers to score on (default: all the sweep's). Scoring needs mteb in the provider's
                # environment, which the separate OpenVINO/CUDA venvs do not carry.
                "providers": _STRINGS,
                "limits": _LIMITS,
            },
        },
    },
}


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[str, int] = {}
        for key_node in (key for key, _ in node.value if isinstance(key, yaml.ScalarNode)):
            if key_node.value in first_line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key_node.value!r} given twice (first on line {first_line[key_node.value]})",
                    key_node.start_mark,
                )  # fmt: skip
            first_line[key_node.value] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


@dataclass(frozen=True)
class _Problem:
    path: tuple[str | int, ...]
    message: str

    @property
    def dotted(self) -> str:
        return ".".join(map(str, self.path)) or "(top level)"


def load_config(path: Path) -> dict[str, Any]:
    """The sweep file, checked completely: one SweepConfigError `FILE:LINE: KEY: problem` for the first
    problem in the file (schema, duplicate keys or model names, unknown or unlisted providers)."""
    loader = _StrictLoader(Path(path).read_text())
    try:
        root = loader.get_single_node()
        config = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = str(path) if mark is None else f"{path}:{mark.line + 1}"
        raise SweepConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    finally:
        loader.dispose()
    # The reference checks read what the schema guarantees: only a config that passed it reaches them.
    problems = _schema_problems(config) or _reference_problems(config)
    if problems:
        first = min(problems, key=lambda problem: (_line(root, problem.path), problem.dotted))
        raise SweepConfigError(f"{path}:{_line(root, first.path)}: {first.dotted}: {first.message}")
    return cast(dict[str, Any], config)


def _schema_problems(config: Any) -> list[_Problem]:
    problems = []
    for error in jsonschema.Draft202012Validator(SWEEP_SCHEMA).iter_errors(config):
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = error.schema.get("properties", {})
            problems += [
                _Problem((*error.path, key), f"unknown key; allowed here: {', '.join(allowed)}")
                for key in error.instance
                if key not in allowed
            ]
        else:
            problems.append(_Problem(tuple(error.path), error.message))
    return problems


def _reference_problems(config: Any) -> list[_Problem]:
    """What the schema cannot say: names that must be unique, providers that must exist and be listed."""
    problems = []
    first_index: dict[str, int] = {}
    for index, model in enumerate(config["models"]):
        if model["name"] in first_index:
            first = first_index[model["name"]]
            problems.append(_Problem(("models", index, "name"), f"{model['name']!r} is listed twice "
                                                                 f"(first as models.{first})"))  # fmt: skip
        first_index.setdefault(model["name"], index)
    listed: set[str] = set()
    for key, default in (("providers", defaults.SWEEP_PROVIDERS), ("optional_providers", ())):
        for index, name in enumerate(config.get(key, default)):
            try:
                listed.add(resolve_provider(name))
            except EmbedkitError as error:
                problems.append(_Problem((key, index), str(error)))
    named_elsewhere: list[tuple[tuple[str | int, ...], str]] = [
        (("quality", "providers", index), name)
        for index, name in enumerate(config.get("quality", {}).get("providers", []))
    ]
    named_elsewhere += [(("provider_options", name), name) for name in config.get("provider_options", {})]
    problems += _first_report_problems(config)
    for where, name in named_elsewhere:
        try:
            known = resolve_provider(name)
        except EmbedkitError as error:
            problems.append(_Problem(where, str(error)))
            continue
        if known not in listed:
            problems.append(_Problem(where, f"{name!r} is not among providers or optional_providers"))
    return problems


def _first_report_problems(config: Any) -> list[_Problem]:
    """A first report names some of the sweep's own batch sizes and tasks, not others."""
    first = config.get("first_report", {})
    known = {
        "batch_sizes": config.get("profile", {}).get("batch_sizes", list(defaults.PROFILE_BATCH_SIZES)),
        "tasks": config.get("quality", {}).get("tasks", []),
    }
    return [
        _Problem(("first_report", key, index), f"{value!r} is not among the sweep's {key} {known[key]}")
        for key in ("batch_sizes", "tasks")
        for index, value in enumerate(first.get(key, []))
        if value not in known[key]
    ]


def _line(root: yaml.Node | None, path: tuple[str | int, ...]) -> int:
    """1-based line of the node at `path` (the key's line for a mapping entry), or of its deepest parent."""
    node, line = root, 1 if root is None else root.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            entry = next(((key, value) for key, value in node.value if key.value == part), None)
            if entry is None:
                break
            line, node = entry[0].start_mark.line + 1, entry[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
