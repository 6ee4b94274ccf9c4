"""pytest plugin: a testbed per test, its capture, its programs, and what to look at when it fails.

    @pytest.mark.netbed(sysctls={"client": {"net.ipv4.tcp_retries2": 5}})
    def test_crash(testbed, program, capture):
        client = program("client", ["python3", "-m", "netbed.apps.echo_client", testbed.host("server").ip])
        ...

Fixtures: `testbed` (an isolated Compose project, torn down after the test,
also when it fails or is interrupted), `capture` (the analysed connections of
its capture so far), `program` (start a program on a host, driven line by
line), `faults` (the fault verbs bound to the testbed). Marker:
`netbed(compose=PATH, hosts=[...], sysctls={...}, services={...})`: PATH is
relative to the test file; flat sysctls are for every host of the file,
{"host": {...}} for one. Options: `--netbed-keep`, `--netbed-artifacts DIR`
(every test's capture and evidence, kept). On failure the report carries the
capture, a ladder of each connection, each program's output and end, the
hosts' sockets and processes, and their logs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from netbed import backend
from netbed import faults as fault_verbs
from netbed import observe
from netbed.backend import Backend, EngineError
from netbed.errors import NetbedError
from netbed.labels import kept_owner
from netbed.report.html import write_html
from netbed.report.load import ScenarioReport
from netbed.tcp import PcapError, analyze, render_ladder, render_ladder_svg

IDLE = ["sleep", "infinity"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netbed")
    group.addoption("--netbed-keep", action="store_true",
                    help="leave the testbed of a failed test up, and say how to get in and tear it down")
    group.addoption("--netbed-artifacts", metavar="DIR", default=None,
                    help="keep each test's run folder (capture, logs) under DIR (default: pytest's tmp_path)")
    group.addoption("--netbed-cluster", metavar="NAME", default=None,
                    help="bring every testbed up across the nodes of this cluster (`netbed cluster up N`)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "netbed(compose=None, hosts=None, sysctls=None, services=None, place=None): "
                                       "the testbed of this test (place: host -> node, with --netbed-cluster)")
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and threading.current_thread() is threading.main_thread():
        config.stash[_SIGTERM_BEFORE] = signal.signal(signal.SIGTERM, _sigterm_as_ctrl_c)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SIGTERM_BEFORE in config.stash:
        signal.signal(signal.SIGTERM, config.stash[_SIGTERM_BEFORE])


_SIGTERM_BEFORE = pytest.StashKey[Any]()


def _sigterm_as_ctrl_c(_signum: int, _frame) -> None:
    """SIGTERM (a CI job cancelled) ends the session as Ctrl-C does: testbeds are torn down, not left behind."""
    raise KeyboardInterrupt


@dataclass(frozen=True)
class Marked:
    """What a test's netbed marker asks for."""

    compose: Path | None
    services: dict[str, dict[str, Any]]   # per host
    every_host: dict[str, Any]            # for every host of the file, whatever its name
    hosts: list[str]                      # hosts the test needs
    place: dict[str, str]                 # host -> node, on a cluster


def _marked(marker: pytest.Mark | None, test_file: Path) -> Marked:
    """The marker's settings; a relative compose path is relative to the test file, as a reader expects."""
    kwargs = marker.kwargs if marker else {}
    services: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (kwargs.get("services") or {}).items()}
    sysctls = kwargs.get("sysctls") or {}
    every: dict[str, Any] = {}
    if sysctls and all(isinstance(v, dict) for v in sysctls.values()):
        for host, values in sysctls.items():
            services.setdefault(host, {}).setdefault("sysctls", {}).update({k: str(v) for k, v in values.items()})
    elif sysctls:
        every["sysctls"] = {k: str(v) for k, v in sysctls.items()}
    compose = kwargs.get("compose")
    return Marked(test_file.parent / compose if compose else None, services, every, list(kwargs.get("hosts") or []),
                  dict(kwargs.get("place") or {}))


@pytest.fixture
def testbed(request: pytest.FixtureRequest, tmp_path: Path):
    """A fresh, isolated testbed of the default topology (client host idle) or the marker's compose file."""
    marked = _marked(request.node.get_closest_marker("netbed"), Path(str(request.node.path)))
    compose, services, hosts = marked.compose, marked.services, marked.hosts
    if compose is None:
        services.setdefault("client", {}).setdefault("command", IDLE)
    root = request.config.getoption("--netbed-artifacts")
    run_dir = Path(root) / re.sub(r"[^\w.-]+", "_", request.node.nodeid) if root else tmp_path / "netbed"
    keep = request.config.getoption("--netbed-keep")
    try:
        # a testbed that may be kept outlives this process: `netbed clean` must not take it for a leftover
        bed = backend.up(compose, run_dir=run_dir, services=services, every_host=marked.every_host,
                         owner=kept_owner() if keep else None, cluster=request.config.getoption("--netbed-cluster"),
                         place=marked.place or None)
    except EngineError as exc:  # the engine, Compose, an image or a permission: its message names which
        if os.environ.get("CI") == "true":
            pytest.fail(f"netbed needs a working Docker Engine under CI=true: {exc}", pytrace=False)
        pytest.skip(f"netbed cannot make a testbed here: {exc}")
    missing = sorted(set(hosts or []) - set(bed.hosts))
    if missing:
        bed.down()
        pytest.fail(f"the compose file has no host {', '.join(missing)}", pytrace=False)
    request.node._netbed = bed
    request.node._netbed_programs = []
    yield bed
    failed = getattr(request.node, "_netbed_failed", False)
    if root:  # --netbed-artifacts: every test's evidence beside its capture, failed or not
        for title, text in evidence(bed, request.node._netbed_programs):
            (run_dir / (re.sub(r"[^\w.-]+", "_", title) + ".txt")).write_text(text + "\n")
    if failed and keep:
        print(f"\nnetbed: kept {bed.project} up: `{bed.enter_hint(next(iter(bed.hosts)))}`;"
              f" tear down with `netbed down -p {bed.project}`")
        return
    bed.down(hurry=getattr(request.node, "_netbed_interrupted", False))
    if root or failed:
        _write_page(bed, run_dir, request.node)


MAX_PAGE_CONNECTIONS = 20


def _write_page(bed: Backend, run_dir: Path, item: pytest.Item) -> None:
    """The test's own HTML page (as a scenario's): its outcome, the capture with netbed's notes, the ladders,
    the timeline, each program's output (linked from the failure report)."""
    passed, said, seconds = getattr(item, "_netbed_outcome", (True, "", 0.0))
    try:
        conns = analyze(str(bed.pcap), bed.names(), allow_truncated=True)
    except PcapError:
        conns = []
    if conns:
        (run_dir / "ladder.svg").write_text(render_ladder_svg(conns[0], title=item.name))
    for n, p in enumerate(getattr(item, "_netbed_programs", []), 1):
        (run_dir / f"program-{n}-{p.host}.log").write_text(p.transcript())
    data = {"scenario": item.name, "section": "test", "title": item.nodeid, "passed": passed,
            "verdict": "passed" if passed else "failed", "duration_s": round(seconds, 2), "doc": item.nodeid,
            "checks": [{"name": item.nodeid, "passed": passed, "expected": "the test passes",
                        "observed": said or ("passed" if passed else "failed")}],
            "connections": [str(c.client) for c in conns[:MAX_PAGE_CONNECTIONS]], "names": bed.names()}
    (run_dir / "report.json").write_text(json.dumps(data, indent=2))
    write_html([ScenarioReport(run_dir, data)], run_dir / "report.html", title=f"netbed: {item.nodeid}")


class Capture:
    """The testbed's capture, analysed on demand (it is a valid pcap at every moment)."""

    def __init__(self, bed: Backend) -> None:
        self.bed = bed

    @property
    def path(self) -> Path:
        return self.bed.pcap

    def connections(self):
        return analyze(str(self.bed.pcap), self.bed.names(), allow_truncated=True)

    def connection(self, client: str = "client", server: str = "server"):
        """The latest connection from host `client` to host `server`."""
        a, b = self.bed.host(client).ip, self.bed.host(server).ip
        found = [c for c in self.connections() if c.client.ip == a and c.server.ip == b]
        if not found:
            raise NetbedError(f"no connection from {client} to {server} in the capture yet")
        return found[-1]


@pytest.fixture
def capture(testbed: Backend) -> Capture:
    return Capture(testbed)


@pytest.fixture
def program(testbed: Backend, request: pytest.FixtureRequest):
    """Start a program on a host: program("client", ["python3", "-m", "netbed.apps.echo_client", ip])."""
    started: list[observe.Program] = request.node._netbed_programs

    def start(host: str, argv: list[str]) -> observe.Program:
        started.append(observe.Program(testbed, host, argv))
        return started[-1]

    yield start
    for p in started:
        p.stop()


@pytest.fixture
def faults(testbed: Backend) -> fault_verbs.Bound:
    """Every registered fault, bound to the test's testbed: faults.crash("server")."""
    return fault_verbs.Bound(testbed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    bed = getattr(item, "_netbed", None)
    if bed is not None and call.excinfo is not None and call.excinfo.errisinstance(KeyboardInterrupt):
        setattr(item, "_netbed_interrupted", True)  # Ctrl-C or SIGTERM: its testbed goes down in a hurry
    if bed is None or report.when != "call":
        return
    if not report.failed:
        setattr(item, "_netbed_outcome", (True, "", report.duration))
        return
    setattr(item, "_netbed_failed", True)
    crash = getattr(report.longrepr, "reprcrash", None)  # the assertion's own words, else the report's last line
    said = crash.message if crash else (str(report.longrepr).strip().splitlines() or [""])[-1]
    setattr(item, "_netbed_outcome", (False, said[:2000], report.duration))
    for title, text in evidence(bed, getattr(item, "_netbed_programs", [])):
        report.sections.append((f"netbed: {title}", text))
    report.sections.append(("netbed: page", f"{bed.run_dir / 'report.html'} (written once the testbed is down)"))


def evidence(bed: Backend, programs: list[observe.Program] = []) -> list[tuple[str, str]]:
    """What a person wants to see when a network test failed, gathered while the testbed is still up:
    the capture, its ladders, each program's output and end, each host's sockets, processes and log."""
    sections = [("capture", f"{bed.pcap}\n(open it in Wireshark, or `netbed ladder {bed.pcap}`)")]
    try:
        ladders = [render_ladder(c) for c in analyze(str(bed.pcap), bed.names(), allow_truncated=True)]
        sections.append(("ladder", "\n\n".join(ladders) or "no TCP connection was captured"))
    except PcapError as exc:
        sections.append(("ladder", str(exc)))
    for n, p in enumerate(programs, 1):
        ended = str(p.exit) if p.exit else "still running"
        sections.append((f"program {n} on {p.host}", f"$ {' '.join(p.argv)}\n{ended}\n--- stdout\n"
                         + "\n".join(p.stdout[-200:]) + "\n--- stderr\n" + "\n".join(p.stderr[-200:])))
    for name in sorted(bed.hosts):
        try:
            socks = "\n".join(f"{s.state:13} {s.local:22} {s.peer:22} pids={s.pids} {s.timer}"
                              for s in observe.sockets(bed, name))
            procs = "\n".join(f"{p.pid:6} {p.ppid:6} {p.stat:5} {p.command}" for p in observe.processes(bed, name))
            sections.append((f"{name} sockets and processes", f"{socks or 'no TCP sockets'}\n\n{procs}"))
        except NetbedError as exc:
            sections.append((f"{name} sockets and processes", str(exc)))
        try:
            sections.append((f"{name} log", bed.logs(name)[-4000:] or "(empty)"))
        except NetbedError as exc:
            sections.append((f"{name} log", str(exc)))
    return sections

