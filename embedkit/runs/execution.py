"""Executing one of embedkit's notebooks with papermill, the one way sweeps and the report do it.

papermill rewrites its output notebook after every cell, so it writes to a hidden partial file beside
the output, published (renamed over the output) when the execution ends, whether the notebook succeeded
or not: a reader never sees a torn notebook, and a failed run still leaves the cells it executed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager

from embedkit import defaults
from embedkit.errors import KernelMissingError
from embedkit.results.files import replace_atomically


class LocalKernelManager(AsyncKernelManager):
    """A kernel on this machine that talks over Unix sockets (IPC), not TCP.

    A local kernel needs no network port, and ipykernel warns on every TCP start that its traffic is
    unencrypted: one line per run that would flood a sweep's terminal. Subclass this one to add to it.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("transport", "ipc")
        super().__init__(**kwargs)


def partial_path(output: Path) -> Path:
    """Where the execution writes `output` until it ends: hidden, in the same directory."""
    return output.with_name(f".{output.stem}.partial{output.suffix}")


def require_kernel(kernel: str = defaults.KERNEL) -> None:
    """KernelMissingError saying how to install the Jupyter kernel `kernel` when it is missing."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel as error:
        raise KernelMissingError(
            f"the Jupyter kernel {kernel!r} is not installed: run `make env`, or "
            f"`python -m ipykernel install --sys-prefix --name {kernel}` in embedkit's environment"
        ) from error


def execute_notebook(
    notebook: Path,
    output: Path,
    parameters: Mapping[str, Any],
    kernel: str = defaults.KERNEL,
    **engine_options: Any,
) -> None:
    """Run `notebook` with `parameters` into `output`, in `output`'s directory.

    papermill's exceptions (PapermillExecutionError for a failing cell) pass through to the caller,
    after the executed cells are published at `output`. `engine_options` go to nbclient (e.g. a
    kernel manager class, a LocalKernelManager by default, and cell hooks, as embedkit.runs.limits's
    watchdog uses).
    """
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(output)
    try:
        papermill.execute_notebook(
            str(notebook),
            str(partial),
            parameters=dict(parameters),
            kernel_name=kernel,
            cwd=str(output.parent),
            progress_bar=False,
            **{"kernel_manager_class": LocalKernelManager, **engine_options},
        )
    finally:
        if partial.exists():
            replace_atomically(partial, output)
