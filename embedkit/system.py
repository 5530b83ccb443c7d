"""Facts about this process and its files, each measured one way: a file's sha256, installed
package versions, the UTC time as records write it, resident memory, and whether the HF hub is off."""

from __future__ import annotations

import gc
import hashlib
import importlib.metadata
import os
import resource
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import psutil

_MB = 2**20
_READ_CHUNK = 1 << 20


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set, read as huggingface_hub reads it (1, ON, YES or TRUE): nothing may come
    from the hub. Read now, not at import, so that a process can change it."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def file_sha256(path: Path | str) -> str:
    """Hex sha256 of a file's bytes, read in chunks (model files are gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_READ_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def package_versions(distributions: Iterable[str]) -> dict[str, str | None]:
    return {name: package_version(name) for name in distributions}


def utc_now() -> str:
    """Now in UTC as ISO 8601 with microseconds and a Z suffix: the one timestamp format of records."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def utc_stamp() -> str:
    """Now in UTC as a compact stamp for file names (no separators a shell or another OS reads specially)."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def rss_mb(collect: bool = True) -> float:
    """This process's resident memory now; `collect` frees unreachable cycles first, so that only
    memory something still holds counts."""
    if collect:
        gc.collect()
    return psutil.Process().memory_info().rss / _MB


def peak_rss_mb() -> float:
    """This process's peak resident memory: ru_maxrss is in KiB on Linux and in bytes on macOS."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / _MB if sys.platform == "darwin" else peak / 2**10


def tree_rss_mb(process: psutil.Process) -> float:
    """Resident memory of `process` and its descendants (shared pages counted in each: an upper bound)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:  # exited between listing and reading
            continue
    return total / _MB
