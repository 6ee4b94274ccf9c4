"""What the judging tests share: the test programs (tests/programs) and a verdict checked and shown.

The `built` fixture (the programs compiled once per module) is in conftest.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from netbed.scenarios import Programs, find, runner
from netbed.scenarios.lab import Verdict

PROGRAMS_DIR = Path(__file__).resolve().parents[1] / "programs"
_spec = importlib.util.spec_from_file_location("netbed_test_programs", PROGRAMS_DIR / "build.py")
programs = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = programs  # dataclasses look their module up while the class is made
_spec.loader.exec_module(programs)
build, MOUNT, SERVERS, CLIENTS = programs.build, programs.MOUNT, programs.SERVERS, programs.CLIENTS


def said(result: runner.Result) -> str:
    """Everything the verdict shows: the reason not judged, and every check with what it observed."""
    checks = "\n".join(f"{'ok  ' if c.passed else 'FAIL'} {c.name}\n  expected: {c.expected}\n  observed: {c.observed}"
                       for c in result.checks)
    return f"{result.verdict}: {result.reason}\n{checks}"


def assert_verdict(result: runner.Result, verdict: Verdict, words: str | tuple[str, ...]) -> None:
    """The verdict, and its words where they show: the failed checks, the reason not judged, or anywhere."""
    assert result.verdict == verdict, said(result)
    if verdict == Verdict.FAILED:
        shown = "\n".join(f"{c.name} {c.observed}" for c in result.checks if not c.passed)
    elif verdict == Verdict.NOT_JUDGED:
        shown = result.reason
    else:
        shown = said(result)
    for each in (words,) if isinstance(words, str) else words:
        assert each in shown, said(result)


def run_case(scenario: str, server: str | None, client: str | None, built: Path, tmp_path: Path) -> runner.Result:
    """One scenario with the test programs named (SERVERS/CLIENTS keys; None: netbed's own)."""
    programs = Programs(server_cmd=SERVERS[server] if server else None,
                        client_cmd=CLIENTS[client] if client else None, mounts=(f"{built}:{MOUNT}",))
    return runner.run(find([scenario])[0], tmp_path, programs)
