"""Where embedkit reads data and its own notebooks, and writes models and results.

Each location is an environment setting with a default, so that a notebook, the CLI and a sweep worker
started anywhere agree on them. The defaults depend on where embedkit runs from:

- from its source checkout (an editable install, the way `make` installs it): the checkout's own
  `models/`, `results/`, `notebooks/` and `experiments/`;
- installed from a wheel: `models/` and `results/` under the current directory, and the notebooks and
  sweep files the wheel installs under `<prefix>/share/embedkit/`.

`EMBEDKIT_PROJECT` names a project directory to use instead (one holding `notebooks/` and
`experiments/`; its `models/` and `results/` then hold what is written).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

from embedkit.errors import ProjectFilesError

# The source checkout that holds this package, whether or not embedkit runs from one.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_ENV = "EMBEDKIT_PROJECT"
# What a wheel installs beside the package (pyproject's data-files), relative to the environment's prefix.
SHARED_FILES = Path("share") / "embedkit"
_PROJECT_MARKERS = ("notebooks", "experiments")


def _setting(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else None


def _is_project(directory: Path) -> bool:
    return all((directory / marker).is_dir() for marker in _PROJECT_MARKERS)


def project_dir() -> Path | None:
    """The project directory: $EMBEDKIT_PROJECT, else the source checkout embedkit runs from; None for a
    wheel installed outside any checkout."""
    explicit = _setting(PROJECT_ENV)
    if explicit is not None:
        return explicit
    return PROJECT_ROOT if _is_project(PROJECT_ROOT) else None


def _work_dir() -> Path:
    """Where generated files go by default: the project directory, else the current directory."""
    return project_dir() or Path.cwd()


def models_dir() -> Path:
    """Downloaded checkpoints and exported variants (git-ignored)."""
    return _setting("EMBEDKIT_MODELS") or _work_dir() / "models"


def results_dir() -> Path:
    """Records, executed notebooks, figures and reports (git-ignored)."""
    return _setting("EMBEDKIT_RESULTS") or _work_dir() / "results"


def data_dir() -> Path | None:
    """The local evaluation-data mirror (layout of ../shared/data), or None to use the HF hub."""
    return _setting("EMBEDKIT_DATA")


def published_dir() -> Path | None:
    """Published MTEB results in the layout of mteb's ResultCache (`remote/results/<org>__<name>/<revision>/`),
    e.g. ../shared/published; None: mteb's own cache, downloaded from the results repository when missing.
    (Not EMBEDKIT_RESULTS: that names the results directory.)"""
    return _setting("EMBEDKIT_PUBLISHED")


def _file_places(kind: str) -> list[Path]:
    project = project_dir()
    places = [project / kind] if project is not None else []
    return [*places, Path(sys.prefix) / SHARED_FILES / kind]


def project_file(kind: str, name: str) -> Path:
    """One of embedkit's own files: `kind` is "notebooks" or "experiments". ProjectFilesError, naming every
    place looked in and how to point embedkit at them, when none holds it."""
    places = _file_places(kind)
    for place in places:
        if (place / name).is_file():
            return place / name
    raise ProjectFilesError(
        f"embedkit's {kind[:-1]} {name} is not in {' or '.join(str(p) for p in places)}: install embedkit with "
        f"its {kind} (`pip install .` from the repository installs them under {Path(sys.prefix) / SHARED_FILES}), "
        f"or set {PROJECT_ENV} to a checkout of the repository"
    )


def project_files_dir(kind: str) -> Path:
    """The directory of embedkit's own `kind` files ("notebooks" or "experiments"); see `project_file`."""
    places = _file_places(kind)
    for place in places:
        if place.is_dir():
            return place
    raise ProjectFilesError(
        f"embedkit's {kind} are not in {' or '.join(str(p) for p in places)}: install embedkit with them "
        f"(`pip install .` from the repository), or set {PROJECT_ENV} to a checkout of the repository"
    )


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
