"""Running scenarios: a fresh testbed each, the verdict, and the run folder.

For each scenario, DIR/NAME/ gets capture.pcapng (netbed's notes in it), ladder.txt and ladder.svg of
the key connections, each host's log (with the output of every program run on it), and report.json with
the checks and the verdict: passed, failed, or not judged (and why).
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from netbed import backend, observe
from netbed.backend import Backend, EngineError
from netbed.errors import NetbedError
from netbed.labels import kept_owner
from netbed.progress import Event, Phase, Reporter, silent
from netbed.scenarios.catalogue import Scenario
from netbed.scenarios.lab import Check, Lab, Moment, NotJudged, Programs, Verdict
from netbed.scenarios.programs import Command, Mount
from netbed.tcp import PcapError, analyze, render_ladder, render_ladder_svg
from netbed.tcp.annotate import read_notes

LISTEN_DEADLINE = 10.0


@dataclass
class Result:
    scenario: str
    section: str
    title: str
    passed: bool
    duration_s: float
    settings: dict[str, Any]
    checks: list[Check]
    timeline: list[Moment] = field(default_factory=list)
    out_dir: str = ""
    project: str = ""
    doc: str = ""
    connections: list[str] = field(default_factory=list)  # the key connections' client ends, "ip:port"
    names: dict[str, str] = field(default_factory=dict)    # address -> host name
    interrupted: bool = False  # called off (SIGINT, SIGTERM) before its end; its testbed was torn down
    vanished: str = ""         # why its testbed went away under it (`netbed down -p` from outside), if it did
    verdict: Verdict = Verdict.FAILED
    reason: str = ""           # why the programs were not judged, when they were not

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": str(self.verdict)}


def verdict_of(checks: list[Check], not_judged: str, interrupted: bool) -> Verdict:
    """A failed check fails the run; otherwise a reason not to judge wins over the checks that passed."""
    if interrupted or any(not c.passed for c in checks):
        return Verdict.FAILED
    if not_judged:
        return Verdict.NOT_JUDGED
    return Verdict.PASSED if checks else Verdict.FAILED


def programs_for(scenario: Scenario, programs: Programs) -> tuple[Programs, str]:
    """The user's programs this scenario judges (netbed's own for the roles it does not take), and a note
    saying which of the user's it left out and why ('' when none)."""
    given = {role for role in ("server", "client") if getattr(programs, f"{role}_cmd")}
    dropped = sorted(given - set(scenario.takes))
    if not dropped:
        return programs, ""
    kept = {f"{role}_cmd": getattr(programs, f"{role}_cmd") if role in scenario.takes else None
            for role in ("server", "client")}
    return (Programs(**kept, mounts=programs.mounts, image=programs.image, port=programs.port),
            f"netbed's own {' and '.join(dropped)} here: {scenario.own}")


def server_argv(scenario: Scenario, programs: Programs) -> list[str]:
    """The scenario's server program: the user's, or netbed's with the scenario's switches."""
    command = programs.server_cmd
    if command:
        assert isinstance(command, Command), "Programs parses a command given as text"
        return command.argv(port=programs.port)
    return ["python3", "-m", f"netbed.apps.{scenario.server_program}", "--port", str(programs.port), *scenario.server]


def services_for(scenario: Scenario, programs: Programs) -> dict[str, dict[str, Any]]:
    """The compose settings of a scenario's hosts: both idle (the programs run on terminals), its sysctls."""
    services: dict[str, dict[str, Any]] = {
        "server": {"command": ["sleep", "infinity"]},
        "client": {"command": ["sleep", "infinity"]},
    }
    for host, sysctls in (("server", scenario.server_sysctls), ("client", scenario.client_sysctls)):
        if sysctls:
            services[host]["sysctls"] = {k: str(v) for k, v in sysctls.items()}
    volumes = []
    for m in programs.mounts:
        assert isinstance(m, Mount), "Programs parses a mount given as text"
        volumes.append(m.volume())
    for settings in services.values():
        if volumes:
            settings["volumes"] = list(volumes)
        if programs.image:
            settings["image"] = programs.image
    return services


def run(scenario: Scenario, out_root: Path, programs: Programs = Programs(), keep: bool = False,
        report: Reporter = silent, cancel: threading.Event | None = None, cluster: str | None = None) -> Result | None:
    """Run one scenario on a fresh testbed and write its folder; the Result says whether every check passed.

    Once `cancel` is set the scenario stops at its next step or wait, its
    testbed is torn down (also with `keep`) and the Result says it was
    interrupted; None if it was called off before its testbed was up. With `cluster`, the testbed spans
    that cluster's nodes: the server and the client on different nodes.
    """
    cancel = cancel or threading.Event()
    if cancel.is_set():
        return None
    out_dir = (out_root / scenario.name).resolve()
    started = time.monotonic()
    report(Event(scenario.name, Phase.START, f"{scenario.section} {scenario.title}"))
    refused = scenario.refuses({role for role in ("server", "client") if getattr(programs, f"{role}_cmd")})
    programs, own_note = programs_for(scenario, programs)
    settings = {"client_sysctls": scenario.client_sysctls, "server_sysctls": scenario.server_sysctls,
                "server": str(programs.server_cmd or " ".join([scenario.server_program, *scenario.server])),
                "client": str(programs.client_cmd or "echo_client"), "timers_s": scenario.timers_s,
                "own_programs": own_note}
    if refused:
        return _not_run(scenario, out_dir, settings, refused, report)
    try:
        bed = backend.up(run_dir=out_dir, services=services_for(scenario, programs),
                         owner=kept_owner() if keep else None, cancel=cancel, cluster=cluster)
    except NetbedError:
        if not cancel.is_set():
            raise
        report(Event(scenario.name, Phase.FAIL, "called off before its testbed was up"))
        return None
    lab = Lab(bed=bed, programs=programs, report=report, scenario=scenario.name, settings=settings, cancel=cancel)
    interrupted, vanished, not_judged = False, "", ""
    try:
        try:
            if _server_listens(lab, server_argv(scenario, programs)):
                scenario.run(lab)
        except NotJudged as exc:
            not_judged = str(exc)
            report(Event(scenario.name, Phase.INFO, f"not judged: {not_judged}"))
        except Exception as exc:
            if cancel.is_set():
                pass
            elif isinstance(exc, (NetbedError, AssertionError, StopIteration)):
                lab.check("the scenario runs to its end", False, "no error", _message(exc))
            elif not bed.vanished():  # the engine's own words are no verdict when that was the cause
                raise
        interrupted = cancel.is_set()  # what it saw after that may be Ctrl-C's doing (it reaches the programs too)
        if interrupted:
            lab.checks.append(Check("the scenario runs to its end", False, "no interruption",
                                    "interrupted (SIGINT or SIGTERM): its testbed was torn down"))
        else:
            vanished = bed.vanished()
            if vanished:
                lab.check("the testbed stays up to the end", False, "its hosts and capture up until the run ends",
                          vanished)
    finally:
        for program in lab.started:
            program.stop()
        _save_logs(bed, out_dir, lab)
        _save_hosts(bed, out_dir)
        if keep and not interrupted and not vanished:
            report(Event(scenario.name, Phase.INFO, f"kept up: `{bed.enter_hint('client')}`"
                                                     f"; tear down with `netbed down -p {bed.project}`"))
        elif not backend.answers():
            raise EngineError(f"the Docker Engine stopped answering during {scenario.name}: start it again "
                              "(`netbed doctor --fix`), then `netbed clean` removes what the run left")
        else:
            bed.down(hurry=interrupted)
            if bed.capture_error:
                lab.check("the capture recorded the whole run", False, "tcpdump running to the end", bed.capture_error)
    verdict = verdict_of(lab.checks, not_judged, interrupted)
    result = Result(scenario.name, scenario.section, scenario.title, verdict == Verdict.PASSED,
                    round(time.monotonic() - started, 2), settings, lab.checks, lab.timeline, str(out_dir), bed.project,
                    scenario.doc, [str(c.client) for c in lab.key_connections], bed.names(), interrupted, vanished,
                    verdict, not_judged if verdict == Verdict.NOT_JUDGED else "")
    _write_artifacts(result, bed, lab, out_dir)
    said = ("interrupted; its testbed is torn down" if interrupted else "passed" if result.passed
            else f"not judged: {not_judged}" if verdict == Verdict.NOT_JUDGED
            else vanished or f"{sum(not c.passed for c in lab.checks)} check(s) failed")
    report(Event(scenario.name, Phase.DONE if verdict != Verdict.FAILED else Phase.FAIL, said, result.duration_s))
    return result


def _not_run(scenario: Scenario, out_dir: Path, settings: dict[str, Any], reason: str, report: Reporter) -> Result:
    """A scenario none of whose roles can be the user's: not judged, with no testbed made."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result = Result(scenario.name, scenario.section, scenario.title, False, 0.0, settings, [], out_dir=str(out_dir),
                    doc=scenario.doc, verdict=Verdict.NOT_JUDGED, reason=reason)
    (out_dir / "report.json").write_text(json.dumps(result.to_json(), indent=2))
    report(Event(scenario.name, Phase.DONE, f"not judged: {reason}", 0.0))
    return result


def run_many(scenarios: list[Scenario], out_root: Path, jobs: int = 1, programs: Programs = Programs(),
             keep: bool = False, report: Reporter = silent, cancel: threading.Event | None = None,
             cluster: str | None = None) -> list[Result]:
    """Run scenarios, `jobs` at a time, each on its own testbed; results in the order given.

    Once `cancel` is set no further scenario starts and the running ones stop
    and tear down: the results are those that ran, to their end or interrupted.
    If one raises, the others are called off the same way, then it is raised.
    """
    cancel = cancel or threading.Event()
    out_root.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run, s, out_root, programs, keep, report, cancel, cluster) for s in scenarios]
        try:
            return [r for r in (f.result() for f in futures) if r is not None]
        except BaseException:
            cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _server_listens(lab: Lab, argv: list[str]) -> bool:
    """Before anything else: the server program is started and listening, or a verdict that says why not.

    A user's server that cannot start, exits at once or never listens is not
    judged (the scenario never ran); netbed's own failing so is a failure.
    """
    port = f":{lab.programs.port}"
    try:
        server = lab.start_server(argv)
    except NetbedError as exc:
        if lab.programs.server_cmd and not lab.cancel.is_set():
            raise NotJudged(f"the server program did not start: {exc}") from None
        raise

    def probe() -> str:
        if server.exit is not None:
            return "exited"
        socks = observe.sockets(lab.bed, "server")
        return "listening" if any(s.state == "LISTEN" and s.local.endswith(port) for s in socks) else "not yet"

    try:
        seen = observe.wait_for(probe, lambda s: s in ("listening", "exited"), timeout=LISTEN_DEADLINE,
                                what=f"the server to listen on port {lab.programs.port}", cancel=lab.cancel)
    except observe.WaitTimeout:
        seen = "never listened"
    if seen == "listening":
        return True
    last = ((server.stderr + server.stdout)[-1:] or ["(no output)"])[0]
    why = (f"the server program exited at once ({server.exit})" if seen == "exited"
           else f"the server program never listened on port {lab.programs.port} in {LISTEN_DEADLINE:g} s")
    if lab.programs.server_cmd:
        raise NotJudged(f"{why}; its last output: {last}")
    lab.check("the server program listens", False, f"a listening socket on port {lab.programs.port}",
              f"{why}; its last output: {last}")
    return False


def _save_logs(bed: Backend, out_dir: Path, lab: Lab) -> None:
    """Each host's log: the container's own output, then every program run on it, with how it ended."""
    for name in bed.hosts:
        parts = []
        try:
            parts.append(bed.logs(name))
        except NetbedError:
            pass
        for program in (p for p in lab.started if p.host == name):
            parts.append(program.transcript())
        (out_dir / f"{name}.log").write_text("\n".join(p for p in parts if p))


def _save_hosts(bed: Backend, out_dir: Path) -> None:
    """Each host's sockets and processes at the end of the run, for the report."""
    snapshots = {}
    for name in sorted(bed.hosts):
        try:
            socks = "\n".join(f"{s.state:13} {s.local:22} {s.peer:22} pids={','.join(map(str, s.pids)) or '-'} {s.timer}"
                              for s in observe.sockets(bed, name))
            procs = "\n".join(f"{p.pid:6} {p.ppid:6} {p.stat:5} {p.command}" for p in observe.processes(bed, name))
            snapshots[name] = f"{socks or 'no TCP sockets'}\n\n  PID   PPID STAT  COMMAND\n{procs}"
        except NetbedError as exc:
            snapshots[name] = str(exc)
    (out_dir / "hosts.json").write_text(json.dumps(snapshots, indent=2))


def _write_artifacts(result: Result, bed: Backend, lab: Lab, out_dir: Path) -> None:
    keys = {(c.client.ip, c.client.port) for c in lab.key_connections}
    try:
        conns = analyze(str(bed.pcap), bed.names(), allow_truncated=True)
    except PcapError:
        conns = []
    chosen = [c for c in conns if (c.client.ip, c.client.port) in keys] or [c for c in conns if c.server.name == "server"][:1]
    notes = read_notes(bed.pcap) if bed.pcap.exists() else []
    (out_dir / "ladder.txt").write_text("\n\n".join(render_ladder(c, events=notes) for c in chosen) + "\n")
    (out_dir / "ladder.svg").write_text(render_ladder_svg(chosen[0], title=f"{result.section} {result.scenario}")
                                        if chosen else "<svg xmlns='http://www.w3.org/2000/svg'/>")
    (out_dir / "report.json").write_text(json.dumps(result.to_json(), indent=2))


def _message(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 2000 else text[:2000] + " ..."
