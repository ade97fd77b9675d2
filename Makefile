# Two commands do all the setup on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Where a local wheel of torch is kept (CPU build), use it instead of the registry's CUDA build.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
SEEDS ?= 10

.PHONY: install demo test bench clean

$(BIN)/mentor: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(FIND_LINKS) -e ".[test]"
	touch $@

install: $(BIN)/mentor

demo: install
	$(BIN)/mentor demo --seeds $(SEEDS) --out demo_out

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

clean:
	rm -rf $(VENV) demo_out *.egg-info
