"""Every error embedkit raises, in one place: each derives from `EmbedkitError` and names the file (and
line or key, where one applies), provider or argument at fault.

The CLI prints an `EmbedkitError` as one line (`{"error": …}` with --json) and exits 2; any other
exception is a bug and shows its traceback. Each class also derives from the built-in exception a
caller would catch without knowing embedkit (ValueError for a bad value, FileNotFoundError for a
missing file, …).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


class EmbedkitError(Exception):
    """Base class: anything embedkit refuses to do, with the reason."""


class UsageError(EmbedkitError, ValueError):
    """An argument or parameter that embedkit cannot use (a bad value, a missing or unreadable input file)."""


class UnknownNameError(EmbedkitError, KeyError):
    """A name (a prompt, a task, …) that is not among those known; the message lists them."""

    def __str__(self) -> str:  # KeyError's own str() quotes the message
        return str(self.args[0]) if self.args else ""


class UnknownModelError(UnknownNameError):
    """A model name that is not a known spec, a local directory or a hub id."""


class TextTypeError(EmbedkitError, TypeError):
    """Texts to embed that are not a sequence of str."""


class ModelFileError(EmbedkitError, ValueError):
    """A model, tokenizer or config file is missing, corrupt or inconsistent."""


class ProviderUnavailableError(EmbedkitError, RuntimeError):
    """A requested execution provider is not available in this onnxruntime build."""


class SessionClosedError(EmbedkitError, RuntimeError):
    """The session was closed: its InferenceSession is gone."""


class SourceUnavailableError(EmbedkitError, RuntimeError):
    """A model source (pip package, hub repo, local dir) cannot be reached or read."""


class LocalDataError(EmbedkitError, ValueError):
    """The local data mirror is not set, or a file in it is not what MTEB reads."""


class MissingDataFileError(LocalDataError, FileNotFoundError):
    """A file an MTEB task needs is absent from the mirror."""


class RowCountError(LocalDataError):
    """A file has a different number of rows than the MTEB task uses."""


class RandomWeightsError(UsageError):
    """A quality verb (score, verify, parity) asked of a model with random weights (an architecture
    twin): its latency is the real model's, its embeddings mean nothing."""


class VariantUnavailableError(UsageError):
    """A variant that cannot be produced for this model (e.g. O1–O4 of an architecture optimum's
    ORTOptimizer does not know); the message says why and what exists instead."""


class CalibrationDataError(UsageError):
    """Calibration data that static quantization cannot use: a split a scored task evaluates, too few texts."""


class ParityError(EmbedkitError, RuntimeError):
    """A variant failed the parity gate and the caller did not force its use."""


class RecordMismatchError(EmbedkitError):
    """What a score record names (variant file, model spec, data) is not what this machine has now."""


class RecordError(EmbedkitError):
    """A record file or object that embedkit cannot use; `path` names the file when there is one."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path is not None else message)


class CorruptRecordError(RecordError):
    """The file is not a JSON object at all (truncated, binary, not UTF-8, NaN literals)."""


class InvalidRecordError(RecordError):
    """Well-formed JSON that breaks the record schema or its cross-field rules."""


class RecordVersionError(RecordError):
    """A record of another schema version: valid for the embedkit that wrote it, not for this one."""


class RecordClashError(RecordError):
    """Two different records share one record_id."""


class CrossMachineError(EmbedkitError, ValueError):
    """A latency comparison across machines, which would compare the machines, not the configs."""


class PlacementError(EmbedkitError, ValueError):
    """A profile that holds no node executions to audit."""


class ProfileWorkerError(EmbedkitError):
    """A worker process failed; `payload` is what it reported (the point it received, the error)."""

    def __init__(self, message: str, payload: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.payload = dict(payload or {})


class ParameterError(EmbedkitError, ValueError):
    """One or more notebook parameters are unusable; the message names each of them."""


class NotebookFailedError(EmbedkitError, RuntimeError):
    """A notebook stopped at a failing cell; the message names the cell's exception and the executed notebook."""


class KernelMissingError(EmbedkitError, LookupError):
    """The Jupyter kernel a notebook runs on is not installed; the message says how to install it."""


class SweepConfigError(EmbedkitError, ValueError):
    """A sweep file that is not valid YAML or breaks the sweep schema; names the file, line and key."""


class ProjectFilesError(EmbedkitError, FileNotFoundError):
    """The notebooks or experiments embedkit runs cannot be found (see `embedkit.paths.project_file`)."""


class PublishedResultsError(EmbedkitError, LookupError):
    """Published MTEB results that are not there: no results for the model, or none for a task's split."""
