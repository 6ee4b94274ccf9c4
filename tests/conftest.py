"""Shared test policy: tests under tests/docker need a Docker Engine.

Under CI=true a missing engine FAILS those tests (CI must prove Docker works);
elsewhere they skip with a one-line reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netbed.backend.compose import engine
from netbed.errors import NetbedError

DOCKER_DIR = Path(__file__).parent / "docker"
ENGINE = pytest.StashKey[str]()


def engine_line() -> str:
    """Which engine the Docker tests run on, for the run's header and summary."""
    try:
        return f"engine: {engine.describe(engine.client(timeout=10).version(), engine.engine_host())}"
    except NetbedError as exc:
        return f"engine: none ({exc})"


def pytest_report_header(config):
    config.stash[ENGINE] = engine_line()
    return config.stash[ENGINE]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The engine again under the results: each of `make test`'s runs says which engine its figures are for."""
    if ENGINE not in config.stash:  # -q prints no header
        config.stash[ENGINE] = engine_line()
    terminalreporter.write_line(config.stash[ENGINE])


def pytest_collection_modifyitems(config, items):
    for item in items:
        if DOCKER_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.docker)
            item.fixturenames.insert(0, "docker_engine")


@pytest.fixture(scope="session")
def docker_engine():
    """The engine's client, or a failure (CI) / skip (elsewhere) that says why there is none."""
    try:
        cli = engine.client(timeout=60)
        if engine.image_state(cli) == "missing":
            raise NetbedError(f"image {engine.IMAGE} is missing: run `netbed doctor --fix`")
    except NetbedError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Docker is required under CI=true: {exc}", pytrace=False)
        pytest.skip(f"netbed cannot make a testbed here: {exc}")  # the message says what is missing
    return cli
