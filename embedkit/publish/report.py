"""The published answer: `embedkit report [SWEEP]` turns a sweep's records into a report.

It executes notebooks/04_tradeoff.ipynb with papermill on the records under results/<SWEEP>/,
keeps the executed notebook there, exports it as one self-contained HTML file (inputs hidden,
figures embedded) and leaves the figures as PNG and SVG in results/<SWEEP>/figures/. The notebook
reads records only; the tables here (machines, and for every point its records and the commands
that re-measure it) are what the report shows beside the plots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from embedkit import defaults
from embedkit.analysis.tradeoff import Tradeoff
from embedkit.errors import NotebookFailedError, UsageError
from embedkit.paths import child_path, project_file, results_dir
from embedkit.pipeline.providers import short_name
from embedkit.publish.commands import profile_command, published_command, score_command
from embedkit.results.files import write_text_atomically
from embedkit.runs.execution import execute_notebook, require_kernel

NOTEBOOK_NAME = "04_tradeoff.ipynb"
HTML_NAME = "report.html"
FIGURES_DIR_NAME = "figures"


# --- tables the report shows --------------------------------------------------------------------

_MACHINE_COLUMNS = {
    "provenance.cpu.model": "cpu",
    "provenance.cpu.architecture": "architecture",
    "provenance.cpu.physical_cores": "physical cores",
    "provenance.cpu.logical_cores": "logical cores",
    "provenance.memory_total_mb": "memory (MB)",
    "provenance.os.platform": "os",
    "provenance.onnxruntime.version": "onnxruntime",
    "provenance.onnxruntime.available_providers": "providers available",
}


def machines_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per machine: its hardware and runtime (from its newest record) and its record counts."""
    newest = frame.sort_values("created_at").groupby("machine_id").last()
    present = [column for column in _MACHINE_COLUMNS if column in newest]
    table = newest[present].rename(columns=_MACHINE_COLUMNS)
    if "providers available" in table:
        table["providers available"] = table["providers available"].map(
            lambda names: ", ".join(short_name(name) for name in names)
        )
    counts = frame.groupby(["machine_id", "kind"]).size().unstack(fill_value=0)
    return table.join(counts.rename(columns=lambda kind: f"{kind} records")).reset_index()


def point_sources(tradeoff: Tradeoff, frame: pd.DataFrame) -> pd.DataFrame:
    """For every point of the tradeoff: its machine, the records behind it and the commands that re-run it."""
    by_id = {str(row["record_id"]): {str(key): value for key, value in row.items()} for row in frame.to_dict("records")}
    rows = []
    for point in tradeoff.points.to_dict("records"):
        profile = by_id[str(point["profile_record_id"])]
        score = by_id[str(point["score_record_id"])]
        rows.append(
            {
                "point": point["name"],
                "machine_id": point["machine_id"],
                "on_frontier": bool(point["on_frontier"]),
                "profile_record_id": point["profile_record_id"],
                "score_record_id": point["score_record_id"],
                "score_machine_id": score["machine_id"],
                "profile_command": profile_command(profile),
                "score_command": published_command(score, tradeoff.tasks)
                if score["kind"] == "published"
                else score_command(score, tradeoff.tasks),
            }
        )
    return pd.DataFrame(rows)


LATENCY_ONLY_COLUMNS = ["machine_id", "model", "variant", "provider", "weights", "p95_ms", "p95_ci_low", "p95_ci_high",
                        "verdict", "reason", "profile_record_id"]  # fmt: skip


def latency_only(card: pd.DataFrame) -> pd.DataFrame:
    """The decision card's rows that have a latency but no quality (a random-weight twin's non-fp32
    variants, or a variant not scored yet): listed on the latency side, never on the quality axis."""
    return card[card["p95_ms"].notna() & card["quality"].isna()][LATENCY_ONLY_COLUMNS].reset_index(drop=True)


# --- running the report -------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """Where a report's files are, and its headline results."""

    sweep: str
    records_dir: str
    notebook: str
    html: str
    figures: dict[str, dict[str, str]]
    n_points: int
    frontier: dict[str, list[str]]
    pending_runs: list[str]  # runs of the sweep not in it yet: an interim report when not empty

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sweep_records_dir(sweep: str) -> Path:
    """results/<sweep>/ for a sweep name (made a safe name: a name never leads out of results/), or
    `sweep` itself when it is the path of a directory the caller chose."""
    named = child_path(results_dir(), sweep)
    if named.is_dir():
        return named
    if Path(sweep).expanduser().is_dir():
        return Path(sweep).expanduser().resolve()
    known = sorted(path.name for path in results_dir().iterdir() if path.is_dir()) if results_dir().is_dir() else []
    raise UsageError(
        f"no results for sweep {sweep!r}: neither {named} nor ./{sweep} is a directory"
        + (f"; sweeps under {results_dir()}: {', '.join(known)}" if known else "; run `embedkit sweep FILE` first")
    )


def execute_tradeoff(output: Path, parameters: Mapping[str, Any], kernel: str = defaults.KERNEL) -> dict[str, Any]:
    """Run 04_tradeoff.ipynb into `output`; returns its scraps as plain data."""
    import papermill
    import scrapbook

    require_kernel(kernel)
    try:
        execute_notebook(project_file("notebooks", NOTEBOOK_NAME), output, parameters, kernel)
    except papermill.PapermillExecutionError as error:
        raise NotebookFailedError(
            f"{NOTEBOOK_NAME} failed: {error.ename}: {error.evalue} (executed notebook: {output})"
        ) from error
    return {name: scrap.data for name, scrap in scrapbook.read_notebook(str(output)).scraps.items()}


# The lab template loads require.js, MathJax and mermaid from a CDN. The report shows static tables
# and PNG figures only, so it drops them: the file then opens offline with no network request.
_STATIC_TEMPLATE_NAME = "embedkit_report.html.j2"
_STATIC_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""
_SCRAP_MIME_PREFIX = "application/scrapbook.scrap."


def _without_scraps(notebook: Any) -> Any:
    """The notebook minus scrapbook's glue outputs: data for programs, nothing a reader can see."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [
                output
                for output in cell.outputs
                if not (output.get("data") and all(mime.startswith(_SCRAP_MIME_PREFIX) for mime in output["data"]))
            ]
    return notebook


def export_html(executed: Path, html: Path, title: str) -> Path:
    """One self-contained HTML file of an executed notebook: outputs only, figures embedded as data."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        extra_loaders=[jinja2.DictLoader({_STATIC_TEMPLATE_NAME: _STATIC_TEMPLATE})],
        template_file=_STATIC_TEMPLATE_NAME,
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    notebook = _without_scraps(nbformat.read(executed, as_version=4))
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": title}})
    write_text_atomically(html, body)
    return html


def run_report(
    sweep: str = defaults.DEFAULT_SWEEP,
    *,
    metric: str = "latency",
    tasks: Sequence[str] | None = None,
    batch_size: int | None = None,
    seq_bucket: str = defaults.DECISION_SEQ_BUCKET,
    kernel: str = defaults.KERNEL,
    pending_runs: Sequence[str] = (),
) -> Report:
    """Execute the tradeoff notebook on a sweep's records and publish it; see the module docstring.

    `pending_runs`: labels of the sweep's runs still to come; the report says it is interim and names them.
    """
    records_dir = sweep_records_dir(sweep)
    name = records_dir.name
    executed = records_dir / NOTEBOOK_NAME
    figures_dir = records_dir / FIGURES_DIR_NAME
    scraps = execute_tradeoff(
        executed,
        {
            "sweep": name,
            "results_dir": str(records_dir),
            "figures_dir": str(figures_dir),
            "metric": metric,
            "tasks": list(tasks or []),
            "batch_size": batch_size,
            "seq_bucket": seq_bucket,
            "pending_runs": list(pending_runs),
        },
        kernel,
    )
    html = export_html(executed, records_dir / HTML_NAME, f"embedkit report: {name}")
    return Report(
        sweep=name,
        records_dir=str(records_dir),
        notebook=str(executed),
        html=str(html),
        figures=scraps["figures"],
        n_points=scraps["n_points"],
        frontier=scraps["frontier"],
        pending_runs=scraps["pending_runs"],
    )
