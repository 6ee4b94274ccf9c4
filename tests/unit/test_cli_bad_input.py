"""Bad input and a missing engine: one clear line, a non-zero exit (2 for usage), no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def netbed(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netbed", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, status, message", [
    (["run", "no-such-scenario"], 2, "no scenario no-such-scenario"),
    (["run"], 2, "name the scenarios to run, or give --all"),
    (["run", "--all", "--jobs", "0"], 2, "--jobs"),
    (["clean", "--older-than", "soon"], 2, "not a duration"),
    (["impair", "client", "--loss", "150"], 2, "--loss"),
    (["up"], 1, "no Docker Engine answers"),
    (["crash", "server"], 1, "no Docker Engine answers"),
    (["run", "server-host-crash"], 1, "no Docker Engine answers"),
    (["report", "/nonexistent/run"], 1, "no run folder"),
    (["cluster", "up", "0"], 2, "0 is not in the range 1<=x<=9"),
    (["cluster", "up", "10"], 2, "10 is not in the range 1<=x<=9"),
    (["cluster", "up", "three"], 2, "'three' is not a valid integer"),
    (["cluster", "up", "3", "--name", "Bad_Name"], 2, "cluster name 'Bad_Name' is not valid"),
    (["cluster", "down", "--name", "-x"], 2, "cluster name '-x' is not valid"),
    (["cluster", "status", "--name", "a" * 31], 2, "is not valid"),
    (["doctor", "--cluster", "x y"], 2, "cluster name 'x y' is not valid"),
    (["doctor", "--cluster", "c", "--fix"], 2, "--fix and --cluster go separately"),
    (["cluster", "up", "3"], 1, "no Docker Engine answers"),
    (["cluster", "down"], 1, "no Docker Engine answers"),
    (["cluster", "status"], 1, "no Docker Engine answers"),
    (["cluster", "load-image", "--name", "x_"], 2, "cluster name 'x_' is not valid"),
])
def test_bad_input_gets_one_line(args, status, message, tmp_path):
    done = netbed(*args, env=NO_ENGINE)
    assert done.returncode == status, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    if status == 1:
        assert done.stderr.strip().count("\n") == 0 or "running" in done.stderr


def test_a_folder_that_is_not_a_run_is_named(tmp_path):
    done = netbed("report", str(tmp_path))
    assert done.returncode == 1 and "holds no scenario reports" in done.stderr
