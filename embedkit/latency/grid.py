"""What a profile measures: a grid of backends × scenarios, expanded to points (optimum-benchmark style).

A backend is what runs (model, variant, execution provider with its options, intra-op threads, how its
idle workers wait); a scenario is what it is asked to do (batch size, sequence-length bucket) and for
how long (samples, seconds, warm-up). A point is one backend with one scenario; each point is measured
in its own process. Points travel to that process as JSON, so everything here is plain, hashable data.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from embedkit import defaults
from embedkit.errors import UsageError
from embedkit.latency.workload import SEQ_BUCKETS
from embedkit.pipeline.providers import build_provider_options, resolve_provider, short_name
from embedkit.pipeline.session import SPINNING_MODES, check_spinning

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
        short = short_name(self.name)
        return short + (f"[{','.join(f'{k}={v}' for k, v in self.options)}]" if self.options else "")


@dataclass(frozen=True)
class Backend:
    model: str  # spec name, local directory or hub id
    variant: str
    provider: ProviderConfig = field(default_factory=lambda: ProviderConfig.of(defaults.DEFAULT_PROVIDER))
    intra_op_threads: int | None = None
    spinning: str = defaults.SPINNING  # one of SPINNING_MODES
    weights: str = defaults.DEFAULT_WEIGHTS  # one of defaults.WEIGHTS: "random" measures the model's twin

    def __post_init__(self) -> None:
        if self.weights not in defaults.WEIGHTS:
            raise UsageError(f"unknown weights {self.weights!r}; expected one of {defaults.WEIGHTS}")
        if self.intra_op_threads is not None and self.intra_op_threads < 1:
            raise UsageError(f"intra_op_threads must be at least 1 or None, got {self.intra_op_threads}")
        check_spinning(self.spinning)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Backend:
        provider = ProviderConfig.of(data["provider"]["name"], dict(data["provider"]["options"]))
        axes = {axis.field: data[axis.field] for axis in BACKEND_AXES}
        return cls(data["model"], data["variant"], provider, **axes,
                   weights=data.get("weights", defaults.DEFAULT_WEIGHTS))  # fmt: skip

    def session_options(self) -> dict[str, str]:
        """Provider options as the session gets them: the thread count reaches OpenVINO's own pool."""
        options = self.provider.options_dict
        if self.provider.name == "OpenVINOExecutionProvider" and self.intra_op_threads is not None:
            options.setdefault(OPENVINO_THREADS_OPTION, str(self.intra_op_threads))
        return options

    def label(self) -> str:
        threads = "default" if self.intra_op_threads is None else self.intra_op_threads
        spinning = "" if self.spinning == defaults.SPINNING else f" spinning={self.spinning}"
        weights = "" if self.weights == defaults.DEFAULT_WEIGHTS else f" weights={self.weights}"
        return f"{self.model}:{self.variant}@{self.provider.label()} threads={threads}{spinning}{weights}"


@dataclass(frozen=True)
class Scenario:
    batch_size: int
    seq_bucket: str
    min_samples: int = defaults.MIN_SAMPLES
    min_seconds: float = defaults.MIN_SECONDS
    # A cap for heavy points (e.g. batch 32 at max_seq_length on a small CPU): sampling stops there
    # even short of min_samples, and the record's n and `stopped_by` say so. None: no cap.
    max_seconds: float | None = None
    warmup_window: int = defaults.WARMUP_WINDOW
    warmup_max_seconds: float = defaults.WARMUP_MAX_SECONDS

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.seq_bucket not in SEQ_BUCKETS:
            raise UsageError(f"unknown sequence bucket {self.seq_bucket!r}; expected one of {tuple(SEQ_BUCKETS)}")
        if self.min_samples < 2:
            raise UsageError(f"min_samples must be at least 2 (a spread needs two), got {self.min_samples}")
        if self.min_seconds < 0 or self.warmup_max_seconds < 0:
            raise UsageError("durations must be non-negative")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise UsageError(f"max_seconds must be positive or None, got {self.max_seconds}")

    def label(self) -> str:
        return f"batch={self.batch_size} seq={self.seq_bucket}"


# --- the axes a grid varies -------------------------------------------------------------------------


def _threads_from_text(text: str) -> int | None:
    # 0 asks for ONNX Runtime's default (one thread per physical core), as ORT itself reads 0.
    value = int(text)
    if value < 0:
        raise ValueError(f"a thread count is 0 (ONNX Runtime's default) or more, got {value}")
    return value or None


def _threads_as_text(value: int | None) -> str:
    return "0" if value is None else str(value)


@dataclass(frozen=True)
class Axis:
    """One axis of the profile grid: a Backend or Scenario field that a grid takes several values of.

    This table is the one place an axis is declared. The CLI (`embedkit profile FLAG …`), the sweep
    schema (`profile.<key>`), notebooks/02_profile.ipynb's `grid` parameter, every profile record
    (`grid.<field>`) and the report's re-run command all read it: a new axis is a new field on
    Backend or Scenario plus one entry here.
    """

    field: str  # the Backend/Scenario field, and the key in a profile record's `grid` section
    key: str  # the Grid field, the sweep file's `profile` key and the key of notebook 02's `grid` parameter
    flag: str  # the repeatable option of `embedkit profile` (and of the report's re-run commands)
    owner: type  # Backend or Scenario
    default: tuple[Any, ...]
    parse: Callable[[str], Any]  # one command-line value -> the field's value
    as_text: Callable[[Any], str]  # one field value -> its command-line text
    value_schema: dict[str, Any]  # JSON Schema of one value in a sweep file
    help: str
    choices: tuple[str, ...] | None = None

    def check(self, values: Iterable[Any]) -> tuple[Any, ...]:
        """`values` as this axis takes them: at least one, none twice."""
        chosen = tuple(values)
        if not chosen:
            raise UsageError(f"{self.key}: give at least one value")
        if len(set(chosen)) != len(chosen):
            raise UsageError(f"{self.key}: a value is given twice in {list(chosen)}")
        return chosen


AXES: tuple[Axis, ...] = (
    Axis("batch_size", "batch_sizes", "--batch", Scenario, defaults.PROFILE_BATCH_SIZES, int, str,
         {"type": "integer", "minimum": 1}, "batch size"),
    Axis("seq_bucket", "seq_buckets", "--seq", Scenario, defaults.PROFILE_SEQ_BUCKETS, str, str,
         {"enum": list(SEQ_BUCKETS)}, "sequence bucket: short ~16 tokens, medium ~64, long = max_seq_length",
         choices=tuple(SEQ_BUCKETS)),
    Axis("intra_op_threads", "threads", "--threads", Backend, defaults.PROFILE_THREADS, _threads_from_text,
         _threads_as_text, {"type": "integer", "minimum": 1}, "intra-op threads (0: ONNX Runtime's default)"),
    Axis("spinning", "spinning", "--spinning", Backend, (defaults.SPINNING,), str, str,
         {"enum": list(SPINNING_MODES)},
         "how ORT's idle workers wait: always is ORT's default, in-run stops when a run returns, never blocks at once",
         choices=SPINNING_MODES),
)  # fmt: skip
BACKEND_AXES = tuple(axis for axis in AXES if axis.owner is Backend)
SCENARIO_AXES = tuple(axis for axis in AXES if axis.owner is Scenario)


def axis_values(given: Mapping[str, Iterable[Any] | None]) -> dict[str, tuple[Any, ...]]:
    """Every axis's values by key: those `given` (None or absent: the axis's default), checked."""
    unknown = sorted(set(given) - {axis.key for axis in AXES})
    if unknown:
        raise UsageError(f"unknown grid axis {unknown}; the axes are {[axis.key for axis in AXES]}")
    values = {}
    for axis in AXES:
        chosen = given.get(axis.key)
        values[axis.key] = axis.check(axis.default if chosen is None else chosen)
    return values


@dataclass(frozen=True)
class GridPoint:
    backend: Backend
    scenario: Scenario

    def label(self) -> str:
        return f"{self.backend.label()} {self.scenario.label()}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def axes(self) -> dict[str, Any]:
        """This point's value on every axis, by field: what its record's `grid` section says of them."""
        return {
            axis.field: getattr(self.backend if axis.owner is Backend else self.scenario, axis.field) for axis in AXES
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GridPoint:
        return cls(Backend.from_dict(data["backend"]), Scenario(**data["scenario"]))


def model_variants(models: Iterable[str], variants: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Every (model, variant) pair of the two lists."""
    return tuple(itertools.product(models, variants))


@dataclass(frozen=True)
class Grid:
    """(model, variant) × provider (+ options) × every axis in AXES (batch size, sequence bucket, intra-op
    threads, spinning).

    Models and variants come as pairs because not every model has every variant (an ONNX-only
    source ships one); `model_variants(...)` builds the full product where it exists.
    """

    models: tuple[tuple[str, str], ...] = ((defaults.DEFAULT_MODEL, defaults.DEFAULT_VARIANT),)
    providers: tuple[ProviderConfig, ...] = (ProviderConfig.of(defaults.DEFAULT_PROVIDER),)
    batch_sizes: tuple[int, ...] = defaults.PROFILE_BATCH_SIZES
    seq_buckets: tuple[str, ...] = defaults.PROFILE_SEQ_BUCKETS
    threads: tuple[int | None, ...] = defaults.PROFILE_THREADS
    spinning: tuple[str, ...] = (defaults.SPINNING,)
    scenario_defaults: Scenario = Scenario(1, "short")  # samples, seconds and warm-up for every point
    weights: str = defaults.DEFAULT_WEIGHTS  # every model's: its checkpoint, or its random-weight twin

    @classmethod
    def of(
        cls,
        models: Iterable[tuple[str, str]],
        providers: Iterable[ProviderConfig],
        axes: Mapping[str, Iterable[Any] | None] | None = None,
        weights: str = defaults.DEFAULT_WEIGHTS,
    ) -> Grid:
        """A grid over `models` × `providers` × the given axis values by key (the others at their defaults)."""
        values: dict[str, Any] = axis_values(axes or {})  # Grid fields by axis key
        return cls(models=tuple(models), providers=tuple(providers), **values, weights=weights)

    def with_measurement(self, **changes: Any) -> Grid:
        """The same grid with other sample counts, durations or warm-up settings."""
        return replace(self, scenario_defaults=replace(self.scenario_defaults, **changes))

    def points(self) -> list[GridPoint]:
        """Every point, grouped by backend so that one backend's points run back to back."""
        backend_values = [getattr(self, axis.key) for axis in BACKEND_AXES]
        scenario_values = [getattr(self, axis.key) for axis in SCENARIO_AXES]
        backends = [
            Backend(
                model,
                variant,
                provider,
                **dict(zip((axis.field for axis in BACKEND_AXES), values, strict=True)),
                weights=self.weights,
            )
            for (model, variant), provider, *values in itertools.product(self.models, self.providers, *backend_values)
        ]
        return [
            GridPoint(
                backend,
                replace(
                    self.scenario_defaults, **dict(zip((axis.field for axis in SCENARIO_AXES), values, strict=True))
                ),
            )
            for backend in backends
            for values in itertools.product(*scenario_values)
        ]
