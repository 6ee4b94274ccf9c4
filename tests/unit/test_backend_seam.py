"""One seam between netbed and the engine: only the backend (and the engine's set-up) talk to Docker."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import netbed
from netbed.backend import Backend
from netbed.backend.compose import Testbed

SRC = Path(netbed.__file__).parent
BACKENDS = SRC / "backend"


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def in_a_backend(path: Path) -> bool:
    """Inside one backend's package (netbed/backend/NAME/), not the interface beside them."""
    return path.is_relative_to(BACKENDS) and path.parent != BACKENDS


def test_nothing_outside_a_backend_package_imports_docker():
    outside = [p for p in SRC.rglob("*.py") if not in_a_backend(p)]
    offenders = sorted(str(p.relative_to(SRC)) for p in outside if "docker" in imports(p))
    assert not offenders, f"these talk to Docker directly instead of through netbed.backend: {offenders}"
    names = {str(p.relative_to(SRC)) for p in outside}
    assert {"faults/registry.py", "observe.py", "cli.py", "pytest_plugin.py", "scenarios/runner.py",
            "backend/__init__.py"} <= names
    assert any("docker" in imports(p) for p in SRC.rglob("*.py") if in_a_backend(p))  # the check sees imports


def test_the_front_ends_load_no_engine_library():
    """Importing the CLI, the plugin and the catalogue loads neither docker-py nor a backend package."""
    code = ("import sys, netbed.cli, netbed.pytest_plugin, netbed.scenarios.runner, netbed.faults; "
            "print(sorted(m for m in sys.modules if m == 'docker' or m.startswith('netbed.backend.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_the_compose_testbed_is_a_backend():
    wanted = {name for name, _ in inspect.getmembers(Backend) if not name.startswith("_")}
    missing = sorted(name for name in wanted if not hasattr(Testbed, name)
                     and name not in Testbed.__dataclass_fields__)
    assert not missing, f"Testbed lacks {missing} of the Backend interface"
    assert "pause" in wanted and "launch" in wanted and "beside" in wanted


def test_nodes_are_given_as_endpoints_or_contexts_each_name_once():
    from netbed.backend import TestbedError, parse_nodes
    import pytest

    assert parse_nodes("unix:///a.sock, tcp://10.0.0.2:2376") == {"node1": "unix:///a.sock",
                                                                  "node2": "tcp://10.0.0.2:2376"}
    assert parse_nodes("left=ssh://me@a,right=unix:///b") == {"left": "ssh://me@a", "right": "unix:///b"}
    for bad in ("a=unix:///x,a=unix:///y", "=unix:///x", "x=", ""):
        with pytest.raises(TestbedError):
            parse_nodes(bad)
    with pytest.raises(TestbedError, match="nor a Docker context"):
        parse_nodes("no-such-context-here")
