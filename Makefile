# Two commands do all the setup on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Where a local wheel of torch is kept (CPU build), use it instead of the registry's CUDA build.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
SEEDS ?= 10

.PHONY: install demo two-moons test bench clean

$(BIN)/mentor: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(FIND_LINKS) -e ".[test]"
	touch $@

install: $(BIN)/mentor

# The main job: does unlabeled data help on built-in data, and which method? (mentor compare)
demo: install
	$(BIN)/mentor demo --out demo_out

# The MPL TwoMoon reproduction (paper section 3.1) and its honest finding.
two-moons: install
	$(BIN)/mentor demo two-moons --seeds $(SEEDS) --out demo_out/two_moons

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

clean:
	rm -rf $(VENV) demo_out *.egg-info
