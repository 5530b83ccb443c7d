"""00_quickstart.ipynb as people run it: under papermill (scraps asserted) and in JupyterLab in a real browser.

Also: the notebooks here are committed without outputs, with the parameters cell first and the
validating cell right after it.

The browser test starts `jupyter lab` on 127.0.0.1 with a token and a free port, opens a copy of the
quickstart in headless Debian Chromium driven by Playwright (Playwright's own browser download does
not work here), runs all cells from the Run menu, and checks the saved notebook and the page.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import papermill
import pytest
import scrapbook

from embedkit import defaults
from embedkit.paths import project_file
from embedkit.results.files import RECORD_SUFFIX, read_record
from embedkit.runs.execution import require_kernel

pytestmark = pytest.mark.slow

QUICKSTART = project_file("notebooks", "00_quickstart.ipynb")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SENTENCES = ["machine learning algorithms", "artificial intelligence methods", "cooking italian pasta"]
# Run All on a cold kernel: importing embedkit and mteb takes most of it on a busy 2-core machine.
RUN_ALL_TIMEOUT_MS = 150_000


@pytest.fixture(scope="module")
def kernel() -> str:
    require_kernel(defaults.KERNEL)
    return defaults.KERNEL


@pytest.mark.parametrize("name", ["00_quickstart.ipynb", "04_tradeoff.ipynb"])
def test_notebooks_are_committed_clean_with_parameters_then_validation(name: str) -> None:
    notebook = json.loads(project_file("notebooks", name).read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)
    assert [cell for cell in code if "parameters" in cell["metadata"].get("tags", [])] == [code[0]]
    assert "nb.check_parameters(" in "".join(code[1]["source"])
    assert notebook["metadata"]["kernelspec"]["name"] == defaults.KERNEL


def _scraps(path: Path) -> dict[str, Any]:
    return {name: scrap.data for name, scrap in scrapbook.read_notebook(str(path)).scraps.items()}


def test_quickstart_under_papermill(kernel: str, data_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EMBEDKIT_RESULTS", str(tmp_path / "results"))  # the embedding cache too
    executed = tmp_path / "quickstart.ipynb"
    papermill.execute_notebook(
        str(QUICKSTART), str(executed), kernel_name=kernel, progress_bar=False, cwd=str(tmp_path),
        parameters={"sentences": SENTENCES, "profile_samples": 20, "score_task": "BIOSSES",
                    "results_dir": str(tmp_path / "quickstart")},
    )  # fmt: skip
    scraps = _scraps(executed)
    assert scraps["dim"] == 384 and scraps["providers"] == ["CPUExecutionProvider"]
    similarity = np.array(scraps["similarity"])
    assert similarity.shape == (3, 3) and np.allclose(similarity, similarity.T, atol=1e-6)
    assert np.allclose(np.diag(similarity), 1.0, atol=1e-5)
    assert similarity[0, 1] > similarity[0, 2] + 0.3  # the seed plan's similar pair beats its unrelated pair
    assert scraps["probe"]["similar"] == pytest.approx(similarity[0, 1], abs=1e-5)
    profile = scraps["profile"]
    record = read_record(tmp_path / "quickstart" / "records" / f"{profile['record_id']}{RECORD_SUFFIX}")
    assert record["grid"]["batch_size"] == 1 and record["stages"]["total"]["n"] >= 20
    assert profile["total_p95"] == record["stages"]["total"]["p95"] > 0
    assert 0.6 < scraps["score"]["BIOSSES"] <= 1.0


# --- JupyterLab in headless Chromium ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_serving(url: str, server: subprocess.Popen, log: Path, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"jupyter lab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"jupyter lab did not answer {url} within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def _write_lab_settings(settings_dir: Path) -> None:
    """Every cell attached to the page (so that all outputs can be checked), and no news pop-up."""
    notebook = settings_dir / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    notebook.parent.mkdir(parents=True)
    notebook.write_text(json.dumps({"windowingMode": "none"}))
    notifications = settings_dir / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notifications.parent.mkdir(parents=True)
    notifications.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium (/usr/bin/chromium), which `make test` installs with apt-get when it can."""
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("chromium is not installed and `make browser` could not install it (apt-get install chromium)")
    return path


@pytest.fixture()
def lab(kernel: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A JupyterLab server on 127.0.0.1 over a fresh directory; yields (notebook URL template, that directory)."""
    root, home = tmp_path / "lab", tmp_path / "home"
    root.mkdir()
    _write_lab_settings(home / "settings")
    port, token = _free_port(), secrets.token_hex(16)
    environment = {
        **os.environ,
        "EMBEDKIT_RESULTS": str(tmp_path / "results"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
    }
    log = tmp_path / "jupyter-lab.log"
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
    ]  # fmt: skip
    if os.geteuid() == 0:  # containers and CI often run as root; the server refuses that unless told
        command.append("--allow-root")
    with log.open("w") as sink:
        server = subprocess.Popen(command, env=environment, stdout=sink, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_serving(f"{base}/api/status?token={token}", server, log)
        yield f"{base}/lab/tree/{{path}}?token={token}", root
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_quickstart_runs_in_jupyterlab_in_chromium(
    chromium: str, lab: tuple[str, Path], kernel: str, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    url, root = lab
    # The copy takes its parameters the way papermill would write them; the tiny profile and the score
    # run under papermill above, so the browser run covers embedding, the heat map and the probe.
    papermill.execute_notebook(
        str(QUICKSTART), str(root / "quickstart.ipynb"), prepare_only=True,
        parameters={"sentences": SENTENCES, "profile_samples": None, "score_task": None},
    )  # fmt: skip
    screenshot = tmp_path / "quickstart.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(url.format(path="quickstart.ipynb"))
            # The status bar names the kernel once the notebook's session has one (before that it
            # says "No Kernel", and running cells would ask which kernel to start).
            kernel_idle = page.locator(".jp-StatusBar-Widget").get_by_text(f"{kernel} | Idle")
            kernel_idle.wait_for(timeout=90_000)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            page.wait_for_function(
                """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
                        .every(p => /\\[\\d+\\]/.test(p.textContent))""",
                timeout=RUN_ALL_TIMEOUT_MS,
            )
            kernel_idle.wait_for(timeout=30_000)
            heat_map = page.locator(".jp-RenderedImage img").first
            heat_map.scroll_into_view_if_needed()
            natural_width = heat_map.evaluate("img => img.complete ? img.naturalWidth : 0")
            page_errors = page.locator(".jp-OutputArea-output").filter(has_text="Traceback").count()
            page.keyboard.press("Control+s")
            page.locator(".jp-StatusBar-Widget").get_by_text("Saving completed").wait_for(timeout=30_000)
        finally:  # also on failure: the picture shows what the page showed
            page.screenshot(path=str(screenshot), full_page=True)
            browser.close()
    assert natural_width > 100, "no plot image rendered in the notebook"
    assert page_errors == 0
    saved = json.loads((root / "quickstart.ipynb").read_text())
    outputs = [output for cell in saved["cells"] if cell["cell_type"] == "code" for output in cell["outputs"]]
    assert [o for o in outputs if o["output_type"] == "error"] == []
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert screenshot.stat().st_size > 10_000
