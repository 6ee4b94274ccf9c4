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

# The suite on the machine's engine (Docker 20.10), and at the same time the Docker tests again on a second
# engine (Docker 26.1 from Debian 13, in a network namespace of its own: netbed.backend.compose.engines), each
# run with two workers and its own output (the second's is printed when both are done); then, alone, the tests
# that stop the Docker Engine itself, on each. The second engine is stopped, and its namespace removed, at the end.
# The cluster tests run on the first only: their engines are the nodes' (the node image's Docker), and the
# second engine's namespace has no way to Debian's mirror to build the node image.
ENGINE2      := 26.1
ENGINE2_HOST := unix:///run/netbed-docker26.sock
ENGINES      := $(BIN)/python -m netbed.backend.compose.engines
ENGINE2_LOG  := .engine2-tests.log

test: test-tools setup
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	@trap '$(ENGINES) stop $(ENGINE2)' EXIT; trap 'exit 130' INT TERM; set -e; \
	$(ENGINES) start $(ENGINE2); \
	DOCKER_HOST=$(ENGINE2_HOST) $(BIN)/netbed doctor --fix; \
	set +e; echo "netbed: the Docker tests on Docker $(ENGINE2) run beside these; their output follows at the end"; \
	DOCKER_HOST=$(ENGINE2_HOST) $(BIN)/python -m pytest tests/docker -n 2 -m "not engine_stop and not cluster" $(PYTEST_ARGS) \
	  >$(ENGINE2_LOG) 2>&1 & second=$$!; \
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not engine_stop" $(PYTEST_ARGS); first=$$?; \
	wait $$second; second=$$?; echo "--- the Docker tests on Docker $(ENGINE2) ---"; cat $(ENGINE2_LOG); \
	$(BIN)/python -m pytest -m engine_stop $(PYTEST_ARGS); stop1=$$?; \
	DOCKER_HOST=$(ENGINE2_HOST) $(BIN)/python -m pytest tests/docker -m engine_stop $(PYTEST_ARGS); stop2=$$?; \
	for s in $$first $$second $$stop1 $$stop2; do [ $$s -eq 0 ] || [ $$s -eq 5 ] || exit 1; done

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
