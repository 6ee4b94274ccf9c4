"""Host images with nothing of netbed's, built offline for the tests (no registry needed).

- `python_less(tag)`: netbed's host image with Python, ss, ps and kill taken out: a Debian with a shell
  and socat, as a company's own base might be;
- `empty(tag, binary)`: one static binary on an empty image (FROM scratch), its only file.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from netbed.backend.compose import engine

GONE = ("python3", "python3.11", "ss", "ps", "kill")


def _build(tag: str, dockerfile: str, files: dict[str, Path] | None = None) -> str:
    with tempfile.TemporaryDirectory(prefix="netbed-bare-") as ctx:
        (Path(ctx) / "Dockerfile").write_text(dockerfile)
        for name, source in (files or {}).items():
            shutil.copy(source, Path(ctx) / name)
        done = subprocess.run(["docker", "build", "-q", "--force-rm", "-t", tag, ctx], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return tag


def python_less(tag: str) -> str:
    paths = " ".join(f"/usr/bin/{g} /bin/{g} /usr/sbin/{g}" for g in GONE)
    checks = " && ".join(f"! command -v {g}" for g in GONE if g != "kill")  # kill: also the shell's builtin
    return _build(tag, f"FROM {engine.IMAGE}\nRUN rm -f {paths} && {checks}\n")


def empty(tag: str, binary: Path) -> str:
    return _build(tag, f"FROM scratch\nCOPY {binary.name} /{binary.name}\n", {binary.name: binary})


def remove(*tags: str) -> None:
    subprocess.run(["docker", "rmi", "-f", *tags], capture_output=True)
