# The two commands: `make run` and `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SANDBOX := docker/asterisk/sandbox
# Debian packages the tests use: the sandbox builder, a real browser, prompt audio tools.
DEBS := debootstrap chromium chromium-driver espeak-ng sox graphviz iproute2 curl
STAMP := $(VENV)/.installed

.PHONY: run test bench lint format debs venv clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(STAMP)

debs:
	@scripts/install-debs $(DEBS)

run: venv
	-@scripts/install-debs $(DEBS)
	@scripts/run-local

test: venv debs
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/ivr prompts build
	@# The suite in parallel, then alone the tests that restart Asterisk (exit 5: none selected).
	scripts/with-sandbox sh -c '$(BIN)/pytest -n 4 $(PYTEST_ARGS) && \
		{ $(BIN)/pytest -m restart $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]; }'

bench: venv debs
	scripts/with-sandbox $(BIN)/python -m bench

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info
