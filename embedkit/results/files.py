"""Record files: atomic writes, validated reads, quarantine of corrupt files, loading and merging many.

A record lives in one file `<record_id>.record.json`. Records are validated on write and on read,
and written atomically: a reader sees the old file or the new one, never a torn one. A file that is
not JSON at all when read back (torn by a tool that does not write atomically, a bad disk) is
quarantined by the loaders: renamed `<name>.corrupt-<UTC time>` beside where it was, warned about and
listed in the load result, so that one bad file neither stops a load nor disappears unnoticed.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embedkit.errors import CorruptRecordError, RecordClashError
from embedkit.paths import results_dir, safe_name
from embedkit.results.schema import validate_record
from embedkit.system import utc_stamp

RECORD_SUFFIX = ".record.json"
QUARANTINE_MARK = ".corrupt-"


def default_records_dir() -> Path:
    return results_dir() / "records"


# --- writing ------------------------------------------------------------------------------------


def write_text_atomically(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, os.replace, then fsync the directory entry."""
    temporary: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
        ) as handle:
            temporary = Path(handle.name)
            handle.write(text)
        replace_atomically(temporary, path)
    except BaseException:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        raise


def replace_atomically(written: Path, path: Path) -> None:
    """Publish the finished file `written` as `path` (same directory): fsync it, os.replace, fsync the
    directory entry. A reader, or a process killed at any moment, sees the old file or the new one."""
    with open(written, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(written, path)
    if os.name == "posix":
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def record_file(directory: Path, record: Mapping[str, Any]) -> Path:
    """Where `record` lives in `directory`: its record_id as a safe file name."""
    return directory / f"{safe_name(record['record_id'], max_length=200)}{RECORD_SUFFIX}"


def _write_record_file(path: Path, record: Mapping[str, Any]) -> None:
    write_text_atomically(path, json.dumps(record, indent=1, sort_keys=True) + "\n")


def write_record(record: Mapping[str, Any], directory: Path | str | None = None) -> Path:
    """Validate and atomically write `record` as `<directory>/<record_id>.record.json`."""
    normalized = validate_record(record)
    target_dir = Path(directory) if directory is not None else default_records_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    path = record_file(target_dir, normalized)
    _write_record_file(path, normalized)
    return path


# --- reading ------------------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_record(path: Path | str) -> dict[str, Any]:
    """Read and validate one record file; CorruptRecordError / InvalidRecordError /
    RecordVersionError name the file."""
    file = Path(path)
    raw = file.read_bytes()
    try:
        record = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise CorruptRecordError(f"not a JSON record: {error}", file) from error
    if not isinstance(record, dict):
        raise CorruptRecordError(f"expected a JSON object, found {type(record).__name__}", file)
    return validate_record(record, file)


def record_paths(*sources: Path | str) -> list[Path]:
    """Record files among `sources`: files as given, directories searched recursively."""
    paths: list[Path] = []
    for source in map(Path, sources):
        paths.extend(sorted(source.rglob(f"*{RECORD_SUFFIX}")) if source.is_dir() else [source])
    return paths


# --- quarantine ---------------------------------------------------------------------------------


class QuarantineWarning(UserWarning):
    """A corrupt file was found on read and moved aside."""


@dataclass(frozen=True)
class Quarantined:
    """A corrupt file found on read: where it was, where it went (None: it could not be moved), why."""

    path: str
    moved_to: str | None
    reason: str

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)


def quarantine(path: Path, reason: str) -> Quarantined:
    """Move the corrupt file `path` aside as `<name>.corrupt-<UTC time>`, out of every reader's way, and warn.

    A file that cannot be moved (a read-only copy of another machine's results) stays where it is;
    the warning and the returned entry say so, and the caller skips it all the same.
    """
    target = path.with_name(f"{path.name}{QUARANTINE_MARK}{utc_stamp()}")
    try:
        os.replace(path, target)
        moved_to: str | None = str(target)
    except OSError as error:
        moved_to, reason = None, f"{reason}; it could not be moved aside ({error})"
    moved = f"; moved to {target.name}" if moved_to else ""
    warnings.warn(f"quarantined corrupt file {path}: {reason}{moved}", QuarantineWarning, stacklevel=2)
    return Quarantined(str(path), moved_to, reason)


def is_quarantined(path: Path) -> bool:
    return QUARANTINE_MARK in path.name


# --- many records -------------------------------------------------------------------------------


@dataclass
class RecordSet:
    """What a load found: each record once, with its file, and the corrupt files it quarantined."""

    records: list[dict[str, Any]] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)


def load_record_set(*sources: Path | str) -> RecordSet:
    """Read every record under `sources` once; the same record found twice (e.g. a copied results dir)
    is kept once; corrupt files are quarantined. Invalid or other-version records still raise."""
    loaded = RecordSet()
    first_seen: dict[str, int] = {}  # record_id -> index in loaded
    for path in record_paths(*sources):
        try:
            record = read_record(path)
        except CorruptRecordError as error:
            loaded.quarantined.append(quarantine(path, str(error.__cause__ or error)))
            continue
        index = first_seen.get(record["record_id"])
        if index is None:
            first_seen[record["record_id"]] = len(loaded.records)
            loaded.records.append(record)
            loaded.paths.append(path)
        elif loaded.records[index] != record:
            raise RecordClashError(
                f"record_id {record['record_id']} also names a different record in {loaded.paths[index]}", path
            )
    return loaded


def load_records(*sources: Path | str) -> list[dict[str, Any]]:
    """Validated records from files and directories (e.g. several machines' results dirs)."""
    return load_record_set(*sources).records


def merge_records(sources: Iterable[Path | str], into: Path | str) -> list[Path]:
    """Copy every record under `sources` into `into/<machine_id>/`, refusing clashing record ids.

    Records from many machines land in one tree and stay apart by machine; a record already there
    is not written again.
    """
    target = Path(into)
    written = []
    for record in load_records(*sources, *((target,) if target.is_dir() else ())):
        path = record_file(target / safe_name(record["machine_id"]), record)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_record_file(path, record)
            written.append(path)
    return written
