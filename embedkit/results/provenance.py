"""Where a measurement came from: code, packages, runtime build, hardware, machine.

`collect()` is called for every record, so it is cheap: the facts that cannot change while a
process runs (packages, CPU, OS, ONNX Runtime build, machine id) are gathered once per process;
the git state and the timestamp are read on every call.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path

import psutil

from embedkit.paths import PROJECT_ROOT
from embedkit.system import package_version, package_versions, utc_now

# The onnxruntime builds: they install the same module, so the one present tells which build measured.
ONNXRUNTIME_BUILDS: tuple[str, ...] = ("onnxruntime", "onnxruntime-openvino", "onnxruntime-gpu")
# Distributions whose versions change results; null means not installed.
RELEVANT_PACKAGES: tuple[str, ...] = (
    *ONNXRUNTIME_BUILDS,
    "openvino",
    "onnx",
    "numpy",
    "tokenizers",
    "optimum-onnx",
    "optimum",
    "transformers",
    "torch",
    "mteb",
    "sentence-transformers",
)

# Set this to name a machine explicitly (e.g. several containers on one host that should count
# as one machine, or cloned VM images that share /etc/machine-id but not hardware).
MACHINE_ID_ENV = "EMBEDKIT_MACHINE_ID"

_GIT_TIMEOUT_S = 5.0


def _git(*args: str) -> str | None:
    try:
        completed = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return completed.stdout.strip() if completed.returncode == 0 else None


def git_state() -> dict[str, object]:
    """{"commit", "dirty"}; both null when git or the checkout is absent.

    The checkout counts only if embedkit itself is its top level: an installed copy of embedkit
    inside some other repository (e.g. a venv in a clone) must not borrow that repository's commit.
    """
    toplevel = _git("rev-parse", "--show-toplevel")
    if toplevel is None or Path(toplevel).resolve() != PROJECT_ROOT.resolve():
        return {"commit": None, "dirty": None}
    status = _git("status", "--porcelain")
    return {"commit": _git("rev-parse", "HEAD"), "dirty": None if status is None else status != ""}


def cpu_model() -> str:
    """The CPU's marketing name, from /proc/cpuinfo, sysctl on macOS, or platform as a last resort."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        match = re.search(r"^(?:model name|Hardware|Processor)\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        if match:
            return match.group(1).strip()
    if sys.platform == "darwin":
        try:
            brand = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            brand = ""
        if brand:
            return brand
    return platform.processor() or platform.machine()


def _platform_uuid() -> tuple[str, str] | None:
    """(source, raw id) of the OS's own stable machine identifier, when there is one."""
    for path in (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id")):
        if path.is_file():
            value = path.read_text().strip()
            if value:
                return str(path), value
    if sys.platform == "darwin":
        try:
            ioreg = subprocess.run(
                ["ioreg", "-rd1", "-c", "IOPlatformExpertDevice"], capture_output=True, text=True, timeout=5, check=True
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        match = re.search(r'"IOPlatformUUID"\s*=\s*"([^"]+)"', ioreg)
        if match:
            return "IOPlatformUUID", match.group(1)
    return None


@functools.cache
def machine_id() -> tuple[str, str]:
    """(machine id, how it was derived). Stable across reboots; never reveals the raw identifier.

    Order: $EMBEDKIT_MACHINE_ID verbatim; else sha256 of the OS machine id (/etc/machine-id on
    Linux, IOPlatformUUID on macOS) together with the CPU model and logical core count, so that
    container images or VM clones that copy the same machine-id file onto different hardware
    still differ; else sha256 of hostname + CPU model + core count. Hashes are cut to 16 hex digits.
    """
    explicit = os.environ.get(MACHINE_ID_ENV, "").strip()
    if explicit:
        return explicit, "env:" + MACHINE_ID_ENV
    hardware = f"{cpu_model()}|{psutil.cpu_count(logical=True)}"
    platform_id = _platform_uuid()
    if platform_id is not None:
        source, raw = platform_id
        material = f"{raw}|{hardware}"
    else:
        source, material = "hostname+cpu", f"{socket.gethostname()}|{hardware}"
    return hashlib.sha256(material.encode()).hexdigest()[:16], source


def _onnxruntime_facts() -> dict[str, object]:
    try:
        import onnxruntime
    except ImportError:
        return {"version": None, "build_info": None, "device": None, "available_providers": []}
    return {
        "version": onnxruntime.__version__,
        "build_info": onnxruntime.get_build_info(),
        "device": onnxruntime.get_device(),
        "available_providers": list(onnxruntime.get_available_providers()),
    }


@functools.cache
def _static_facts() -> dict[str, object]:
    identifier, source = machine_id()
    return {
        "embedkit_version": package_version("embedkit"),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "packages": package_versions(RELEVANT_PACKAGES),
        "onnxruntime": _onnxruntime_facts(),
        "cpu": {
            "model": cpu_model(),
            "architecture": platform.machine(),
            "physical_cores": psutil.cpu_count(logical=False),
            "logical_cores": psutil.cpu_count(logical=True),
        },
        "memory_total_mb": psutil.virtual_memory().total / 2**20,
        "os": {"system": platform.system(), "release": platform.release(), "platform": platform.platform()},
        "machine_id": identifier,
        "machine_id_source": source,
    }


def collect() -> dict[str, object]:
    """Provenance of a measurement taken now, in this process, as a JSON-ready dict."""
    facts = copy.deepcopy(_static_facts())  # callers may edit the result; the cache must not change
    return {
        "embedkit": {"version": facts["embedkit_version"], **git_state()},
        **{key: value for key, value in facts.items() if key != "embedkit_version"},
        "collected_at": utc_now(),
    }
