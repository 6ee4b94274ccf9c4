"""One seam between netbed and the engine: only the backend (and the engine's set-up) talk to Docker."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import netbed
from netbed.backend import Backend
from netbed.testbed import Testbed

SRC = Path(netbed.__file__).parent
ENGINE_SIDE = {"testbed.py", "engine.py", "capture.py", "cli.py"}  # the backend, the engine's set-up, the CLI's doctor


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_nothing_above_the_backend_imports_docker():
    above = [p for p in SRC.rglob("*.py") if p.name not in ENGINE_SIDE or p.parent != SRC]
    offenders = sorted(str(p.relative_to(SRC)) for p in above if "docker" in imports(p))
    assert not offenders, f"these talk to Docker directly instead of through netbed.backend: {offenders}"
    assert {"faults.py", "observe.py"} <= {p.name for p in above}


def test_the_compose_testbed_is_a_backend():
    wanted = {name for name, _ in inspect.getmembers(Backend) if not name.startswith("_")}
    missing = sorted(name for name in wanted if not hasattr(Testbed, name)
                     and name not in Testbed.__dataclass_fields__)
    assert not missing, f"Testbed lacks {missing} of the Backend interface"
    assert "pause" in wanted and "launch" in wanted and "beside" in wanted
