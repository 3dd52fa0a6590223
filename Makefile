# `make test` and `make demo` set up everything on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test lint fuzz demo playground install registry git bench clean

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

install: $(BIN)/.installed

# The registry tests run the real CNCF distribution registry, Debian's docker-registry.
registry:
	@if ! command -v docker-registry >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing docker-registry with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null; \
	  else \
	    echo "WARNING: docker-registry is missing and cannot be installed here (needs root and apt-get):" \
	         "the registry tests will be skipped"; \
	  fi; \
	fi

# The git provider's tests also run Debian's git http-backend, git's own smart HTTP server.
git:
	@if ! command -v git >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing git with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq git >/dev/null; \
	  else \
	    echo "WARNING: git is missing and cannot be installed here (needs root and apt-get):" \
	         "the git http-backend tests will be skipped"; \
	  fi; \
	fi

# ruff and mypy (strict on revision_controller/ and providers/), configured in pyproject.toml.
lint: $(BIN)/.installed
	$(BIN)/ruff check revision_controller providers tests bench
	$(BIN)/mypy

# The suite runs in two processes (pytest-xdist), an idle one taking tests queued for the other.
# Then the checks of what every daemon of that run wrote and which API calls it made run in a
# pytest of their own, over what the run gathered into $REVISION_CONTROLLER_GATHERED; they run
# even when the first pytest failed, and `make test` fails if either did.
LAST := tests/e2e/test_secrets.py tests/e2e/test_rbac.py
test: $(BIN)/.installed lint registry git
	gathered=$$(mktemp -d) || exit 1; trap 'rm -rf "$$gathered"' EXIT; \
	export REVISION_CONTROLLER_GATHERED="$$gathered"; \
	$(BIN)/python -m pytest -n 2 --dist worksteal $(addprefix --ignore=,$(LAST)); status=$$?; \
	$(BIN)/python -m pytest $(LAST) || status=$$?; \
	exit $$status

# The fuzzing properties of tests/fuzz at 10,000 examples each, seeded afresh (`make test` runs
# 500 each from a fixed seed); prints each property's examples and unexpected errors.
fuzz: $(BIN)/.installed
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/fuzz -q -p no:cacheprovider --timeout 1800

# The daemon at 10,000 Functions on 1,000 GitHub repositories (1m interval), measured from
# outside, then the sweep from 1,000 Functions up that draws bench/scale.png, then 50 signed
# GitHub push webhooks and their receipt -> status patch latency.
# BENCH_ARGS="--functions 1000 --targets 100 --interval 20s" for a short run.
BENCH_ARGS ?=
SWEEP_ARGS ?= --interval 20s
WEBHOOK_ARGS ?=
bench: $(BIN)/.installed
	$(BIN)/python bench/scale.py $(BENCH_ARGS)
	$(BIN)/python bench/sweep.py --out bench/scale.png $(SWEEP_ARGS)
	$(BIN)/python bench/webhooks.py $(WEBHOOK_ARGS)

demo: $(BIN)/.installed
	$(BIN)/revision-controller demo

# `make demo`'s loop, then everything stays up to try by hand: kubectl, git push, image pushes
# (docker-registry and git are installed here as for `make test`). It prints what to type; Ctrl-C ends it.
playground: $(BIN)/.installed registry git
	$(BIN)/revision-controller demo --keep

clean:
	rm -rf $(VENV) build *.egg-info
