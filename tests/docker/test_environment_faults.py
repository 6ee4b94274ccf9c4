"""Faults of the environment: each answered with one line, and nothing left half made."""

from __future__ import annotations

import os
import subprocess
import sys

from netbed.backend.compose.testbed import LABEL_RUN_DIR


def netbed(*args: str, env: dict[str, str] | None = None, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netbed", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def made_for(cli, run_dir) -> list[str]:
    """What the engine holds for this run folder: another test's testbed, up at the same time, is not counted."""
    label = {"label": f"{LABEL_RUN_DIR}={run_dir.resolve()}"}
    return ([f"container {c.name}" for c in cli.containers.list(all=True, filters=label)]
            + [f"network {n.name}" for n in cli.networks.list(filters=label)])


def assert_one_line(done, status: int, message: str) -> None:
    """The error is the last line on stderr (progress lines may come before it), and no traceback."""
    assert done.returncode == status, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("netbed: ") and message in last, done.stderr
    assert "Traceback" not in done.stderr


def test_an_invalid_compose_file(tmp_path, docker_engine):
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  server: [this is not a service\n")
    done = netbed("up", "-f", str(bad), "--run-dir", str(tmp_path / "run"))
    assert_one_line(done, 1, "is not a valid compose file")
    assert made_for(docker_engine, tmp_path / "run") == []


def test_compose_v2_missing(tmp_path, docker_engine):
    empty = tmp_path / "docker-config"
    empty.mkdir()
    done = netbed("up", "--run-dir", str(tmp_path / "run"), env={"DOCKER_CONFIG": str(empty), "HOME": str(tmp_path)})
    assert_one_line(done, 1, "Compose v2 is missing")


def test_the_host_image_missing(tmp_path, docker_engine):
    done = netbed("up", "--run-dir", str(tmp_path / "run"), env={"NETBED_IMAGE": "netbed-no-such-image:latest"})
    assert_one_line(done, 1, "image netbed-no-such-image:latest is missing")


def test_a_compose_file_without_a_host_the_test_needs(tmp_path, docker_engine):
    other = tmp_path / "compose.yaml"
    other.write_text("services:\n  lonely:\n    image: netbed-host:latest\n    command: [sleep, infinity]\n"
                     "    networks: [n]\nnetworks:\n  n:\n    internal: true\n")
    test = tmp_path / "test_needs_server.py"
    test.write_text("import pytest\n\n"
                    f"@pytest.mark.netbed(compose={str(other)!r}, hosts=['server'])\n"
                    "def test_it(testbed):\n    pass\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 1 and "the compose file has no host server" in done.stdout, done.stdout[-2000:]


def test_disk_full_while_capturing_is_reported(tmp_path, docker_engine):
    """A run folder on a tiny filesystem: tcpdump dies of ENOSPC and the testbed says its capture is incomplete."""
    import shutil as sh

    from netbed.backend.compose.testbed import Testbed

    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], capture_output=True, text=True)
    assert mounted.returncode == 0, f"this test mounts a 64 KiB tmpfs (needs root): {mounted.stderr}"
    try:
        with Testbed.up(run_dir=small, services={"client": {"command": ["sleep", "infinity"]}}) as bed:
            loop = ("import socket\nfor i in range(300):\n"
                    f"    s = socket.create_connection(('{bed.host('server').ip}', 9877)); s.sendall(b'x' * 200 + b'\\n');"
                    " s.recv(300); s.close()\n")
            assert bed.exec("client", ["python3", "-c", loop]).exit_code == 0
        assert "is incomplete" in bed.capture_error and "full disk?" in bed.capture_error, bed.capture_error
    finally:
        subprocess.run(["umount", str(small)], check=False)
        sh.rmtree(small, ignore_errors=True)
