"""Stand-ins for the stage notebooks in sweep tests: the real parameters cells, small bodies.

They keep sweep tests about the sweep machinery (phases, resumption, failures, limits); the real
notebooks have their own tests.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

EXPORT_PARAMETERS = 'model = ""\nvariants = []\nout_dir = "."'
QUALITY_PARAMETERS = (
    'model = ""\nvariant = ""\nprovider = ""\nprovider_options = {}\ntasks = []\nforce = False\n'
    'batch_size = 32\nout_dir = "."'
)
PROFILE_PARAMETERS = (
    'model = ""\nvariant = ""\nprovider = ""\nprovider_options = {}\ngrid = {}\nsamples = 2\n'
    'min_seconds = 0.0\nout_dir = "."'
)

NO_RECORDS = 'import scrapbook as sb\nsb.glue("records", [])'

# A synthetic score record for the run's model and variant, named in the `records` scrap.
WRITE_SCORE_RECORD = """
import os
import scrapbook as sb
from embedkit.results.files import write_record
from embedkit.results.records import new_record
body = {"model": {"spec": {"name": model}, "variant": {"name": variant, "sha256": "0" * 64, "manifest": {}}},
        "provider": provider, "scores": {"STSBenchmark": 0.8}, "tasks": {"STSBenchmark": {}}, "forced": False,
        "data_sha256": {"sts-test.csv": "1" * 64}}
sb.glue("records", [str(write_record(new_record("score", body), out_dir))])
sb.glue("pid", os.getpid())
"""


# A sweep of one model in two variants, scored on one task; prefix a `name:` line. It ends inside its
# `quality:` section, so that an indented line appended to it adds to that section.
TWO_VARIANTS_SCORED = """models:
  - name: tiny
    variants: [fp32, int8]
providers: [CPU]
quality:
  tasks: [STSBenchmark]
"""


def write_notebook(directory: Path, name: str, parameters: str, *bodies: str) -> None:
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    notebook.cells = [cell, *(nbformat.v4.new_code_cell(body) for body in bodies)]
    notebook.metadata["kernelspec"] = {"name": "embedkit", "display_name": "embedkit", "language": "python"}
    nbformat.write(notebook, directory / name)


def stand_ins(
    directory: Path,
    *,
    export: tuple[str, ...] = (NO_RECORDS,),
    quality: tuple[str, ...] = (WRITE_SCORE_RECORD,),
    profile: tuple[str, ...] = ('raise RuntimeError("no profile runs here")',),
) -> Path:
    """The three stage notebooks in `directory`, with the given cell bodies after their parameters cells."""
    directory.mkdir(parents=True, exist_ok=True)
    write_notebook(directory, "01_export.ipynb", EXPORT_PARAMETERS, *export)
    write_notebook(directory, "03_quality.ipynb", QUALITY_PARAMETERS, *quality)
    write_notebook(directory, "02_profile.ipynb", PROFILE_PARAMETERS, *profile)
    return directory


def sweep_file(directory: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = directory / name
    path.write_text(text)
    return path
