"""Other testbeds coming and going never fail a command on this one."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest


CHURN = Path(__file__).with_name("churn.py")
ROUNDS = 12


def netbed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netbed", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def churn(tmp_path, docker_engine):
    """Another process making and removing netbed-looking containers on an internal network of its own."""
    name = f"netbed-churn-{uuid.uuid4().hex[:8]}"
    net = docker_engine.networks.create(name, internal=True)
    count = tmp_path / "churned"
    proc = subprocess.Popen([sys.executable, str(CHURN), name, str(tmp_path / "churn"), str(count)],
                            stderr=subprocess.PIPE, text=True)
    try:
        yield proc, count
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        for box in docker_engine.containers.list(all=True, sparse=True, filters={"network": name}):
            box.remove(force=True)
        net.remove()


def test_status_pause_down_and_clean_never_fail_while_other_testbeds_come_and_go(tmp_path, churn):
    proc, count = churn
    projects = [f"netbed-t{uuid.uuid4().hex[:8]}" for _ in range(3)]
    for p in projects:
        up = netbed("up", "-p", p, "--run-dir", str(tmp_path / p))
        assert up.returncode == 0, up.stderr
    main, *others = projects
    failures = []
    try:
        for i in range(ROUNDS):
            calls = [("status", "-p", main), ("pause", "server", "-p", main), ("unpause", "server", "-p", main),
                     ("clean", "--dry-run")]
            if i in (3, 7):
                calls.append(("down", "-p", others.pop()))
            for args in calls:
                done = netbed(*args)
                if done.returncode != 0 or "Traceback" in done.stderr:
                    failures.append(f"netbed {' '.join(args)}: {done.returncode} {done.stderr.strip()[-300:]}")
        down = netbed("down", "-p", main)
        if down.returncode != 0:
            failures.append(f"netbed down -p {main}: {down.stderr.strip()[-300:]}")
        assert proc.poll() is None, f"the churn went on throughout: {proc.stderr.read()}"
    finally:
        for p in projects:
            netbed("down", "-p", p)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    churned = int(count.read_text())
    assert churned >= 30, f"only {churned} containers came and went: not enough churn to prove anything"
    assert failures == [], f"{len(failures)} of {ROUNDS * 4 + 3} commands failed:\n" + "\n".join(failures)
