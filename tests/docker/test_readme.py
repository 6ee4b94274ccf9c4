"""The README's examples run as written.

A block whose first line is a comment naming a path (`# tests/network/compose.yaml`) is a file of the
user's: it is written there, and a Python one among them is run with pytest from the folder above, as
the README's command line does. Other Python blocks run as they are.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "README.md"
BLOCKS = re.findall(r"```(python|yaml)\n(.*?)```", README.read_text(), re.S)
NAMED = re.compile(r"^# ([\w./-]+\.(?:py|yaml))\n")
FILES = {m.group(1): code for _, code in BLOCKS if (m := NAMED.match(code))}
SNIPPETS = [code for kind, code in BLOCKS if kind == "python" and not NAMED.match(code)]
TESTS = [path for path in FILES if path.endswith(".py")]


@pytest.mark.parametrize("test_file", TESTS)
def test_the_readmes_test_of_a_users_own_service_passes(test_file, tmp_path):
    for path, code in FILES.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(code)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file,
                           "--netbed-artifacts", "evidence"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-3000:]
    assert list((tmp_path / "evidence").rglob("*.pcapng")), "the evidence of every test is kept"


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_example_runs(index, tmp_path):
    code = SNIPPETS[index]
    if "def test_" in code:
        path = tmp_path / f"test_readme_{index}.py"
        path.write_text(code)
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)],
                              capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-3000:]
    else:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
