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

# The tests that drive the compiled modules (the engine and the command path),
# which is nearly all of them. Left out, to keep `make test` within minutes:
# tests/deploy (it builds wheels of its own) and the tests of configuration,
# logging, signing, connections, signals, the feed, documents, bench smoke runs
# and the API schema, which the pure run covers and whose code is not compiled.
NOT_COMPILED_TESTS := deploy test_config.py test_config_access.py test_logs.py \
	test_broken_stdout.py test_docs.py test_sign.py test_signing.py test_readiness.py \
	test_lifecycle.py test_bench_smoke.py test_bench_journal_smoke.py \
	api/test_schemathesis.py api/test_connections.py api/test_feed.py

test-compiled: $(COMPILED)/.built
	cd $(COMPILED) && PYTHONPATH=$(CURDIR)/$(COMPILED)/lib $(CURDIR)/$(PY) -c \
		"import ome.engine.book as m, ome.commands as c; \
		assert all(x.__file__.endswith('.so') for x in (m, c)), (m.__file__, c.__file__)"
	cd $(COMPILED) && PYTHONPATH=$(CURDIR)/$(COMPILED)/lib $(CURDIR)/$(PY) -m pytest \
		$(CURDIR)/tests $(NOT_COMPILED_TESTS:%=--ignore=$(CURDIR)/tests/%) \
		-c $(CURDIR)/pyproject.toml \
		--rootdir=$(CURDIR) --import-mode=append -p no:cacheprovider

bench: $(COMPILED)/.built
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) bench/engine.py
	OME_ENGINE_PATH=$(COMPILED)/lib $(PY) bench/engine.py

clean:
	rm -rf $(VENV) build .mypy_cache .pytest_cache .ruff_cache .hypothesis
