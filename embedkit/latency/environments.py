"""Which Python environment provides which execution provider.

onnxruntime, onnxruntime-openvino and onnxruntime-gpu install the same `onnxruntime` module, so each
accelerator build lives in its own venv beside the project's (`make openvino-env`, `make cuda-env`).
A measurement that needs a provider runs in an interpreter whose onnxruntime lists it; this module
finds that interpreter by asking each candidate once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from embedkit.errors import ProviderUnavailableError
from embedkit.paths import project_dir

# Extra interpreters to consider, os.pathsep-separated (e.g. a conda env with onnxruntime-gpu).
PYTHONS_ENV = "EMBEDKIT_PYTHONS"
# Accelerator venvs the Makefile creates beside the project's own .venv.
VENV_GLOB = ".venv-*"
HOW_TO_GET = {
    "OpenVINOExecutionProvider": "`make openvino-env` creates .venv-openvino with onnxruntime-openvino",
    "CUDAExecutionProvider": "`make cuda-env` creates .venv-cuda with onnxruntime-gpu (needs an NVIDIA GPU)",
    "CoreMLExecutionProvider": "the stock onnxruntime wheel provides it on macOS",
}
_PROBE = (
    "import json, onnxruntime as o; "
    "print(json.dumps({'version': o.__version__, 'providers': o.get_available_providers()}))"
)
_PROBE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Environment:
    """One interpreter and what its onnxruntime offers."""

    python: Path
    onnxruntime_version: str
    providers: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.python} (onnxruntime {self.onnxruntime_version}: {', '.join(self.providers)})"


def candidate_interpreters() -> list[Path]:
    """This interpreter, then the project's accelerator venvs (none outside a project), then $EMBEDKIT_PYTHONS."""
    project = project_dir()
    venvs = sorted(project.glob(f"{VENV_GLOB}/bin/python")) if project is not None else []
    extra = [Path(p) for p in os.environ.get(PYTHONS_ENV, "").split(os.pathsep) if p]
    return _distinct([Path(sys.executable), *venvs, *extra])


def probe(python: Path) -> Environment | None:
    """What `python`'s onnxruntime provides; None when it cannot import onnxruntime."""
    try:
        completed = subprocess.run(
            [str(python), "-c", _PROBE], capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if completed.returncode != 0:
        return None
    facts = json.loads(completed.stdout.strip().splitlines()[-1])
    return Environment(python, facts["version"], tuple(facts["providers"]))


class Environments:
    """The environments of one run: each interpreter is probed once, when first needed."""

    def __init__(self, interpreters: Sequence[Path] | None = None):
        self.interpreters = _distinct(interpreters) if interpreters is not None else candidate_interpreters()
        self._probed: dict[Path, Environment | None] = {}

    def available(self) -> list[Environment]:
        return [env for env in map(self._probe, self.interpreters) if env is not None]

    def providing(self, providers: Iterable[str]) -> Environment:
        """The first environment whose onnxruntime offers every provider (ORT full names)."""
        wanted = list(dict.fromkeys(providers))
        for python in self.interpreters:
            env = self._probe(python)
            if env is not None and set(wanted) <= set(env.providers):
                return env
        raise ProviderUnavailableError(self._missing_message(wanted))

    def _probe(self, python: Path) -> Environment | None:
        if python not in self._probed:
            self._probed[python] = probe(python)
        return self._probed[python]

    def _missing_message(self, wanted: list[str]) -> str:
        found = self.available()
        listing = "; ".join(env.describe() for env in found) or "none (no interpreter could import onnxruntime)"
        hints = [HOW_TO_GET[p] for p in wanted if p in HOW_TO_GET and not any(p in e.providers for e in found)]
        message = f"no environment provides {' + '.join(wanted)}; available: {listing}"
        return message + (f". To get it: {'; '.join(hints)}" if hints else "")


def _distinct(paths: Iterable[Path]) -> list[Path]:
    # Not resolved: a venv's bin/python is a symlink to the base interpreter, whose site-packages differ.
    return list(dict.fromkeys(Path(os.path.abspath(p)) for p in paths))
