"""Command-line arguments that name things: models and variants, files and directories, task lists."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from embedkit.errors import UsageError


def split_model(reference: str) -> tuple[str, str | None]:
    """`MODEL[:VARIANT]` -> (model, variant or None). Paths may contain ':' only on Windows drives."""
    model, sep, variant = reference.rpartition(":")
    if not sep or not model or "/" in variant:
        return reference, None
    return model, variant


def model_variant(reference: str) -> tuple[str, str]:
    from embedkit.models.specs import get_spec

    model, variant = split_model(reference)
    return model, variant or get_spec(model).packaged_variant


def existing(path: str, what: str, *, directory: bool | None = None) -> Path:
    """`path` when it exists (as a directory or a file, if `directory` says which); else a UsageError."""
    found = Path(path).expanduser()
    if not found.exists():
        raise UsageError(f"{what} {path}: no such file or directory")
    if directory is True and not found.is_dir():
        raise UsageError(f"{what} {path}: not a directory")
    if directory is False and not found.is_file():
        raise UsageError(f"{what} {path}: not a file")
    return found


def read_lines(path: str) -> list[str]:
    """The lines of a text file given on the command line; a missing or unreadable file is a UsageError."""
    file = existing(path, "--file", directory=False)
    try:
        return file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--file {path}: cannot read it as UTF-8 text: {error}") from error


def task_names(values: list[str]) -> list[str]:
    """`--tasks A,B C` -> ["A", "B", "C"]: commas and separate words both separate tasks."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        raise UsageError("--tasks names no task")
    return names


def use_data_mirror(directory: str | None) -> None:
    """`--data DIR`: the local data mirror for this run (EMBEDKIT_DATA, which the task loaders read)."""
    if directory is not None:
        os.environ["EMBEDKIT_DATA"] = str(existing(directory, "--data", directory=True).resolve())


def positive_number(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value
