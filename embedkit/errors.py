"""The errors embedkit raises: each names the file (and line or key, where one applies), provider or argument at fault."""

from __future__ import annotations


class EmbedkitError(Exception):
    """Base class: anything embedkit refuses to do, with the reason."""


class ModelFileError(EmbedkitError, ValueError):
    """A model, tokenizer or config file is missing, corrupt or inconsistent."""


class ProviderUnavailableError(EmbedkitError, RuntimeError):
    """A requested execution provider is not available in this onnxruntime build."""


class SourceUnavailableError(EmbedkitError, RuntimeError):
    """A model source (pip package, hub repo, local dir) cannot be reached or read."""


class LocalDataError(EmbedkitError, ValueError):
    """The local data mirror is not set, or a file in it is not what MTEB reads."""


class MissingDataFileError(LocalDataError, FileNotFoundError):
    """A file an MTEB task needs is absent from the mirror."""


class RowCountError(LocalDataError):
    """A file has a different number of rows than the MTEB task uses."""


class ParityError(EmbedkitError, RuntimeError):
    """A variant failed the parity gate and the caller did not force its use."""
