"""Where embedkit reads data and writes models and results.

Each location is an environment setting with a project-relative default, so that a notebook,
the CLI and a sweep worker started anywhere agree on them.
"""

from __future__ import annotations

import os
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
