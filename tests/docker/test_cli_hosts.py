"""Per-host settings from `netbed up`, and `netbed exec` on a host, as a user types them."""

from __future__ import annotations

import subprocess
import sys
import uuid


def netbed(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netbed", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_up_with_sysctls_and_environment_then_exec(tmp_path, docker_engine):
    project = f"hosts-{uuid.uuid4().hex[:8]}"
    up = netbed("up", "-p", project, "--sysctl", "client:net.ipv4.tcp_retries2=5",
                "--sysctl", "net.ipv4.tcp_keepalive_time=77", "--env", "server:GREETING=hello there", cwd=tmp_path)
    try:
        assert up.returncode == 0, up.stderr
        sysctl = lambda host, key: netbed("exec", host, "-p", project, "--", "sysctl", "-n", key,  # noqa: E731
                                          cwd=tmp_path).stdout.strip()
        assert sysctl("client", "net.ipv4.tcp_retries2") == "5"
        assert sysctl("server", "net.ipv4.tcp_retries2") == "15", "only the host named"
        assert sysctl("client", "net.ipv4.tcp_keepalive_time") == sysctl("server", "net.ipv4.tcp_keepalive_time") \
            == "77", "every host"
        assert netbed("exec", "server", "-p", project, "--", "printenv", "GREETING", cwd=tmp_path).stdout \
            == "hello there\n"
        failing = netbed("exec", "client", "-p", project, "--", "sh", "-c", "echo out; echo err >&2; exit 3",
                         cwd=tmp_path)
        assert (failing.returncode, failing.stdout, failing.stderr) == (3, "out\n", "err\n")
    finally:
        netbed("down", "-p", project, cwd=tmp_path)


def test_a_setting_for_a_host_the_file_lacks_is_one_line(tmp_path, docker_engine):
    done = netbed("up", "--sysctl", "nosuch:net.ipv4.tcp_retries2=5", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("netbed: compose.yaml has no service nosuch"), done.stderr
    assert not (tmp_path / "runs").exists()
