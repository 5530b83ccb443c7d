"""Resource limits of one notebook run: a memory ceiling and a time budget, enforced by a watchdog.

Why a watchdog over the kernel's process tree, and not `resource.setrlimit(RLIMIT_AS)` in the kernel:
- RLIMIT_AS caps virtual address space, not memory used. ONNX Runtime, BLAS and torch reserve far more
  address space than they touch (thread stacks, arenas), so an honest ceiling would fail healthy runs,
  and the failure surfaces as a MemoryError or a segfault deep inside a library, with no number to report.
- The profiler starts a fresh process per grid point; the ceiling must cover the kernel's children too.
- papermill's `execution_timeout` is per cell; a run's budget is for the whole notebook.
So a thread in the process that runs papermill samples the resident memory of the kernel and all its
descendants (psutil) and the run's elapsed time, and kills the tree at the first limit crossed, keeping
the limit and the value it measured for the run's failure record. The price is the sampling interval:
memory can overshoot the ceiling by what the run allocates in one interval before the kill.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import psutil

from embedkit.runs.execution import LocalKernelManager
from embedkit.system import tree_rss_mb

POLL_SECONDS = 0.1
# A limit is crossed when the value as reported (rounded to these digits) is over it: the failure
# record then never shows a measured value at or under its ceiling.
MEMORY_DIGITS = 1
SECONDS_DIGITS = 2


@dataclass(frozen=True)
class Limits:
    """A run's ceilings; None means unlimited."""

    memory_mb: float | None = None  # resident memory of the kernel and its descendants, summed
    # Wall-clock time from the kernel being ready, enforced while a cell runs: kernel start-up has
    # papermill's own timeout, and shutdown after the last cell is no part of the run's work.
    seconds: float | None = None

    @classmethod
    def from_config(cls, section: dict[str, Any] | None) -> Limits:
        return cls(**(section or {}))

    def overridden_by(self, other: Limits) -> Limits:
        """These limits with every limit that `other` sets replaced by `other`'s."""
        return replace(self, **other.to_dict())

    def any(self) -> bool:
        return bool(self.to_dict())

    def to_dict(self) -> dict[str, float]:
        return {name: value for name, value in asdict(self).items() if value is not None}


NO_LIMITS = Limits()


@dataclass(frozen=True)
class LimitExceeded:
    limit: str  # a Limits field name
    ceiling: float
    measured: float

    @property
    def message(self) -> str:
        if self.limit == "memory_mb":
            return (
                f"memory ceiling of {self.ceiling:g} MB exceeded: the kernel and its child processes reached "
                f"{self.measured:g} MB resident; the run was stopped"
            )
        return f"time budget of {self.ceiling:g} s exceeded: the run was stopped after {self.measured:g} s"

    def to_error(self) -> dict[str, Any]:
        """The `error` of a failed run's run.json."""
        return {"type": "ResourceLimitExceeded", "message": self.message, **asdict(self)}


def kill_tree(process: psutil.Process) -> None:
    try:
        members = [*process.children(recursive=True), process]
    except psutil.NoSuchProcess:
        return
    for member in members:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            continue


class KernelWatchdog:
    """Watches the kernel of one papermill execution and kills it at the first limit crossed.

    Pass `papermill_options()` to `papermill.execute_notebook` inside `with watchdog:`; afterwards,
    `exceeded` says which limit stopped the run (None if none did) and `peak_rss_mb` what was seen.
    """

    def __init__(self, limits: Limits, poll_seconds: float = POLL_SECONDS) -> None:
        self.limits = limits
        self.poll_seconds = poll_seconds
        self.exceeded: LimitExceeded | None = None
        self.peak_rss_mb = 0.0
        self._managers: list[LocalKernelManager] = []
        self._ready_at: float | None = None
        self._cell_running = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="embedkit-kernel-watchdog", daemon=True)

    def papermill_options(self) -> dict[str, Any]:
        """nbclient options that hand this watchdog the kernel manager and the moment the kernel is ready."""
        managers = self._managers

        # A class per execution, because nbclient takes a kernel manager class and instantiates it itself;
        # letting nbclient own the manager keeps its normal shutdown and cleanup of the kernel.
        class WatchedKernelManager(LocalKernelManager):
            def __init__(self, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                managers.append(self)

        return {
            "kernel_manager_class": WatchedKernelManager,
            "on_notebook_start": self._kernel_ready,
            "on_cell_start": self._cell_started,
            "on_cell_executed": self._cell_executed,
        }

    def _kernel_ready(self, **_: Any) -> None:
        self._ready_at = time.monotonic()

    def _cell_started(self, **_: Any) -> None:
        self._cell_running = True

    def _cell_executed(self, **_: Any) -> None:
        self._cell_running = False

    def __enter__(self) -> KernelWatchdog:
        if self.limits.any():
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _kernel(self) -> psutil.Process | None:
        provisioner = self._managers[0].provisioner if self._managers else None
        pid = getattr(provisioner, "pid", None)  # a local kernel's process; sweeps start no other kind
        if pid is None:
            return None
        try:
            return psutil.Process(pid)
        except psutil.NoSuchProcess:
            return None

    def _watch(self) -> None:
        while not self._stopped.wait(self.poll_seconds):
            kernel = self._kernel()
            if kernel is None:
                continue
            self.exceeded = self._check(kernel)
            if self.exceeded is not None:
                kill_tree(kernel)
                return

    def _check(self, kernel: psutil.Process) -> LimitExceeded | None:
        try:
            self.peak_rss_mb = max(self.peak_rss_mb, tree_rss_mb(kernel))
        except psutil.NoSuchProcess:  # the kernel ended on its own; nbclient reports that
            return None
        memory = round(self.peak_rss_mb, MEMORY_DIGITS)
        if self.limits.memory_mb is not None and memory > self.limits.memory_mb:
            return LimitExceeded("memory_mb", self.limits.memory_mb, memory)
        elapsed = 0.0 if self._ready_at is None else round(time.monotonic() - self._ready_at, SECONDS_DIGITS)
        if self.limits.seconds is not None and self._cell_running and elapsed > self.limits.seconds:
            return LimitExceeded("seconds", self.limits.seconds, elapsed)
        return None
