# The README's two commands. Each sets up whatever is missing first: a virtual
# environment with netbed, then (through `netbed doctor --fix`) the Docker
# Engine, its daemon, Compose v2 and the host image.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test setup test-tools clean-venv

demo: setup
	@echo "netbed demo: the client's echoes below; captures land in ./captures/demo.pcap; Ctrl-C stops and removes it all"
	@trap 'true' INT TERM; docker compose up; docker compose down --timeout 2 --volumes

# Two workers for the suite; then, alone, the tests that stop the Docker Engine itself.
test: test-tools setup
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not engine_stop" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m engine_stop $(PYTEST_ARGS) || [ $$? -eq 5 ]

setup: $(BIN)/netbed
	$(BIN)/netbed doctor --fix

# Tools the test suite compares against (tshark), drives (Chromium) or compiles with (gcc, and Python's headers
# for netbed.tcp's C speedups, which the tests check against the pure-Python engine), from Debian's packages.
TEST_TOOLS := tshark:tshark chromium:chromium chromedriver:chromium-driver gcc:gcc python3-config:python3-dev
test-tools:
	@missing=""; for pair in $(TEST_TOOLS); do command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then echo "installing$$missing (Debian packages) for the tests"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi

$(BIN)/netbed: pyproject.toml setup.py src/netbed/tcp/_speedups.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

clean-venv:
	rm -rf $(VENV)
