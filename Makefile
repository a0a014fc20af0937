# The two commands that matter: `make up` (start everything) and `make test` (the whole suite).
# Each target creates or refreshes the local virtual environment when pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: up test lint fmt bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

up: $(STAMP)
	$(BIN)/stockmanager up $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy stockmanager gateway services
	$(BIN)/pytest -q -p no:cacheprovider $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy stockmanager gateway services

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# make bench NAME=sales [ARGS="--requests 2000"]   (products, sales, notifications, metrics)
bench: $(STAMP)
	@test -n "$(NAME)" || (echo "usage: make bench NAME=products|sales|notifications|metrics" && exit 2)
	$(BIN)/python -m bench.$(NAME)_bench $(ARGS)

clean:
	rm -rf $(VENV) .stockmanager .pytest_cache .mypy_cache .ruff_cache
