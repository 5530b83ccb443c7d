# Two commands set up everything on a fresh machine: `make test` and `make demo`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Where PyTorch comes from. Empty: the registry's default (this machine keeps a CPU wheel on disk).
# Elsewhere, set TORCH_INDEX to PyTorch's CPU wheel index to avoid a multi-GB CUDA build.
TORCH_INDEX ?=
EXTRAS ?= dev,export,quality,notebooks
export EMBEDKIT_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
# Published MTEB results (mteb ResultCache layout) for models whose quality is not measured here.
export EMBEDKIT_PUBLISHED ?= $(if $(wildcard ../shared/published),$(abspath ../shared/published),)

STAMP := $(VENV)/.embedkit-installed

# jsonschema imports rfc3987-syntax whenever it is installed (Jupyter's jsonschema[format-nongpl] brings
# it), and that module compiles a grammar at import: ~3.7 s in every process that validates a record or
# a sweep file (each profile worker, each notebook kernel). embedkit checks no string formats, and
# without it jsonschema only skips the IRI format, so the environments go without it.
DROP_SLOW_IMPORTS := -m pip uninstall -q -y rfc3987-syntax

# OpenVINO EP: onnxruntime-openvino installs the same `onnxruntime` module as onnxruntime, so it gets
# its own venv; the profiler finds it by asking each environment's onnxruntime for its providers.
OPENVINO_VENV ?= .venv-openvino
OPENVINO_PY := $(OPENVINO_VENV)/bin/python
OPENVINO_STAMP := $(OPENVINO_VENV)/.embedkit-installed
# CUDA EP, the same way with onnxruntime-gpu, on a machine with an NVIDIA GPU.
CUDA_VENV ?= .venv-cuda
CUDA_PY := $(CUDA_VENV)/bin/python
CUDA_STAMP := $(CUDA_VENV)/.embedkit-installed

.PHONY: env test lint demo lab clean-env openvino-env cuda-env browser

env: $(STAMP)

# torch goes in first and alone: anything that depends on it would otherwise pull a CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt torch $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(PIP) install -q -c constraints.txt -e ".[$(EXTRAS)]"
	$(PY) $(DROP_SLOW_IMPORTS)
	$(PY) -m ipykernel install --sys-prefix --name embedkit --display-name "embedkit"
	touch $@

test: $(STAMP) browser lint
	$(PY) -m pytest -ra $(PYTEST_ARGS)

# Lint, format and types: configured in pyproject.toml, run before the tests.
lint: $(STAMP)
	$(PY) -m ruff check embedkit tests
	$(PY) -m ruff format --check embedkit tests
	$(PY) -m mypy

# The browser test drives Debian's chromium through Playwright (Playwright's own browser download
# does not work here). Installed when missing; if that is impossible, the test says so and skips.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo -n)
browser:
	@command -v chromium >/dev/null 2>&1 || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium) \
		|| echo "chromium could not be installed: the browser test will be skipped"

# The demo compares providers: it builds the OpenVINO environment too (once); when that cannot
# install, it says so in one line and goes on with CPU.
demo: $(STAMP)
	@$(MAKE) --no-print-directory -s openvino-env >/dev/null 2>&1 \
		|| echo "OpenVINO environment could not be built (try: make openvino-env): the demo goes on with CPU"
	$(VENV)/bin/embedkit demo

# The workbench in JupyterLab: loopback only, the notebooks folder open, the `embedkit` kernel (and
# `embedkit-openvino` / `embedkit-cuda` where those environments are built). The URL with its token is
# printed first. As root (these machines) Jupyter refuses to start without --allow-root.
LAB_PORT ?= 8888
lab: $(STAMP)
	@token=$${LAB_TOKEN:-$$($(PY) -c "import secrets; print(secrets.token_hex(24))")}; \
	echo "JupyterLab: http://127.0.0.1:$(LAB_PORT)/lab?token=$$token"; \
	exec $(VENV)/bin/jupyter lab --ip=127.0.0.1 --port=$(LAB_PORT) --port-retries=0 --no-browser \
		--ServerApp.root_dir=$(abspath notebooks) --IdentityProvider.token=$$token \
		$(if $(filter 0,$(shell id -u)),--allow-root,)

clean-env:
	rm -rf $(VENV) $(OPENVINO_VENV) $(CUDA_VENV)

openvino-env: $(OPENVINO_STAMP)

cuda-env: $(CUDA_STAMP)

# An accelerator environment: the core package and its pinned dependencies, then the stock onnxruntime
# swapped for the provider's build ($(1)), then a Jupyter kernel registered in the main venv, where
# papermill and jupyterlab look for kernels. Arguments: venv, build, kernel name, display name, provider.
define accelerator_env
	test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install -q --upgrade pip
	$(1)/bin/python -m pip install -q -c constraints.txt -e . ipykernel
	$(1)/bin/python $(DROP_SLOW_IMPORTS)
	$(1)/bin/python -m pip uninstall -q -y onnxruntime
	$(1)/bin/python -m pip install -q -c constraints.txt $(2)
	$(1)/bin/python -c "import onnxruntime as o, sys; sys.exit(0 if '$(5)' in o.get_available_providers() else f'$(2) lacks $(5): {o.get_available_providers()}')"
	$(1)/bin/python -m ipykernel install --prefix $(abspath $(VENV)) --name $(3) --display-name "$(4)"
	touch $(1)/.embedkit-installed
endef

$(OPENVINO_STAMP): pyproject.toml constraints.txt | $(STAMP)
	$(call accelerator_env,$(OPENVINO_VENV),onnxruntime-openvino,embedkit-openvino,embedkit (OpenVINO),OpenVINOExecutionProvider)

$(CUDA_STAMP): pyproject.toml constraints.txt | $(STAMP)
	$(call accelerator_env,$(CUDA_VENV),onnxruntime-gpu,embedkit-cuda,embedkit (CUDA),CUDAExecutionProvider)
