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

STAMP := $(VENV)/.embedkit-installed

.PHONY: env test demo clean-env

env: $(STAMP)

# torch goes in first and alone: anything that depends on it would otherwise pull a CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt torch $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(PIP) install -q -c constraints.txt -e ".[$(EXTRAS)]"
	$(PY) -m ipykernel install --sys-prefix --name embedkit --display-name "embedkit"
	touch $@

test: $(STAMP)
	$(PY) -m pytest -ra $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/embedkit demo

clean-env:
	rm -rf $(VENV)
