"""environment.yml, pyproject.toml and constraints.txt describe one environment."""

import re
from pathlib import Path

import tomllib
import yaml

REPO = Path(__file__).resolve().parent.parent


def _key(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\[<>=~!; ]", requirement, maxsplit=1)[0]).lower()


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_key(name)] = version.strip()
    return pins


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return {_key(r) for r in requirements}


def _environment_pins() -> dict[str, str]:
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    return {_key(r): r.split("==")[1] for r in pip_section if "==" in r}


def test_environment_names_every_project_requirement():
    assert set(_environment_pins()) == _pyproject_requirements()


def test_environment_pins_equal_the_constraints():
    constraints = _constraints()
    assert {name: constraints.get(name) for name in _environment_pins()} == _environment_pins()


def test_constraints_pin_every_requirement_and_the_known_resolution():
    constraints = _constraints()
    assert _pyproject_requirements() <= set(constraints)
    # optimum-onnx needs transformers < 4.58, which holds sentence-transformers at 5.x; torch is the CPU build.
    assert tuple(map(int, constraints["transformers"].split(".")[:2])) < (4, 58)
    assert constraints["sentence-transformers"].startswith("5.")
    assert constraints["torch"] == "2.13.0"


def test_makefile_installs_torch_before_the_rest():
    makefile = (REPO / "Makefile").read_text()
    assert makefile.index("constraints.txt torch") < makefile.index('-e ".[$(EXTRAS)]"')


def test_the_profile_worker_needs_only_the_core_dependencies():
    # The accelerator environments (make openvino-env, cuda-env) install embedkit's core dependencies
    # only, and run the profile worker there: none of the extras may be imported on its way.
    import subprocess
    import sys

    extras = ["pandas", "matplotlib", "mteb", "torch", "transformers", "optimum", "datasets", "papermill"]
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in extras)
    code = f"import sys; {blocked}; import embedkit.latency.worker"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
