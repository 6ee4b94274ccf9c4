"""The README's Layout section is the code's layout: every path it names exists, every module is named."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
SRC = ROOT / "src" / "netbed"
README = (ROOT / "README.md").read_text()
LAYOUT = README[README.index("## Layout\n"):].split("\n## ", 1)[0]
ENTRIES = dict(re.findall(r"^    ((?:src|tests|bench|images)/[\w./]+)\s+(.*(?:\n {29}.*)*)", LAYOUT, re.M))


def test_every_path_the_layout_names_exists():
    assert len(ENTRIES) > 20, ENTRIES
    missing = [path for path in ENTRIES if not (ROOT / path).exists()]
    assert not missing, f"the README's Layout names paths that are not there: {missing}"


def test_every_module_and_package_is_in_the_layout():
    """A top-level module or package is an entry; a package's own modules are named in its entry."""
    unnamed = []
    for package in (SRC, SRC / "backend", SRC / "faults"):
        for path in sorted(package.iterdir()):
            if path.name in ("__init__.py", "__main__.py", "__pycache__", "images") or path.suffix == ".so":
                continue
            entry = f"{path.relative_to(ROOT)}{'/' if path.is_dir() else ''}"
            named = entry in ENTRIES or any(path.name in text for key, text in ENTRIES.items()
                                            if key.rstrip("/") == str(package.relative_to(ROOT)))
            if not named:
                unnamed.append(entry)
    assert not unnamed, f"not in the README's Layout: {unnamed}"


def test_the_faults_readme_example_is_the_module_the_tests_install():
    sys.path.insert(0, str(ROOT / "tests"))
    from faultplugin import MODULE

    shown = README[README.index("### Adding a fault"):].split("\n## ", 1)[0]
    code = "\n".join(line[4:] for line in shown.splitlines() if line.startswith("    ") or not line.strip())
    assert "@fault(\"blackhole\"" in code and code.strip().split("[project.entry-points")[0].strip() in MODULE
