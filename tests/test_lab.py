"""`make lab`: JupyterLab on loopback with the embedkit kernel, the URL with its token printed first."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
START_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


# The environment is the suite's own (`make test` built it): only the lab target is under test here.
ENV_STAMP = ".venv/.embedkit-installed"


@pytest.mark.slow
def test_make_lab_serves_the_notebooks_with_the_embedkit_kernel_on_loopback() -> None:
    port = _free_port()
    lab = subprocess.Popen(
        ["make", "--no-print-directory", "--old-file", ENV_STAMP, "lab", f"LAB_PORT={port}"], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert lab.stdout is not None
        first = lab.stdout.readline()
        match = re.search(rf"http://127\.0\.0\.1:{port}/lab\?token=(\w+)", first)
        assert match, first
        token = match.group(1)
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                status = _get(f"http://127.0.0.1:{port}/api/status?token={token}")
                break
            except OSError:
                assert lab.poll() is None, "jupyter lab exited"
                assert time.monotonic() < deadline, "jupyter lab did not answer"
                time.sleep(0.5)
        assert "started" in status
        assert "embedkit" in _get(f"http://127.0.0.1:{port}/api/kernelspecs?token={token}")["kernelspecs"]
        listing = _get(f"http://127.0.0.1:{port}/api/contents?token={token}")
        assert "00_quickstart.ipynb" in {entry["name"] for entry in listing["content"]}
        with pytest.raises(urllib.error.HTTPError):  # the token is required
            _get(f"http://127.0.0.1:{port}/api/contents")
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        try:
            lab.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)
            lab.wait(timeout=30)
