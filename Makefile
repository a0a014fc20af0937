# The two commands that matter: `make up` (start everything) and `make test` (the whole suite).
# Each target creates or refreshes the local virtual environment when pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The extras are part of the stamp's name: a venv installed with other extras is refreshed.
EXTRAS := dev,embedded
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
# checkov pins packaging<24 (pytest needs >=24): its own environment, from the `checkov`
# dependency group in pyproject.toml (tests/deploy/test_checkov.py runs it).
CHECKOV_VENV := $(VENV)/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: up test lint fmt bench rehearsal clean lock image-pin

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

# Only the tests need checkov (a large install): `make up` does not wait for it.
$(CHECKOV_STAMP): pyproject.toml $(STAMP)
	@test -x $(CHECKOV_VENV)/bin/python || $(BIN)/python -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --group checkov
	@touch $(CHECKOV_STAMP)

up: $(STAMP)
	$(BIN)/stockmanager up $(ARGS)

test: $(STAMP) $(CHECKOV_STAMP)
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

# make bench NAME=sales [ARGS="--requests 2000"]   (products, sales, notifications, metrics, faults, webhooks, import)
# ARGS="--baseline REV" (sales, products): REV's stack too, from a cached git worktree + venv
# (bench/baseline.py, /tmp/stockmanager-baselines/<sha>), interleaved in the same run; ratios.
bench: $(STAMP)
	@test -n "$(NAME)" || (echo "usage: make bench NAME=products|sales|notifications|metrics|faults" && exit 2)
	$(BIN)/python -m bench.$(NAME)_bench $(ARGS)

# make rehearsal [ARGS=--quick]: a database host and two application hosts in network
# namespaces, one host killed mid-load and restarted (bench/rehearsal.py). Needs root + iproute2.
rehearsal: $(STAMP)
	$(BIN)/python -m bench.rehearsal $(ARGS)

# deploy/requirements.lock: the image's runtime dependencies (no extras) with sha256 hashes,
# wheels only, resolved for the image (CPython 3.11, x86_64 glibc). Run after changing
# `dependencies` in pyproject.toml (tests/deploy/test_lockfile.py fails until then).
lock: $(STAMP)
	$(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --only-binary :all: \
		--custom-compile-command "make lock" pyproject.toml -o deploy/requirements.lock

# Pin deploy/Dockerfile's base image by digest. Needs network access to the registry:
#   make image-pin                      (looks the digest up with docker buildx imagetools)
#   make image-pin DIGEST=sha256:<hex>  (a digest you looked up elsewhere)
PYTHON_BASE := python:3.11-slim
DOCKERFILE ?= deploy/Dockerfile
image-pin:
	@digest='$(DIGEST)'; \
	if [ -z "$$digest" ]; then \
		command -v docker >/dev/null || { echo "needs docker buildx (or DIGEST=sha256:...)" >&2; exit 2; }; \
		digest=$$(docker buildx imagetools inspect $(PYTHON_BASE) --format '{{json .Manifest.Digest}}') || exit 1; \
		digest=$$(echo "$$digest" | tr -d '"'); \
	fi; \
	echo "$$digest" | grep -Eqx 'sha256:[0-9a-f]{64}' || { echo "not a sha256 digest: '$$digest'" >&2; exit 2; }; \
	sed -i -E "s|^ARG PYTHON_IMAGE=.*|ARG PYTHON_IMAGE=$(PYTHON_BASE)@$$digest|" $(DOCKERFILE); \
	grep -n '^ARG PYTHON_IMAGE=' $(DOCKERFILE)

clean:
	rm -rf $(VENV) .stockmanager .pytest_cache .mypy_cache .ruff_cache
