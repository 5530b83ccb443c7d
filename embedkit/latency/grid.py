"""What a profile measures: a grid of backends × scenarios, expanded to points (optimum-benchmark style).

A backend is what runs (model, variant, execution provider with its options, intra-op threads, how its
idle workers wait); a scenario is what it is asked to do (batch size, sequence-length bucket) and for
how long (samples, seconds, warm-up). A point is one backend with one scenario; each point is measured
in its own process. Points travel to that process as JSON, so everything here is plain, hashable data.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from embedkit.analysis import stats
from embedkit import defaults
from embedkit.pipeline.providers import build_provider_options, resolve_provider, short_name
from embedkit.pipeline.session import check_spinning
from embedkit.latency.workload import SEQ_BUCKETS

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_BATCH_SIZES = (1, 8, 32)
DEFAULT_SEQ_BUCKETS = tuple(SEQ_BUCKETS)
# A fixed thread count makes machines comparable and leaves cores to the OS; None is ORT's default
# (one thread per physical core).
DEFAULT_THREADS: tuple[int | None, ...] = (2,)
MIN_SAMPLES = 300
MIN_SECONDS = 10.0
COREML_MODEL_FORMATS = ("MLProgram", "NeuralNetwork")
COREML_COMPUTE_UNITS = ("ALL", "CPUAndNeuralEngine", "CPUAndGPU", "CPUOnly")
# The OpenVINO EP keeps its own thread pool: the point's thread count goes to it through this option.
OPENVINO_THREADS_OPTION = "num_of_threads"


@dataclass(frozen=True)
class ProviderConfig:
    """An execution provider (ORT's full name) with its options, checked and stored as strings."""

    name: str
    options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, name: str, options: Mapping[str, Any] | None = None) -> ProviderConfig:
        full = resolve_provider(name)
        built = build_provider_options(full, options or {})
        return cls(full, tuple(sorted(built.items())))

    @property
    def options_dict(self) -> dict[str, str]:
        return dict(self.options)

    def label(self) -> str:
        short = self.name.removesuffix("ExecutionProvider")
        return short + (f"[{','.join(f'{k}={v}' for k, v in self.options)}]" if self.options else "")


def coreml_providers(
    model_formats: Iterable[str] = COREML_MODEL_FORMATS,
    compute_units: Iterable[str] = COREML_COMPUTE_UNITS,
    **common: str,
) -> tuple[ProviderConfig, ...]:
    """The CoreML EP under every ModelFormat × MLComputeUnits, plus `common` options (e.g. ModelCacheDirectory)."""
    return tuple(
        ProviderConfig.of("CoreML", {"ModelFormat": fmt, "MLComputeUnits": units, **common})
        for fmt, units in itertools.product(model_formats, compute_units)
    )


@dataclass(frozen=True)
class Backend:
    model: str  # spec name, local directory or hub id
    variant: str
    provider: ProviderConfig = field(default_factory=lambda: ProviderConfig.of("CPU"))
    intra_op_threads: int | None = None
    spinning: str = defaults.SPINNING  # one of SPINNING_MODES

    def __post_init__(self) -> None:
        if self.intra_op_threads is not None and self.intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be at least 1 or None, got {self.intra_op_threads}")
        check_spinning(self.spinning)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Backend:
        provider = ProviderConfig.of(data["provider"]["name"], dict(data["provider"]["options"]))
        return cls(data["model"], data["variant"], provider, data["intra_op_threads"], data["spinning"])

    def session_options(self) -> dict[str, str]:
        """Provider options as the session gets them: the thread count reaches OpenVINO's own pool."""
        options = self.provider.options_dict
        if self.provider.name == "OpenVINOExecutionProvider" and self.intra_op_threads is not None:
            options.setdefault(OPENVINO_THREADS_OPTION, str(self.intra_op_threads))
        return options

    def label(self) -> str:
        threads = "default" if self.intra_op_threads is None else self.intra_op_threads
        spinning = "" if self.spinning == defaults.SPINNING else f" spinning={self.spinning}"
        return f"{self.model}:{self.variant}@{self.provider.label()} threads={threads}{spinning}"


@dataclass(frozen=True)
class Scenario:
    batch_size: int
    seq_bucket: str
    min_samples: int = MIN_SAMPLES
    min_seconds: float = MIN_SECONDS
    # A cap for heavy points (e.g. batch 32 at max_seq_length on a small CPU): sampling stops there
    # even short of min_samples, and the record's n and `stopped_by` say so. None: no cap.
    max_seconds: float | None = None
    warmup_window: int = stats.WARMUP_WINDOW
    warmup_max_seconds: float = stats.WARMUP_MAX_SECONDS

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.seq_bucket not in SEQ_BUCKETS:
            raise ValueError(f"unknown sequence bucket {self.seq_bucket!r}; expected one of {tuple(SEQ_BUCKETS)}")
        if self.min_samples < 2:
            raise ValueError(f"min_samples must be at least 2 (a spread needs two), got {self.min_samples}")
        if self.min_seconds < 0 or self.warmup_max_seconds < 0:
            raise ValueError("durations must be non-negative")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive or None, got {self.max_seconds}")

    def label(self) -> str:
        return f"batch={self.batch_size} seq={self.seq_bucket}"


@dataclass(frozen=True)
class GridPoint:
    backend: Backend
    scenario: Scenario

    def label(self) -> str:
        return f"{self.backend.label()} {self.scenario.label()}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GridPoint:
        return cls(Backend.from_dict(data["backend"]), Scenario(**data["scenario"]))


def model_variants(models: Iterable[str], variants: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Every (model, variant) pair of the two lists."""
    return tuple(itertools.product(models, variants))


@dataclass(frozen=True)
class Grid:
    """(model, variant) × provider (+ options) × batch size × sequence bucket × intra-op threads × spinning.

    Models and variants come as pairs because not every model has every variant (an ONNX-only
    source ships one); `model_variants(...)` builds the full product where it exists.
    """

    models: tuple[tuple[str, str], ...] = ((DEFAULT_MODEL, "fp32"),)
    providers: tuple[ProviderConfig, ...] = (ProviderConfig.of("CPU"),)
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    seq_buckets: tuple[str, ...] = DEFAULT_SEQ_BUCKETS
    intra_op_threads: tuple[int | None, ...] = DEFAULT_THREADS
    spinning: tuple[str, ...] = (defaults.SPINNING,)
    scenario_defaults: Scenario = Scenario(1, "short")  # samples, seconds and warm-up for every point

    def with_measurement(self, **changes: Any) -> Grid:
        """The same grid with other sample counts, durations or warm-up settings."""
        return replace(self, scenario_defaults=replace(self.scenario_defaults, **changes))

    def points(self) -> list[GridPoint]:
        """Every point, grouped by backend so that one backend's points run back to back."""
        backends = [
            Backend(model, variant, provider, threads, spinning)
            for (model, variant), provider, threads, spinning in itertools.product(
                self.models, self.providers, self.intra_op_threads, self.spinning
            )
        ]
        return [
            GridPoint(backend, replace(self.scenario_defaults, batch_size=batch, seq_bucket=bucket))
            for backend in backends
            for batch, bucket in itertools.product(self.batch_sizes, self.seq_buckets)
        ]
