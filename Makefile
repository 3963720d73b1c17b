# Everything a fresh machine needs comes from here: a virtual environment, the package, the
# Kafka broker jars (Maven Central), then the demo or the tests against that real broker.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

demo: install kafka-fetch
	$(BIN)/packflow demo

.PHONY: demo test install kafka-fetch kafka-start kafka-stop topics lint typecheck compose-check clean

test: install kafka-fetch
	$(BIN)/pytest

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

kafka-fetch: install
	$(BIN)/packflow kafka fetch

kafka-start: install
	$(BIN)/packflow kafka start

kafka-stop: install
	$(BIN)/packflow kafka stop

topics: install
	$(BIN)/packflow topics create

lint: install
	$(BIN)/ruff check packflow consumer backends tests
	$(BIN)/ruff format --check packflow consumer backends tests

typecheck: install
	$(BIN)/mypy

compose-check:
	docker compose config --quiet

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
