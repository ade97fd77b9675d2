# Two commands do all the setup on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Where a local wheel of torch is kept (CPU build), use it instead of the registry's CUDA build.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
SEEDS ?= 10
# Every package at the version of the last green test run (CPython 3.11, Linux x86_64), build tools
# included; `make lock` refreshes it. `make LOCK= test` installs from pyproject.toml's ranges instead.
LOCK ?= requirements.lock
# pip reads a constraints file for the install and, apart, for the build environment of `-e .`.
LOCKED := $(if $(LOCK),PIP_CONSTRAINT=$(CURDIR)/$(LOCK) PIP_BUILD_CONSTRAINT=$(CURDIR)/$(LOCK),)
# `make test-latest` and `make lock` install the newest releases here, apart from .venv.
LATEST := .venv-latest

.PHONY: install demo two-moons test test-latest lock bench clean

$(BIN)/mentor: pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(LOCKED) $(BIN)/python -m pip install --quiet --upgrade pip setuptools
	$(LOCKED) $(BIN)/python -m pip install --quiet $(FIND_LINKS) -e ".[test]"
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

# The test suite on the newest release of every dependency (torch stays at its pin): a release
# that breaks mentor shows here before it reaches a user. It leaves the lock as it is.
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip setuptools
	$(LATEST)/bin/python -m pip install --quiet $(FIND_LINKS) -e ".[test]"
	$(LATEST)/bin/python -m pip freeze --all --exclude-editable > $(LATEST)/tested.txt
	$(LATEST)/bin/python -m pytest -q -p no:cacheprovider tests

# The newest releases become the lock, once the test suite has passed on them.
lock: test-latest
	{ echo "# The versions the test suite last passed on (make lock, $$(date -u +%F), Python $$($(LATEST)/bin/python -c 'import platform; print(platform.python_version(), platform.machine())'))."; \
	  echo "# make demo, make test and .ci/run install from it; pyproject.toml keeps the ranges users install from."; \
	  sed -E 's/^([^=]+==[^+]+)\+.*$$/\1/' $(LATEST)/tested.txt; } > $(LOCK)

clean:
	rm -rf $(VENV) $(LATEST) demo_out *.egg-info
