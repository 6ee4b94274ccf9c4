"""Fixtures of the Docker tests (the engine itself is the session's: tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from judging import build


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The test programs (tests/programs), compiled and copied into one folder, mounted at /opt/mine in the hosts."""
    return build(tmp_path_factory.mktemp("mine"))
