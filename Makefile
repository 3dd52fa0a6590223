# `make test` and `make demo` set up everything on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test demo install registry clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
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

test: $(BIN)/.installed registry
	$(BIN)/python -m pytest

demo: $(BIN)/.installed
	$(BIN)/revision-controller demo

clean:
	rm -rf $(VENV) build *.egg-info
