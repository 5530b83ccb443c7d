"""Stage 2: an ONNX Runtime session on a chosen execution provider.

Providers are named short (`CPU`, `CoreML`, `OpenVINO`, `CUDA`) or by ORT's full name. A requested
provider that this onnxruntime build lacks is an error naming what it has, unless the caller passes
an explicit fallback, which is then recorded on the session.

Thread safety: ORT's `InferenceSession.run` may be called from many threads at once, so one
`OrtSession` serves them all. `close()` releases the InferenceSession (its weights, arenas and
threads); a `run` already in flight holds its own reference and finishes, later ones raise
`SessionClosedError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import onnxruntime as ort

from embedkit import defaults
from embedkit.errors import ModelFileError, ProviderUnavailableError, SessionClosedError, UsageError
from embedkit.pipeline.providers import CPU, build_provider_options, resolve_provider

GRAPH_OPTIMIZATION_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
# always: ORT's default (workers spin between runs too); in-run: they spin while a run lasts and stop
# when it returns (session.force_spinning_stop); never: they block whenever idle.
SPINNING_MODES = ("always", "in-run", "never")
# Output names exporters give the per-token hidden states, in order of preference.
TOKEN_EMBEDDING_OUTPUTS = ("last_hidden_state", "token_embeddings")


def token_embedding_output(ranks: Mapping[str, int], model_path: Path) -> str:
    """The per-token output among a graph's outputs (name → rank): a known name, else the rank-3 one."""
    for name in TOKEN_EMBEDDING_OUTPUTS:
        if name in ranks:
            return name
    # Graphs exported without names (e.g. torch.onnx with defaults): the rank-3 output is per token.
    rank3 = [name for name, rank in ranks.items() if rank == 3]
    if not rank3:
        raise ModelFileError(f"{model_path} has no per-token output (rank 3) among {list(ranks)}")
    return rank3[0]


def check_spinning(mode: str) -> str:
    """`mode` if it is one of SPINNING_MODES, else a UsageError naming them."""
    if mode not in SPINNING_MODES:
        raise UsageError(f"spinning must be one of {SPINNING_MODES}, got {mode!r}")
    return mode


@dataclass(frozen=True)
class SessionConfig:
    provider: str = "CPU"
    provider_options: Mapping[str, Any] = field(default_factory=dict)
    fallback: str | None = None  # provider to use, and record, when `provider` is unavailable
    graph_optimization: str = "all"
    intra_op_threads: int | None = None  # None: ORT's default (one per physical core)
    inter_op_threads: int | None = None
    # How ORT's idle intra-op workers wait (SPINNING_MODES): spinning cuts the wake-up between the
    # graph's parallel sections, but workers that go on spinning after `run` returns hold the cores
    # that the next batch's tokenizer (a rayon pool), mteb's evaluators or another library need.
    spinning: str = defaults.SPINNING
    enable_profiling: bool = False
    profile_prefix: str | None = None
    log_severity: int = 3  # ORT: 0 verbose … 4 fatal

    def session_options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        if self.graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            raise UsageError(
                f"graph_optimization {self.graph_optimization!r} is not one of {tuple(GRAPH_OPTIMIZATION_LEVELS)}"
            )
        options.graph_optimization_level = GRAPH_OPTIMIZATION_LEVELS[self.graph_optimization]
        if self.intra_op_threads is not None:
            options.intra_op_num_threads = self.intra_op_threads
        if self.inter_op_threads is not None:
            options.inter_op_num_threads = self.inter_op_threads
        allow = "0" if check_spinning(self.spinning) == "never" else "1"
        options.add_session_config_entry("session.intra_op.allow_spinning", allow)
        options.add_session_config_entry("session.inter_op.allow_spinning", allow)
        if self.spinning == "in-run":
            options.add_session_config_entry("session.force_spinning_stop", "1")
        options.enable_profiling = self.enable_profiling
        if self.profile_prefix:
            options.profile_file_prefix = self.profile_prefix
        options.log_severity_level = self.log_severity
        return options


def _choose_provider(config: SessionConfig) -> tuple[str, str | None]:
    """(provider to use, fallback note or None)."""
    requested = resolve_provider(config.provider)
    available = ort.get_available_providers()
    if requested in available:
        return requested, None
    if config.fallback is None:
        raise ProviderUnavailableError(
            f"execution provider {requested} is not available in this onnxruntime build "
            f"({ort.__version__}); available: {', '.join(available)}"
        )
    fallback = resolve_provider(config.fallback)
    if fallback not in available:
        raise ProviderUnavailableError(
            f"neither {requested} nor the fallback {fallback} is available; available: {', '.join(available)}"
        )
    return fallback, f"{requested} unavailable; fell back to {fallback}"


class OrtSession:
    """One ONNX graph on one provider; `run` returns the per-token hidden states.

    A context manager: leaving the `with` block closes it.
    """

    def __init__(self, model_path: Path, config: SessionConfig = SessionConfig()):
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ModelFileError(f"ONNX model not found: {self.model_path}")
        self.config = config
        provider, self.fallback_note = _choose_provider(config)
        self.requested_providers = [resolve_provider(config.provider)]
        providers: list[str | tuple[str, dict[str, str]]] = [
            (provider, build_provider_options(provider, config.provider_options))
            if provider == self.requested_providers[0]
            else provider
        ]
        if provider != CPU:
            providers.append("CPUExecutionProvider")  # nodes the accelerator rejects run here
        try:
            self._session: ort.InferenceSession | None = ort.InferenceSession(
                str(self.model_path), sess_options=config.session_options(), providers=providers
            )
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf types
            raise ModelFileError(f"onnxruntime cannot load {self.model_path}: {exc}") from exc
        if provider not in self.active_providers:
            # ORT drops a provider that fails to initialise (e.g. CoreML on an old macOS) with only a log line.
            if config.fallback is None:
                raise ProviderUnavailableError(
                    f"{provider} did not initialise for {self.model_path}; active: {', '.join(self.active_providers)}"
                )
            self.fallback_note = f"{provider} did not initialise; running on {', '.join(self.active_providers)}"
        self.input_names = [i.name for i in self._live().get_inputs()]
        self.output_name = self._token_embedding_output()
        self.dim = self._embedding_dim()

    @property
    def active_providers(self) -> list[str]:
        return list(self._live().get_providers())

    @property
    def closed(self) -> bool:
        return self._session is None

    def _live(self) -> ort.InferenceSession:
        # Read once: a concurrent close() may clear the attribute, never this caller's reference.
        session = self._session
        if session is None:
            raise SessionClosedError(f"the session on {self.model_path} is closed")
        return session

    def _token_embedding_output(self) -> str:
        return token_embedding_output({o.name: len(o.shape) for o in self._live().get_outputs()}, self.model_path)

    def _embedding_dim(self) -> int:
        output = next(o for o in self._live().get_outputs() if o.name == self.output_name)
        dim = output.shape[-1]
        if isinstance(dim, int):
            return dim
        probe = {name: np.ones((1, 1), dtype=np.int64) for name in self.input_names}
        return int(self.run(probe).shape[-1])

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self._live().run([self.output_name], dict(feeds))[0])

    def end_profiling(self) -> Path:
        return Path(self._live().end_profiling())

    def close(self) -> None:
        """Release the InferenceSession; closing twice is harmless."""
        self._session = None

    def __enter__(self) -> OrtSession:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
