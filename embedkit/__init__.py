"""embedkit: which embedding model, export variant and execution provider gives the best quality for the
latency you can afford — measured, recorded, and re-runnable."""

from importlib import metadata

from embedkit.models.loading import load
from embedkit.models.specs import KNOWN_SPECS, ModelSpec, get_spec
from embedkit.pipeline.embedder import Embedder, StageTimer

try:
    __version__ = metadata.version("embedkit")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["KNOWN_SPECS", "Embedder", "ModelSpec", "StageTimer", "__version__", "get_spec", "load"]
