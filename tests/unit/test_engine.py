"""The engine checks and the doctor command, without a Docker Engine."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from netbed import capture
from netbed.backend.compose import engine
from netbed.progress import Phase, step


def run_netbed(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netbed", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


def test_doctor_names_the_missing_engine_and_what_to_do():
    done = run_netbed("doctor", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    line = next(line for line in done.stdout.splitlines() if "Docker Engine" in line)
    assert "✗" in line and "netbed doctor --fix" in line


def test_usage_error_exits_2_without_traceback():
    done = run_netbed("no-such-verb")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "no-such-verb" in done.stderr


def test_tcpdump_closing_counts_are_read():
    logs = ("tcpdump: listening on nb1, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n"
            "15 packets captured\n16 packets received by filter\n1 packet dropped by kernel\n")
    assert capture.parse_stats(logs) == capture.CaptureStats(captured=15, received=16, dropped=1)
    assert capture.parse_stats("tcpdump: listening on nb1\n") is None


def test_image_digest_follows_the_build_context(tmp_path):
    package = tmp_path / "netbed"
    (package / "images").mkdir(parents=True)
    (package / "images" / "Dockerfile").write_text("FROM scratch\n")
    app = package / "app.py"
    app.write_text("print(1)\n")
    files = engine.build_context(package)
    assert [name for name, _ in files] == ["images/Dockerfile", "src/netbed/app.py"], "laid out as in a checkout"
    before = engine.context_digest(files)
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "app.pyc").write_bytes(b"junk")
    (package / "_speedups.so").write_bytes(b"compiled for the runner's Python, not the hosts'")
    (package / "_speedups.c").write_text("/* in a checkout, not in a wheel */")
    assert engine.context_digest(engine.build_context(package)) == before, "only Python files make the image"
    app.write_text("print(2)\n")
    assert engine.context_digest(engine.build_context(package)) != before


def test_a_package_without_its_dockerfile_says_so(tmp_path):
    with pytest.raises(engine.EngineError, match="reinstall netbed"):
        engine.build_context(tmp_path)


def test_step_reports_duration_skip_and_failure():
    events = []
    with step(events.append, "one"):
        pass
    with step(events.append, "two") as s:
        s.skip("already there")
    with pytest.raises(RuntimeError), step(events.append, "three"):
        raise RuntimeError("boom")
    phases = [(e.step, e.phase) for e in events]
    assert phases == [("one", Phase.START), ("one", Phase.DONE), ("two", Phase.START),
                      ("two", Phase.SKIP), ("three", Phase.START), ("three", Phase.FAIL)]
    assert events[3].detail == "already there" and events[5].detail == "boom"
    assert all(e.seconds is not None and e.seconds >= 0 for e in events if e.phase is not Phase.START)
