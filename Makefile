# Everything a fresh machine needs comes from here: a virtual environment, the package, the
# Kafka broker jars (Maven Central), then the demo or the tests against that real broker.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORE_STAMP := $(VENV)/.installed-core
UV := $(BIN)/uv

# The demo needs the core package only (no torch: a numpy model on the embedded broker). Its
# two downloads run side by side: the package's dependencies (uv) and the broker's jars (Maven,
# into its local repository, from which `packflow demo` then copies them offline).
demo:
	$(MAKE) --no-print-directory -j2 install-core kafka-prefetch
	$(BIN)/packflow demo

# Best effort: without Maven, `packflow` itself says what is missing.
kafka-prefetch:
	-@mvn -B -q -f consumer/pom.xml dependency:resolve >/dev/null 2>&1

.PHONY: demo test test-floors install install-core bytecode kafka-prefetch kafka-fetch kafka-start kafka-stop topics lint typecheck compose-check clean bench bench-quix-venv soak faults

test: install kafka-fetch bytecode
	$(BIN)/pytest
	$(MAKE) test-floors

# The unit tests and the broker tests on the dependency floors: every direct dependency at the
# lowest release pyproject.toml allows (uv's lowest-direct resolution), in a venv of its own.
FLOORS_VENV ?= .venv-floors
test-floors: kafka-fetch | $(UV)
	test -x $(FLOORS_VENV)/bin/python || $(PYTHON) -m venv --without-pip $(FLOORS_VENV)
	$(UV) pip install --quiet --python $(FLOORS_VENV)/bin/python \
		--resolution lowest-direct --reinstall-package packflow -e '.[dev,otel]'
	$(UV) pip freeze --python $(FLOORS_VENV)/bin/python \
		| grep -iE '^(confluent-kafka|fastavro|numpy|pydantic|pydantic-settings|structlog|typer|rich|orjson)=='
	$(FLOORS_VENV)/bin/pytest -p no:cacheprovider tests/unit tests/integration/test_roundtrip.py \
		tests/integration/test_runtime.py

# Everything: the torch extra (CUDA torch from PyPI, several GB), dev tools, OpenTelemetry.
install: $(STAMP)

# The package and its core dependencies (a few hundred MB, no torch).
install-core: $(CORE_STAMP)

# uv installs the environments (seconds where pip takes half a minute). It comes from the
# system's pip when there is one, else from a pip bootstrapped into the venv.
$(UV):
	$(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -m pip --python $(BIN)/python install --quiet uv 2>/dev/null \
		|| ($(BIN)/python -m ensurepip --upgrade >/dev/null && $(BIN)/python -m pip install --quiet uv)

$(STAMP): pyproject.toml | $(UV)
	$(UV) pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev,torch,otel]'
	touch $(STAMP) $(CORE_STAMP)

$(CORE_STAMP): pyproject.toml | $(UV)
	$(UV) pip install --quiet --compile-bytecode --python $(BIN)/python -e .
	touch $(CORE_STAMP)

# The repository's own modules as bytecode: an editable install leaves them as source, and
# where PYTHONDONTWRITEBYTECODE is set every replica started would compile them again (~0.15 s
# of its start-up). compileall skips what is up to date.
bytecode: | $(UV)
	$(BIN)/python -m compileall -q packflow consumer backends bench tests

# The fault suite in full (10 kills, 100k records per scenario; docs/RELIABILITY.md), with
# its table in faults-report.md. `make test` runs the same scenarios in a short form.
faults: install kafka-fetch
	rm -f faults-report.jsonl
	PACKFLOW_FAULTS=full PACKFLOW_FAULTS_REPORT=faults-report.jsonl $(BIN)/pytest tests/faults -s
	$(BIN)/python -m tests.faults.report faults-report.jsonl | tee faults-report.md

# Benchmarks (docs/PERFORMANCE.md): reports only, nothing asserted. A quick run:
#   make bench BENCH_ARGS="--records 50000 --rounds 1 --latency-seconds 5"
bench: install kafka-fetch bench-quix-venv bytecode
	$(BIN)/python -c "import matplotlib" 2>/dev/null || $(UV) pip install --quiet --python $(BIN)/python -e '.[dev,torch,otel,bench]'
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# The bench's Quix Streams peer (bench/quix_app.py) in a venv of its own: Quix Streams pins
# confluent-kafka below the release Packflow's venv has (bench/requirements-quix.txt).
QUIX_VENV := bench/.venv-quix
QUIX_STAMP := $(QUIX_VENV)/.installed
bench-quix-venv: $(QUIX_STAMP)

$(QUIX_STAMP): bench/requirements-quix.txt | $(UV)
	$(UV) venv --quiet --allow-existing --python $(BIN)/python $(QUIX_VENV)
	$(UV) pip install --quiet --compile-bytecode --python $(QUIX_VENV)/bin/python \
		-r bench/requirements-quix.txt
	touch $(QUIX_STAMP)

#   make soak SOAK_ARGS="--records 1000000"
soak: install kafka-fetch bytecode
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

kafka-fetch: install-core
	$(BIN)/packflow kafka fetch

kafka-start: install-core
	$(BIN)/packflow kafka start

kafka-stop: install-core
	$(BIN)/packflow kafka stop

topics: install-core
	$(BIN)/packflow topics create

lint: install
	$(BIN)/ruff check packflow consumer backends tests bench
	$(BIN)/ruff format --check packflow consumer backends tests bench

typecheck: install
	$(BIN)/mypy

compose-check:
	docker compose config --quiet

clean:
	rm -rf $(VENV) $(FLOORS_VENV) $(QUIX_VENV) dist build .pytest_cache .mypy_cache .ruff_cache
