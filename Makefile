# Two commands do everything: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The engine and the command step compiled with mypyc (see setup.py), installed
# into a folder of its own.
COMPILED := $(VENV)/ome-mypyc

.PHONY: run test lint test-compiled bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml setup.py | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml setup.py | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) -m ome --dev

lint: $(VENV)/.installed-test
	$(PY) -m ruff check ome tests bench
	$(PY) -m mypy

# The tests run against the pure build and, where a C compiler is found,
# against the compiled one too.
test: lint
	$(PY) -m pytest
	@if command -v cc >/dev/null 2>&1; then $(MAKE) --no-print-directory test-compiled; \
	else echo "no C compiler found: the mypyc-compiled build was not tested"; fi

# build/ is setuptools' own: a module compiled by an earlier setup.py would be packed again.
# Every module is a prerequisite: the build holds the whole package, which benches then run.
$(COMPILED)/.built: $(VENV)/.installed-test setup.py $(wildcard ome/*.py ome/*/*.py)
	rm -rf $(COMPILED) build
	MYPYC_ENGINE=1 $(PY) -m pip wheel --quiet --no-build-isolation --no-deps -w $(COMPILED)/dist .
	$(PY) -m pip install --quiet --no-deps --target $(COMPILED)/lib $(COMPILED)/dist/*.whl
	touch $@

# Every test but tests/deploy (which builds wheels of its own): the compiled modules
# include the command path, which nearly every test drives.
test-compiled: $(COMPILED)/.built
	cd $(COMPILED) && PYTHONPATH=$(CURDIR)/$(COMPILED)/lib $(CURDIR)/$(PY) -c \
		"import ome.engine.book as m, ome.commands as c; \
		assert all(x.__file__.endswith('.so') for x in (m, c)), (m.__file__, c.__file__)"
	cd $(COMPILED) && PYTHONPATH=$(CURDIR)/$(COMPILED)/lib $(CURDIR)/$(PY) -m pytest \
		$(CURDIR)/tests --ignore=$(CURDIR)/tests/deploy -c $(CURDIR)/pyproject.toml \
		--rootdir=$(CURDIR) --import-mode=append -p no:cacheprovider

bench: $(COMPILED)/.built
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) bench/engine.py
	OME_ENGINE_PATH=$(COMPILED)/lib $(PY) bench/engine.py

clean:
	rm -rf $(VENV) build .mypy_cache .pytest_cache .ruff_cache .hypothesis
