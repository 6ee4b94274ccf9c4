"""Run folders: one per run, never shared, and none left by a run that produced nothing.

Two runs writing the same folder would mix their files and judge each other's
captures, so a run takes a folder of its own: `--out DIR` only if DIR is new
or empty, else `runs/<timestamp>` (with a suffix when two start in the same
second). The claim is a marker file made with O_EXCL, so of two runs started
at once on the same empty folder one is refused. A run that wrote no report
(it failed before any scenario ended) removes what it made, and only a run
with reports moves `runs/latest`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

from netbed.errors import NetbedError

MARKER = ".netbed-run"  # present while a run writes the folder
REPORT_GLOB = "*/report.json"


class RunFolderError(NetbedError):
    pass


def check_new_folder(path: str | Path) -> Path:
    """DIR for `--out`: new or empty, so that no two runs share it (the claim at start is the real test)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"{path} is a file: --out takes a folder of its own")
    if _writer_alive(path / MARKER):
        raise RunFolderError(f"another run is writing {path}: give each run its own --out")
    if path.is_dir() and any(path.iterdir()):
        raise RunFolderError(f"{path} already holds files (another run's?): give a new or empty folder, "
                             "or leave out --out for runs/<timestamp>")
    return path


@contextlib.contextmanager
def run_folder(out: str | Path | None = None, root: str | Path = "runs", reports: str = REPORT_GLOB) -> Iterator[Path]:
    """Claim a folder for one run; at the end, release it, and either link it as ROOT/latest
    (default folders with at least one report, found by the glob `reports`) or remove what the run made."""
    root = Path(root)
    if out is not None:
        path = Path(out)
        made = missing_top(path)
        check_new_folder(path)
        path.mkdir(parents=True, exist_ok=True)
    else:
        made = missing_top(root)
        path = _new_timestamp_folder(root)
        made = made or path
    marker = path / MARKER
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise RunFolderError(f"another run is writing {path}: give each run its own --out") from None
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()}\n")
    try:
        yield path
    finally:
        marker.unlink(missing_ok=True)
        if any(path.glob(reports)):
            if out is None:
                _link_latest(root, path)
        else:
            remove_made(path, made)


def _writer_alive(marker: Path) -> bool:
    """Whether the run that claimed a folder is still running (a killed run's marker stays behind)."""
    try:
        pid = int(marker.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return marker.exists()
    return Path(f"/proc/{pid}").exists()


def _new_timestamp_folder(root: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = root / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunFolderError(f"no free folder for {stamp} in {root}")


def _link_latest(root: Path, path: Path) -> None:
    latest = root / "latest"
    if latest.is_symlink() or not latest.exists():
        tmp = root / f".latest-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(path.name)
        tmp.replace(latest)  # atomic: runs/latest always names a whole run


def missing_top(path: str | Path) -> Path | None:
    """The outermost folder of `path` that does not exist yet (what making it would create)."""
    path = Path(path).absolute()
    top = None
    while not path.exists():
        top, path = path, path.parent
    return top


def remove_made(path: Path, made: Path | None) -> None:
    """Remove what this run made: its folder's contents, and the folders it created (empty ones only above)."""
    if made is None:  # the folder was there and empty: only its contents are this run's
        for child in path.iterdir():
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
        return
    shutil.rmtree(path, ignore_errors=True)
    here = path.absolute().parent
    while here != made.parent and here.is_relative_to(made):
        with contextlib.suppress(OSError):  # another run's folder may have appeared: leave it
            here.rmdir()
        here = here.parent
