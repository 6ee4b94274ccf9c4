"""netbed as a user gets it: a wheel installed into a fresh virtual environment, run from a folder of theirs.

No checkout is on the path: the default topology and the image's Dockerfile
come from the installed package.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bare_images import python_less, remove

REPO = Path(__file__).resolve().parents[2]

USER_COMPOSE = """\
# a user's own file: their echo service (socat, not netbed's) and a client host, on an image with no Python
services:
  echo:
    image: {image}
    init: true
    command: ["socat", "TCP-LISTEN:7000,reuseaddr,fork", "EXEC:cat"]
    networks: [lan]
  client:
    image: {image}
    init: true
    command: ["sleep", "infinity"]
    networks: [lan]
networks:
  lan: {{}}
"""

USER_TEST = """\
import pytest


@pytest.mark.netbed(compose="compose.yaml", hosts=["echo", "client"])
def test_my_echo_service_closes_first_when_it_dies(testbed, program, faults, capture):
    client = program("client", ["socat", "-", "TCP:" + testbed.host("echo").ip + ":7000"])
    client.send("hello")
    client.expect_output("hello", timeout=10)
    faults.kill("echo")
    assert client.wait(timeout=20) is not None   # socat ends when the service's end closes
    assert capture.connection("client", "echo").close_kind.value in ("server-first", "half-closed-by-server")
"""


@pytest.fixture(scope="module")
def python_less_image():
    """The user's image: no Python, ss, ps or kill in it (built offline from netbed's)."""
    tag = python_less(f"netbed-test-{os.getpid()}-user:latest")
    yield tag
    remove(tag)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with netbed from its wheel (and pytest, as a user's CI would add)."""
    root = tmp_path_factory.mktemp("installed")
    # built from a copy: setuptools builds in the tree's own build/, which another run of the suite (the
    # second engine's, beside this one) may be using at the same moment
    source = root / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "runs", "test-artefacts", "*.egg-info", "__pycache__", "*.so"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(root / "dist"),
                    str(source)], check=True, capture_output=True, cwd=root)
    wheel = next((root / "dist").glob("netbed-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    subprocess.run([str(root / "venv/bin/pip"), "install", "--quiet", str(wheel), "pytest"], check=True,
                   capture_output=True)
    return root / "venv" / "bin"


def _run(bin_dir: Path, argv: list[str], cwd: Path, timeout: float = 300,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}, **(env or {})}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_the_wheel_carries_no_checkout(installed, tmp_path):
    done = _run(installed, ["python", "-c", "import netbed, netbed.backend.compose.engine as e; print(netbed.__file__); "
                            "print(e.default_compose_file()); print(len(e.build_context()))"], tmp_path)
    module, compose, files = done.stdout.split()
    assert "site-packages" in module and str(REPO) not in module + compose, done.stdout
    assert int(files) > 20


def test_doctor_json_from_any_folder(installed, tmp_path):
    done = _run(installed, ["netbed", "doctor", "--json"], tmp_path)
    findings = {f["name"]: f for f in json.loads(done.stdout)}
    assert findings["image netbed-host:latest"]["ok"], findings
    assert done.returncode == 0, done.stderr


def test_a_scenario_from_any_folder(installed, tmp_path):
    done = _run(installed, ["netbed", "run", "normal-termination", "--out", str(tmp_path / "run")], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((tmp_path / "run" / "normal-termination" / "report.json").read_text())["passed"]


def test_a_users_pytest_test_on_their_own_compose_file_and_a_python_less_image(installed, python_less_image,
                                                                              tmp_path):
    (tmp_path / "compose.yaml").write_text(USER_COMPOSE.format(image=python_less_image))
    (tmp_path / "test_mine.py").write_text(USER_TEST)
    done = _run(installed, ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_mine.py"], tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout


WORKFLOW = REPO / "docs" / "ci" / "github-actions.yml"
NO_REGISTRY_HERE = {"pip install netbed pytest": "the fixture installed netbed's wheel and pytest",
                    "docker pull debian:bookworm-slim": "no registry here: the base is already on the engine"}


def test_the_documented_ci_workflow_runs_step_by_step(installed, python_less_image, tmp_path):
    """docs/ci/github-actions.yml's `run:` steps, in order, as a user's CI runs them (CI=true)."""
    steps = re.findall(r"^\s*- run: (.+)$", WORKFLOW.read_text(), re.M)
    assert steps[:2] == list(NO_REGISTRY_HERE), steps
    (tmp_path / "tests" / "network").mkdir(parents=True)
    (tmp_path / "tests" / "network" / "compose.yaml").write_text(USER_COMPOSE.format(image=python_less_image))
    (tmp_path / "tests" / "network" / "test_mine.py").write_text(USER_TEST)
    ran = []
    for step in steps[2:]:
        done = _run(installed, shlex.split(step), tmp_path, env={"CI": "true"})
        assert done.returncode == 0, f"{step}: {done.stdout[-3000:]} {done.stderr[-2000:]}"
        ran.append(step)
    assert ran == ["netbed doctor --fix", "python -m pytest -q tests/network --netbed-artifacts evidence"]
    evidence = list((tmp_path / "evidence").rglob("*.pcapng"))
    assert evidence, "the workflow's evidence folder holds each test's capture"
