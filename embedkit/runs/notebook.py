"""Helpers the notebooks share: checking papermill parameters, showing tables, gluing them as JSON.

Each notebook's first code cell after its `parameters` cell calls `check_parameters`, so that a bad
value stops the run at once with one error that names the parameter, instead of a traceback from
deep inside a measurement. Parameters arrive from papermill's `-p` as Python literals or strings,
so validators accept the string spellings too (e.g. "a,b" for a list).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NoReturn

import jsonschema
import numpy as np
import pandas as pd

from embedkit.errors import EmbedkitError, ParameterError

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

Validator = Callable[[Any], Any]


def check_parameters(**checks: tuple[Any, Validator]) -> SimpleNamespace:
    """Validate `name=(value, validator)` pairs; return the converted values as attributes.

    A validator returns the converted value or raises ValueError saying what it expected. Every
    parameter is checked, and all bad ones are reported together in one ParameterError.
    """
    converted: dict[str, Any] = {}
    problems: list[str] = []
    for name, (value, validator) in checks.items():
        try:
            converted[name] = validator(value)
        except ValueError as error:
            problems.append(f"parameter {name!r} = {value!r}: {error}")
    if problems:
        raise ParameterError("; ".join(problems))
    return SimpleNamespace(**converted)


def reject(name: str, value: Any, problem: str) -> NoReturn:
    """Raise the ParameterError of one parameter found bad after `check_parameters` (e.g. a directory
    that exists but holds nothing usable)."""
    raise ParameterError(f"parameter {name!r} = {value!r}: {problem}")


def one_of(*choices: str) -> Validator:
    """One of `choices`, exactly."""

    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(map(repr, choices))}")
        return str(value)

    return check


def text(value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    return value.strip()


def integer(minimum: int) -> Validator:
    """An integer >= `minimum` (a string of digits is accepted)."""

    def check(value: Any) -> int:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"expected an integer >= {minimum}")
        return value

    return check


positive_int = integer(1)


def optional(validator: Validator) -> Validator:
    """`validator`, or None for None, an empty string or an empty list (the notebooks' "not set")."""

    def check(value: Any) -> Any:
        if _unset(value):
            return None
        return validator(value)

    return check


def _unset(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple)):
        return not value
    return value is None


def text_list(value: Any) -> list[str]:
    """A list of non-empty strings; a comma-separated string is split (papermill `-p` passes strings)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) and item.strip() for item in items):
        raise ValueError("expected a list of non-empty strings or a comma-separated string")
    return [item.strip() for item in items]


def flag(value: Any) -> bool:
    """True or False, exactly."""
    if not isinstance(value, bool):
        raise ValueError("expected True or False")
    return value


def seconds(value: Any) -> float:
    """A number of seconds >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError("expected a number of seconds >= 0")
    return float(value)


def positive_number(value: Any) -> float:
    """A finite number > 0 (a budget in ms, a throughput, a score floor)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError("expected a number > 0")
    return float(value)


def positive_seconds(value: Any) -> float:
    """A number of seconds > 0."""
    if seconds(value) == 0:
        raise ValueError("expected a number of seconds > 0")
    return float(value)


def variant_names(value: Any) -> list[str]:
    """A list of export variant names (embedkit.models.export.VARIANTS); a comma-separated string works."""
    from embedkit.models.export import VARIANTS

    names = text_list(value)
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; expected names from {VARIANTS}")
    return names


def provider_name(value: Any) -> str:
    """An execution provider, short or full name: ONNX Runtime's full name."""
    from embedkit.pipeline.providers import resolve_provider

    try:
        return resolve_provider(text(value))
    except EmbedkitError as error:
        raise ValueError(str(error)) from error


def provider_options(value: Any) -> dict[str, Any]:
    """A dict of provider option names to values."""
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ValueError("expected a dict of provider option names to values")
    return value


def task_names(value: Any) -> list[str]:
    """A list of MTEB task names that mteb knows (and the local data mirror holds, when one is set)."""
    from embedkit.quality.tasks import get_task

    names = text_list(value)
    for name in names:
        try:
            get_task(name)
        except EmbedkitError as error:
            raise ValueError(str(error)) from error
    return names


def grid_axes(value: Any) -> dict[str, tuple[Any, ...]]:
    """A profile grid's axes: a dict of axis key (embedkit.latency.grid.AXES) to a list of values, each
    valid for its axis; every axis left out at its default. A JSON object string works (papermill `-p`),
    and so does a comma-separated string of values."""
    from embedkit.latency.grid import AXES, axis_values

    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError as error:
            raise ValueError(f"expected a dict of grid axes or its JSON text: {error}") from error
    if not isinstance(value, dict):
        raise ValueError(f"expected a dict of grid axes {[axis.key for axis in AXES]} to lists of values")
    given = {}
    for axis in AXES:
        if axis.key not in value:
            continue
        items = value[axis.key]
        items = [axis.parse(item.strip()) for item in items.split(",")] if isinstance(items, str) else items
        if not isinstance(items, (list, tuple)):
            raise ValueError(f"{axis.key}: expected a list of values")
        for item in items:
            problem = next(jsonschema.Draft202012Validator(axis.value_schema).iter_errors(item), None)
            if problem is not None:
                raise ValueError(f"{axis.key}: {problem.message}")
        given[axis.key] = items
    # axis_values names unknown axes, and an axis with no value or one value twice (a UsageError: a ValueError).
    return axis_values({**value, **given})


def existing_dir(value: Any) -> Path:
    """A directory that exists."""
    path = Path(text(value)).expanduser()
    if not path.is_dir():
        raise ValueError(f"no directory at {path}")
    return path.resolve()


def table(frame: pd.DataFrame, *, code: Sequence[str] = (), precision: int = 4) -> Styler:
    """`frame` for display: no index, floats at `precision` digits, and the `code` columns (commands,
    record ids) left-aligned in monospace so that they read and copy as they are."""
    styled = frame.style.hide(axis="index").format(precision=precision)
    if code:
        styled = styled.set_properties(subset=list(code), **{"text-align": "left", "font-family": "monospace"})
    return styled


def jsonable_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame as a list of JSON-ready dicts (for `sb.glue`): NaN becomes None, numpy scalars become
    Python numbers, timestamps become ISO text."""
    return [{str(key): _plain(value) for key, value in row.items()} for row in frame.to_dict(orient="records")]


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
