"""Grading a class: the catalogue run against a folder of submissions, one verdict per submission and scenario.

SUBMISSIONS/NAME/ is one student's work. netbed looks in it for

    server   server.py   server.c     the server: run as `server PORT`
    client   client.py   client.c     the client: run as `client SERVER_IP PORT`
    netbed.json                       optional: {"server": "...", "client": "..."}, commands with
                                      {port} and {server_ip}, paths relative to the submission

An executable is run as it is, a .py file with python3, and a .c file is
compiled first (static, with the machine's cc) into the grading folder, never
into the submission. The submission's folder is mounted read-only into the
hosts. A submission netbed cannot run (nothing to run, a C file that does not
compile) is not judged in every scenario, with the reason; it never stops the
others.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from netbed.errors import NetbedError
from netbed.progress import Event, Phase, Reporter, silent
from netbed.scenarios.catalogue import Scenario
from netbed.scenarios.lab import Verdict
from netbed.scenarios.programs import PORT, Programs
from netbed.scenarios import runner

MOUNT = "/opt/submission"
ROLE_ARGS = {"server": "{port}", "client": "{server_ip} {port}"}


class GradeError(NetbedError):
    pass


@dataclass(frozen=True)
class Submission:
    """One student's programs: the commands to run them, or why they cannot be run."""

    name: str
    folder: Path
    commands: dict[str, str] = field(default_factory=dict)  # role -> command template, paths under MOUNT
    sources: dict[str, Path] = field(default_factory=dict)   # role -> a C file to build first
    problem: str = ""


@dataclass(frozen=True)
class Cell:
    """One submission in one scenario."""

    verdict: Verdict
    reason: str = ""    # why it failed (the first failed check) or was not judged
    folder: str = ""    # the scenario's run folder, with its evidence


@dataclass(frozen=True)
class Row:
    submission: str
    cells: dict[str, Cell]

    def count(self, verdict: Verdict) -> int:
        return sum(c.verdict == verdict for c in self.cells.values())


def find_submissions(folder: str | Path) -> list[Submission]:
    """Every submission in the folder (its subfolders, in name order); an empty folder is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GradeError(f"{folder} is not a folder: give the folder that holds one subfolder per submission")
    subs = [_read(path) for path in sorted(folder.iterdir()) if path.is_dir() and not path.name.startswith(".")]
    if not subs:
        raise GradeError(f"{folder} holds no submissions: put each one in a subfolder of its own "
                         "(with server, server.py or server.c, and/or client, client.py or client.c)")
    return subs


def _read(path: Path) -> Submission:
    name = path.name
    manifest = path / "netbed.json"
    if manifest.is_file():
        try:
            given = json.loads(manifest.read_text())
            if not isinstance(given, dict) or not set(given) <= set(ROLE_ARGS) or not all(
                    isinstance(v, str) and v.strip() for v in given.values()):
                raise ValueError("want {\"server\": \"COMMAND\", \"client\": \"COMMAND\"}")
        except ValueError as exc:
            return Submission(name, path, problem=f"netbed.json: {exc}")
        return Submission(name, path, {role: _under_mount(cmd) for role, cmd in given.items()})
    commands, sources = {}, {}
    for role, args in ROLE_ARGS.items():
        exe, script, source = path / role, path / f"{role}.py", path / f"{role}.c"
        if exe.is_file() and os.access(exe, os.X_OK):
            commands[role] = f"{MOUNT}/{role} {args}"
        elif script.is_file():
            commands[role] = f"python3 {MOUNT}/{role}.py {args}"
        elif source.is_file():
            commands[role] = f"{MOUNT}/{role} {args}"
            sources[role] = source
    if not commands:
        return Submission(name, path, problem="nothing to run: no server, server.py, server.c, client, client.py "
                                              "or client.c in it")
    return Submission(name, path, commands, sources)


def _under_mount(command: str) -> str:
    """A manifest's relative program path (./server, bin/server) as the hosts see it."""
    first, _, rest = command.strip().partition(" ")
    if not first.startswith("/") and ("/" in first or first.startswith(".")):
        first = f"{MOUNT}/{first.removeprefix('./')}"
    return f"{first} {rest}".strip()


def prepare(sub: Submission, build_root: Path) -> tuple[Submission, Path]:
    """The folder to mount for a submission: its own, or a copy with its C files built (never built in place)."""
    if sub.problem or not sub.sources:
        return sub, sub.folder
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return Submission(sub.name, sub.folder, problem="its programs are C sources and this machine has no C "
                                                        "compiler: install gcc, or submit them built"), sub.folder
    built = build_root / sub.name
    shutil.copytree(sub.folder, built, dirs_exist_ok=True)
    for role, source in sub.sources.items():
        done = subprocess.run([cc, "-O2", "-static", "-o", str(built / role), str(source)], capture_output=True,
                              text=True, timeout=120)
        if done.returncode != 0:
            first = next((line for line in done.stderr.splitlines() if "error" in line), done.stderr.strip()[:200])
            return Submission(sub.name, sub.folder, problem=f"{source.name} does not compile: {first}"), sub.folder
    return sub, built


def cell_of(result: runner.Result) -> Cell:
    """A scenario's result as a table cell: the verdict and, unless it passed, the first reason."""
    reason = result.reason
    if result.verdict == Verdict.FAILED:
        bad = next((c for c in result.checks if not c.passed), None)
        observed = bad.observed.strip().splitlines()[0] if bad and bad.observed.strip() else ""
        reason = result.vanished or (f"{bad.name}: {observed}" if bad else "no check ran")
    return Cell(result.verdict, reason, result.out_dir)


def grade(submissions: list[Submission], scenarios: list[Scenario], out_dir: Path, jobs: int = 1,
          image: str | None = None, port: int = PORT, report: Reporter = silent,
          cancel: threading.Event | None = None) -> list[Row]:
    """Run every scenario for every submission, `jobs` testbeds at a time; a row per submission.

    OUT/NAME/SCENARIO/ holds each run's evidence, as `netbed run` writes it.
    Once `cancel` is set nothing new starts; the table holds what finished.
    """
    cancel = cancel or threading.Event()
    out_dir.mkdir(parents=True, exist_ok=True)
    ready = [prepare(sub, out_dir / ".build") for sub in submissions]
    cells: dict[tuple[str, str], Cell] = {}
    work = []
    for sub, mounted in ready:
        for s in scenarios:
            if sub.problem:
                cells[(sub.name, s.name)] = Cell(Verdict.NOT_JUDGED, sub.problem)
            else:
                programs = Programs(sub.commands.get("server"), sub.commands.get("client"),
                                    (f"{mounted}:{MOUNT}:ro",), image, port)
                work.append((sub.name, s, programs))
    report(Event("grade", Phase.INFO, f"{len(submissions)} submission(s) x {len(scenarios)} scenario(s): "
                                      f"{len(work)} run(s), {jobs} at a time"))

    def one(name: str, s: Scenario, programs: Programs) -> None:
        if cancel.is_set():
            return
        result = runner.run(s, out_dir / name, programs, report=_prefixed(report, name), cancel=cancel)
        if result is not None and not result.interrupted:
            cells[(name, s.name)] = cell_of(result)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(one, *w) for w in work]
        try:
            for f in futures:
                f.result()
        except BaseException:
            cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return [Row(sub.name, {s.name: cells[(sub.name, s.name)] for s in scenarios if (sub.name, s.name) in cells})
            for sub, _ in ready]


def _prefixed(report: Reporter, name: str) -> Reporter:
    """Progress lines of many submissions at once, each named by its submission."""
    return lambda e: report(Event(f"{name}/{e.step}", e.phase, e.detail, e.seconds))
