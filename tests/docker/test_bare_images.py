"""Hosts whose images hold nothing of netbed's: no Python, no ss, ps or kill; or one static binary alone.

netbed's tools run beside such a host, from the engine's machine in the host's namespaces: the program
driver, the socket and process views, kill and shutdown. (Where netbed is not root on the engine's
machine it falls back to running them in the host, which then needs them.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bare_images import empty, python_less, remove
from netbed.backend.compose import engine
from netbed.scenarios import Programs, find, runner

sys.path.insert(0, str(Path(__file__).parents[1] / "programs"))
from build import build  # noqa: E402

pytestmark = pytest.mark.skipif(not engine.runner_is_root_on_engine_host() and os.environ.get("CI") != "true",
                                reason="netbed's tools run beside a host only when netbed is root on the engine's "
                                       "machine (under CI=true these tests run, and fail, instead)")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    bins = build(tmp_path_factory.mktemp("mine"))
    tag = f"netbed-test-{os.getpid()}"
    made = (python_less(f"{tag}-bare:latest"), empty(f"{tag}-empty:latest", bins / "serv_fork_waitpid"))
    yield bins, made
    remove(*made)


@pytest.mark.parametrize("name", ["normal-termination", "server-process-killed"])
def test_a_scenario_on_a_python_less_image(name, images, tmp_path):
    bins, (bare, _) = images
    programs = Programs(server_cmd="/opt/mine/serv_fork_waitpid {port}", client_cmd="/opt/mine/cli_lines "
                        "{server_ip} {port}", mounts=(f"{bins}:/opt/mine:ro",), image=bare)
    result = runner.run(find([name])[0], tmp_path, programs)
    assert result.passed, [(c.name, c.observed) for c in result.checks if not c.passed] or result.reason
    assert "python3: not found" not in (tmp_path / name / "server.log").read_text()


USERS_COMPOSE = """
services:
  server:
    image: {empty}
    init: true
    command: ["/serv_fork_waitpid", "9877"]
  client:
    image: {bare}
    init: true
    command: ["sleep", "infinity"]
    volumes: ["{bins}:/opt/mine:ro"]
"""

USERS_TEST = """
import pytest


@pytest.mark.netbed(compose="compose.yaml", hosts=["server", "client"])
def test_my_server_dies_and_my_client_says_so(testbed, program, faults, capture):
    client = program("client", ["/opt/mine/cli_lines", testbed.host("server").ip, "9877"])
    client.send("hello")
    client.expect_output("^hello", timeout=10)
    faults.kill("server")
    client.send("anyone there?")
    assert client.wait(timeout=20).code == 1
    assert "server terminated prematurely" in client.stderr[-1]
    assert capture.connection("client", "server").close_kind.value in ("server-first", "half-closed-by-server")
"""


def test_a_users_test_with_a_server_on_an_empty_image_and_a_python_less_client(images, tmp_path):
    bins, (bare, only_binary) = images
    (tmp_path / "compose.yaml").write_text(USERS_COMPOSE.format(empty=only_binary, bare=bare, bins=bins))
    (tmp_path / "test_mine.py").write_text(USERS_TEST)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_mine.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]
