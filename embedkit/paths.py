"""Where embedkit reads data and writes models and results.

Each location is an environment setting with a project-relative default, so that a notebook,
the CLI and a sweep worker started anywhere agree on them.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _setting(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def models_dir() -> Path:
    """Downloaded checkpoints and exported variants (git-ignored)."""
    return _setting("EMBEDKIT_MODELS", PROJECT_ROOT / "models")


def results_dir() -> Path:
    """Records, executed notebooks, figures and reports (git-ignored)."""
    return _setting("EMBEDKIT_RESULTS", PROJECT_ROOT / "results")


def data_dir() -> Path | None:
    """The local evaluation-data mirror (layout of ../shared/data), or None to use the HF hub."""
    value = os.environ.get("EMBEDKIT_DATA")
    return Path(value).expanduser().resolve() if value else None


# One path component that cannot climb out of or hide in its directory: no separator, no leading dot
# (so never "." or ".."), nothing a shell or another OS would read specially.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str, max_length: int = 100) -> str:
    """`name` as one harmless path component, for every path built from a user-supplied name (a sweep,
    a model, a machine id): a safe name is kept as it is; any other becomes its safe characters, a '+'
    (which no kept name has) and a digest of the original, so that no two names share a directory."""
    if _SAFE_NAME.fullmatch(name) and len(name) <= max_length:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    readable = _UNSAFE_RUN.sub("_", name).lstrip(".")[: max_length - len(digest) - 1]
    return f"{readable or '_'}+{digest}"


def child_path(root: Path, *names: str) -> Path:
    """`root/<safe name>/...`: a path under `root` whatever the names say."""
    return root.joinpath(*(safe_name(name) for name in names))
