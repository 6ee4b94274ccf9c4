"""A running testbed: one Compose project, its hosts, its bridge and its capture.

`Testbed.up()` gives every testbed its own project name, subnet and bridge,
labels all it creates as netbed's (project, owner, start time), starts the
capture before any host so the first SYN is recorded, and `down()` stops the
hosts before the capture so their last FINs are recorded, then removes it all.
A compose file may be the default topology or the user's own; netbed adds its
labels and settings through an override file, never by editing it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import docker
import docker.errors

from netbed import capture as recording
from netbed import spec
from netbed.backend import ExecResult, Host, Launch, Leftover, TestbedError
from netbed.backend import guard, namespaces
from netbed.backend.compose import capture as capture_mod
from netbed.backend.compose import engine
from netbed.labels import (CAPTURE, CLAIM, FAULT_HELPER, NOT_HOSTS, OWNER, OWNER_COMPOSE, PROJECT, ROLE, RUN_DIR, STARTED,
                           TARGET, owner_id)
from netbed.capture import Capture, CaptureStats
from netbed.errors import Cancelled, NetbedError
from netbed.folders import missing_top, remove_made
from netbed.progress import Reporter, silent, step
from netbed.tcp import PcapError
from netbed.tcp.annotate import Note

LABEL_PROJECT, LABEL_OWNER, LABEL_STARTED, LABEL_ROLE, LABEL_RUN_DIR, LABEL_TARGET = (PROJECT, OWNER, STARTED, ROLE,
                                                                                   RUN_DIR, TARGET)
STATE_FILE = "testbed.json"
NOTES_FILE = "notes.jsonl"  # what netbed did and saw, one JSON line each, for the capture's comments
DOWN_FILE = "testbed.down"  # written by down() before it stops anything
COMPOSE_PROJECT = "com.docker.compose.project"
SUBNET_TRIES = 8


def default_compose_file() -> Path:
    return engine.default_compose_file()


@dataclass
class Testbed:
    __test__ = False  # not a pytest test class, despite its name
    project: str
    compose_file: Path
    run_dir: Path
    env: dict[str, str]
    bridge: str
    hosts: dict[str, Host] = field(default_factory=dict)
    capture: Capture | None = None
    capture_stats: CaptureStats | None = None
    capture_error: str = ""  # why the recording is incomplete, if it is
    labels: dict[str, str] = field(default_factory=dict)
    _machine_ns: dict[str, str] = field(default_factory=dict, repr=False)  # per engine, by its docker command

    # --- life cycle ---------------------------------------------------------

    @classmethod
    def up(cls, compose_file: Path | str | None = None, project: str | None = None,
           run_dir: Path | str | None = None, services: dict[str, dict[str, Any]] | None = None,
           report: Reporter = silent, owner: str | None = None,
           cancel: threading.Event | None = None, every_host: dict[str, Any] | None = None) -> "Testbed":
        """Bring up a fresh, isolated testbed; on any failure remove what was made, then raise.

        `services` adds Compose settings per service (command, sysctls, environment, ...)
        through the override file, e.g. {"client": {"sysctls": {"net.ipv4.tcp_retries2": 5}}};
        `every_host` adds settings to every host of the file, whatever their names
        (a host's own settings win, key by key within sysctls and environment).
        `owner` labels who may tear it down: by default this process, so that
        `netbed clean` removes it once the process is gone, and its capture
        stops by itself then. The capture stops at NETBED_CAPTURE_MAX_PACKETS
        frames (1,000,000); `down()` then sets `capture_error` to say so. Once `cancel`
        is set it stops at its next step, removes what it made and raises Cancelled.
        """
        cli = engine.client()
        if not engine.has_image(cli, engine.IMAGE):
            raise engine.EngineError(f"image {engine.IMAGE} is missing (the capture and the hosts run it): "
                                     "run `netbed doctor --fix`")  # the engine's set-up, as a missing engine is
        compose_file = Path(compose_file or default_compose_file()).resolve()
        if not compose_file.is_file():
            raise TestbedError(f"no compose file at {compose_file}: give the path of a compose file")
        max_frames = recording.max_frames_from_env()
        named = project is not None
        project = spec.check_project_name(project) if project is not None else f"netbed-{uuid.uuid4().hex[:10]}"
        run_dir = Path(run_dir or Path.cwd() / "runs" / project).resolve()
        labels = {LABEL_PROJECT: project, LABEL_RUN_DIR: str(run_dir),
                  LABEL_OWNER: owner or owner_id(),
                  LABEL_STARTED: datetime.now(timezone.utc).isoformat(timespec="seconds")}
        _check_run_dir_free(cli, run_dir, project)
        if named:
            _claim(cli, project, labels)  # before anything is made: a second `up` of it changes nothing
        made = missing_top(run_dir)
        bed = cls(project=project, compose_file=compose_file, run_dir=run_dir, env={}, bridge="",
                  labels=labels)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            with step(report, f"testbed {project} up") as s:
                if every_host:
                    services = _for_every_host(services or {}, every_host, _host_services(bed._config()))
                bed._create(cli, services or {}, s, max_frames, owner is None, cancel or threading.Event())
                s.info(f"bridge {bed.bridge}, capture {bed.capture.path if bed.capture else '-'}")
        except BaseException:
            bed.down()
            if made is not None:  # a failed up leaves no folder behind
                remove_made(run_dir, made)
            raise
        return bed

    @classmethod
    def _attach_plain_compose(cls, cli: docker.DockerClient, compose_file: Path) -> "Testbed":
        """A project started with plain `docker compose up` of this file (the demo): faults work on it too."""
        projects = {c.labels[COMPOSE_PROJECT] for c in engine.containers(
            cli, f"com.docker.compose.project.config_files={compose_file}", running_only=True)
            if COMPOSE_PROJECT in c.labels}
        if len(projects) != 1:
            raise TestbedError(f"no testbed is up for {compose_file}: start one with `netbed up` (or `docker compose up`)"
                               if not projects else f"several projects run {compose_file.name}: choose one with -p")
        bed = cls(project=projects.pop(), compose_file=compose_file, run_dir=compose_file.parent / "captures",
                  env={}, bridge="", labels={LABEL_PROJECT: "", LABEL_OWNER: OWNER_COMPOSE})
        bed.bridge = bed._bridge_name(cli)
        model = bed._config()
        bed.hosts = bed._discover_hosts(cli, _host_services(model), model)
        return bed

    def _create(self, cli: docker.DockerClient, services: dict[str, dict[str, Any]], s, max_frames: int,
                lifeline: bool, cancel: threading.Event) -> None:
        self.bridge = "nb" + uuid.uuid5(uuid.NAMESPACE_DNS, self.project).hex[:10]
        self.env = {"NETBED_BRIDGE": self.bridge, "NETBED_CAPTURE_DIR": str(self.run_dir),
                    "NETBED_CAPTURE_FILE": "capture.pcap", "NETBED_IMAGE": engine.IMAGE}
        model = self._config()
        hosts = _host_services(model)
        external = {name for name, net in (model.get("networks") or {}).items() if (net or {}).get("external")}
        guard.check_services(model["services"], hosts, external)
        guard.check_services(services, hosts, external)
        for name in hosts:  # netbed never builds or pulls: a missing image is named, not fetched
            image = (services.get(name) or {}).get("image") or model["services"][name].get("image")
            if image and not engine.has_image(cli, image):
                raise TestbedError(f"image {image} of host {name} is not on the engine: build or load it first "
                                   "(netbed never pulls or builds for a testbed)")
        for attempt in range(SUBNET_TRIES):
            prefixes = free_prefixes(cli, spec.created_networks(model))
            self.env["NETBED_NET"] = next(iter(prefixes.values()), "10.98.0")
            self._write_override(model, hosts, services, prefixes)
            done = self._compose(["up", "--no-start", "--no-deps", "--no-build", "--pull", "never", *hosts],
                                 check=False)
            if done.returncode == 0:
                break
            if "overlap" not in done.stderr or attempt == SUBNET_TRIES - 1:
                self._compose(["down", "--volumes", "--remove-orphans"], check=False)
                raise TestbedError(f"could not create {self.project}: {_last_line(done.stderr)}")
            self._compose(["down", "--volumes", "--remove-orphans"], check=False)
        self.bridge = self._bridge_name(cli)
        s.info(f"capture on {self.bridge}")
        _go_on(cancel)
        self.capture = capture_mod.start(cli, self.bridge, self.run_dir / "capture.pcap", self.labels,
                                         max_frames=max_frames, overwrite=True, lifeline=lifeline)
        _go_on(cancel)
        self._compose(["up", "-d", "--no-deps", "--no-recreate", "--no-build", "--pull", "never", *hosts])
        self.hosts = self._discover_hosts(cli, hosts)
        for name in self.hosts:
            _go_on(cancel)
            self.isolate(name)
        (self.run_dir / STATE_FILE).write_text(json.dumps({
            "project": self.project, "compose_file": str(self.compose_file), "run_dir": str(self.run_dir),
            "env": self.env, "bridge": self.bridge, "labels": self.labels,
            "capture": {"container_id": self.capture.container_id, "path": str(self.capture.path),
                        "max_frames": self.capture.max_frames},
        }, indent=2))

    @classmethod
    def attach(cls, project: str | None = None, compose_file: Path | str | None = None) -> "Testbed":
        """The testbed `project`, or the one running the given compose file, made by an earlier `up`."""
        cli = engine.client()
        wanted_file = Path(compose_file or default_compose_file()).resolve()
        found: dict[str, dict[str, Any]] = {}
        up_now: set[str] = set()
        for container in engine.containers(cli, LABEL_RUN_DIR):
            name = container.labels.get(LABEL_PROJECT, "")
            up_now.add(name)
            if name in found or (project is not None and name != project):
                continue
            try:
                found[name] = json.loads((Path(container.labels[LABEL_RUN_DIR]) / STATE_FILE).read_text())
            except (OSError, ValueError):
                pass  # not written yet, or its run folder removed meanwhile: not a testbed to attach to
        if project is not None:
            if project in up_now and project not in found:  # its containers run, its state file is gone
                raise TestbedError(f"{project} is up but its run folder's state is gone (removed, or its `up` was "
                                   "cut short): `netbed clean --kept` removes it")
            if project not in found:
                known = ", ".join(sorted(up_now - {""})) or "none"
                raise TestbedError(f"no testbed {project!r} is up (testbeds up: {known})")
            state = found[project]
        else:
            mine = [st for st in found.values() if Path(st["compose_file"]) == wanted_file
                    and st["labels"].get(LABEL_OWNER, "").endswith(":cli")]  # not other programs' testbeds
            if not mine:
                return cls._attach_plain_compose(cli, wanted_file)
            if len(mine) > 1:
                raise TestbedError(f"several testbeds run {wanted_file.name}: choose one with -p "
                                   f"({', '.join(st['project'] for st in mine)})")
            state = mine[0]
        bed = cls(project=state["project"], compose_file=Path(state["compose_file"]),
                  run_dir=Path(state["run_dir"]), env=state["env"], bridge=state["bridge"],
                  labels=state["labels"],
                  capture=Capture(state["capture"]["container_id"], state["bridge"], Path(state["capture"]["path"]),
                                  state["capture"].get("max_frames", recording.MAX_FRAMES)))
        model = bed._config(with_override=True)
        bed.hosts = bed._discover_hosts(cli, _host_services(model), model)
        return bed

    def down(self, hurry: bool = False) -> None:
        """Stop the hosts, then the capture, then remove everything of this project. Never raises.

        With `hurry` (a run called off by Ctrl-C or SIGTERM) the hosts are not stopped in order first: the
        capture stops, then everything is removed at once (the hosts' last FINs are not recorded).
        """
        try:
            cli = engine.client()
        except NetbedError:
            return
        if self.labels.get(LABEL_PROJECT):  # a run using this testbed learns why its hosts stop
            try:
                (self.run_dir / DOWN_FILE).write_text(json.dumps({"project": self.project, "by": owner_id(),
                                                                  "at": datetime.now(timezone.utc).isoformat()}))
            except OSError:
                pass  # its run folder is gone: there is no run left to tell
        if self.hosts and not hurry:
            self._compose(["stop", "--timeout", "2"], check=False)
        if self.capture is not None:
            try:
                self.capture_stats = capture_mod.stop(cli, self.capture)
            except NetbedError as exc:
                self.capture_error = str(exc)
        self._compose(["down", "--volumes", "--remove-orphans", "--timeout", "0"], check=False)
        for container in engine.containers(cli, f"{LABEL_PROJECT}={self.project}"):
            engine.remove(cli, container.id)
        if self.capture is not None:
            try:
                recording.annotate_in_place(self.capture.path, self.notes())
            except (OSError, PcapError) as exc:
                self.capture_error = self.capture_error or f"could not write the notes into {self.capture.path}: {exc}"

    def vanished(self) -> str:
        """Why this testbed is no longer whole, or "" while it is: someone else tore it down.

        `down()` leaves a note in the run folder before it stops anything, so a
        run sees at once that its hosts stopped because of `netbed down -p`;
        without a note, a container gone or a stopped capture tells the same.
        """
        try:
            note = json.loads((self.run_dir / DOWN_FILE).read_text())
        except (OSError, ValueError):
            note = {}
        if note.get("project") == self.project:
            return (f"the testbed {self.project} was torn down from outside during the run "
                    f"(by process {note.get('by', '?')})")
        try:
            states = {c.id: c.status for c in engine.containers(engine.client(), f"{LABEL_PROJECT}={self.project}")}
        except NetbedError:
            return ""
        ids = [h.container_id for h in self.hosts.values()] + ([self.capture.container_id] if self.capture else [])
        if any(i not in states for i in ids) or (self.capture and states[self.capture.container_id] != "running"):
            return f"the testbed {self.project} disappeared during the run (its containers were stopped or removed)"
        return ""

    def __enter__(self) -> "Testbed":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.down()

    # --- what it is ---------------------------------------------------------

    def host(self, name: str) -> Host:
        try:
            return self.hosts[name]
        except KeyError:
            raise TestbedError(f"no host {name!r} in {self.project}: hosts are {', '.join(sorted(self.hosts))}") from None

    def names(self) -> dict[str, str]:
        """The address map for the analysis: IP -> host name."""
        return {h.ip: h.name for h in self.hosts.values()}

    @property
    def pcap(self) -> Path:
        """The capture: capture.pcap while the testbed is up, capture.pcapng (with netbed's notes) after `down`."""
        return recording.finished(self.run_dir / "capture.pcap")

    def note(self, text: str) -> None:
        """Record what netbed did or saw at this instant; `down` writes it into the capture as a comment.

        Any process may add to it (the CLI's verbs run in their own), so it is
        a file in the run folder, appended a line at a time.
        """
        if self.run_dir.is_dir():
            with open(self.run_dir / NOTES_FILE, "a") as notes:
                notes.write(json.dumps({"ts_ns": time.time_ns(), "text": text}) + "\n")

    def notes(self) -> list[Note]:
        try:
            lines = (self.run_dir / NOTES_FILE).read_text().splitlines()
        except OSError:
            return []
        return [Note(int(n["ts_ns"]), str(n["text"])) for n in map(_json_or_none, lines) if n]

    def container(self, host: str):
        """The host's container, fresh from the engine, to act on: refused if its namespaces are not its own."""
        container = self._container(host)
        guard.check_container(host, container.attrs, {h.container_id for h in self.hosts.values()})
        return container

    def _container(self, host: str):
        try:
            return self._engine(host).containers.get(self.host(host).container_id)
        except docker.errors.APIError as exc:
            raise self._refused(host, exc) from None

    def _refused(self, host: str, exc: docker.errors.APIError) -> TestbedError:
        """The engine's refusal as one line: mostly a host stopped or removed meanwhile (a teardown)."""
        if isinstance(exc, docker.errors.NotFound):
            return TestbedError(f"{host}'s container is gone; is the testbed {self.project} still up?")
        return TestbedError(f"{host}: {exc.explanation or exc}")

    def status(self, host: str) -> str:
        """'running', 'paused', 'exited', ... as the engine says."""
        return self._container(host).status

    def own(self, host: str) -> None:
        """Refuse a host whose namespaces are not its own (the machine's, a foreign container's): before any
        fault acts on it."""
        self.container(host)

    # --- the host verbs faults are made of (raw: the faults add their checks, waits and notes) ----------

    def pause(self, host: str) -> None:
        """Freeze every process of the host (the engine's pause: its cgroup's freezer)."""
        self._act(host, lambda c: c.pause())

    def unpause(self, host: str) -> None:
        self._act(host, lambda c: c.unpause())

    def signal(self, host: str, name: str = "SIGKILL") -> None:
        """Send a signal to the host's main process (its init); SIGKILL ends the host."""
        self._act(host, lambda c: c.kill(signal=name))

    def stop(self, host: str, timeout: float = 1) -> None:
        """Stop the host: SIGTERM to its init, SIGKILL after `timeout` seconds."""
        self._act(host, lambda c: c.stop(timeout=timeout))

    def start(self, host: str) -> None:
        """Start a stopped host again: a fresh kernel state, its command run anew."""
        self._act(host, lambda c: c.start())

    def address(self, host: str) -> tuple[str, str]:
        """The host's IP and MAC on its first network, as the engine has them now."""
        nets = self.container(host).attrs["NetworkSettings"]["Networks"] or {}
        now: dict[str, str] = next(iter(nets.values()), {})
        return now.get("IPAddress", ""), now.get("MacAddress", "")

    def has_netem(self) -> bool:
        """Whether the hosts' kernel has the netem qdisc (impair then uses it)."""
        return engine.kernel_has_netem(self._engine())

    def enter_hint(self, host: str) -> str:
        """How a person gets a shell on the host."""
        return " ".join([*self._docker_command(host), "exec", "-it", self.host(host).container_id[:12], "sh"])

    def companion(self, host: str, role: str, argv: list[str], cap_add: tuple[str, ...] = ("NET_ADMIN",)) -> str:
        """Start a helper of netbed's in the host's network namespace (netbed's image, only these
        capabilities), e.g. the delay shaper; returns its id."""
        container = self.container(host)
        try:
            helper = self._engine(host).containers.run(
                engine.IMAGE, argv, detach=True, network_mode=f"container:{container.id}", cap_drop=["ALL"],
                cap_add=list(cap_add), labels={**self.labels, LABEL_ROLE: role, LABEL_TARGET: host})
        except docker.errors.APIError as exc:
            raise self._refused(host, exc) from None
        return helper.id

    def companion_state(self, host: str, helper_id: str) -> tuple[str, str]:
        """A helper's status and its output so far."""
        try:
            helper = self._engine(host).containers.get(helper_id)
            return helper.status, helper.logs().decode(errors="replace")
        except docker.errors.NotFound:
            return "removed", ""

    def remove_companions(self, host: str, role: str) -> None:
        """Remove the host's helpers of that role (all of them: a fault may have left one)."""
        cli = self._engine(host)
        for helper in engine.containers(cli, f"{LABEL_PROJECT}={self.project}", f"{LABEL_ROLE}={role}",
                                        f"{LABEL_TARGET}={host}"):
            engine.remove(cli, helper.id)

    def record(self, path: Path, max_frames: int) -> Capture:
        """An extra recording of the testbed's bridge into the new file `path`, until stop_recordings()."""
        return capture_mod.start(engine.client(), self.bridge, path, {**self.labels, CAPTURE: "extra"},
                                 max_frames=max_frames)

    def stop_recordings(self) -> list[CaptureStats | None]:
        return capture_mod.stop_extra(engine.client(), self.project)

    # --- nodes: one engine has none; a testbed across a cluster's engines does (SwarmTestbed) -----------

    def nodes(self) -> dict[str, list[str]]:
        return {}

    def node_of(self, host: str) -> str:
        self.host(host)
        return ""

    def node_netns(self, node: str, argv: list[str]) -> tuple[int, str]:
        raise self._no_nodes()

    def pause_node(self, node: str) -> None:
        raise self._no_nodes()

    def unpause_node(self, node: str) -> None:
        raise self._no_nodes()

    def _no_nodes(self) -> TestbedError:
        return TestbedError(f"{self.project} runs on one engine: a node fault needs a testbed across a cluster "
                            "(`netbed up --cluster NAME`)")

    def _act(self, host: str, act: Callable[[Any], None]) -> None:
        container = self.container(host)
        try:
            act(container)
        except docker.errors.APIError as exc:
            raise self._refused(host, exc) from None

    def exec(self, host: str, argv: list[str]) -> ExecResult:
        """Run a command to completion in a host (an argument list, never a shell string)."""
        container = self.container(host)
        try:
            result = container.exec_run(argv, demux=True)
        except docker.errors.APIError as exc:  # it stopped since: 409 or 500 "... is not running"
            raise self._refused(host, exc) from None
        out, err = result.output
        return ExecResult(result.exit_code, (out or b"").decode(errors="replace"),
                          (err or b"").decode(errors="replace"))

    def beside(self, host: str, argv: list[str]) -> ExecResult:
        """Run one of netbed's tools (ss, ps, kill) on a host, to completion.

        From the engine's machine, in the host's namespaces, when netbed is
        root there (the host's image then needs none of them); else in the
        host itself, which must have them.
        """
        if not self._beside_from_machine():
            return self.exec(host, argv)
        container = self.container(host)
        pid = self._machine_pid(container)
        if not pid:
            raise TestbedError(f"{host} is not running ({container.status}): there is nothing to look into")
        code, out, err = namespaces.run_beside(host, pid, argv)
        return ExecResult(code, out, err)

    def launch(self, host: str, argv: list[str]) -> "Launch":
        """How to start a program on a host, on a terminal, driven from here (see observe.Program)."""
        container = self.container(host)
        if self._beside_from_machine():
            entry = namespaces.Entry.open(host, self._machine_pid(container))
            config = container.attrs["Config"]
            command = namespaces.program_command(entry, argv, config.get("Env") or [], config.get("WorkingDir") or "/")
            return Launch(command, tuple(entry.fds.values()), entry.close, namespaces.pid_in_host)
        return Launch([*self._docker_command(host), "exec", "-i", container.id, "python3", "-m", "netbed.apps.ptyrun", "--", *argv])

    def netns(self, host: str, argv: list[str]) -> tuple[int, str]:
        """Run a network command inside the host's namespace, with NET_ADMIN the host itself lacks.

        nsenter when the runner is root on the engine host (4 ms), else a
        short-lived helper container sharing the namespace (0.15 s; works on
        a paused host too). Returns the exit status and the output.
        """
        container = self.container(host)
        if self._beside_from_machine() and shutil.which(argv[0]):
            return _nsenter(host, self._machine_pid(container), argv)
        try:
            return netns_helper(self._engine(host), container.id, argv, self._machine_netns(host), self.labels, host)
        except docker.errors.APIError as exc:  # e.g. the host is not running: it has no namespace
            return 1, str(exc.explanation or exc)

    def _machine_netns(self, host: str) -> str:
        """The network namespace ("net:[N]") of the machine that runs the host's engine, as a helper on
        that machine's network reads it: never to be changed."""
        where = " ".join(self._docker_command(host))
        if where not in self._machine_ns:
            self._machine_ns[where] = machine_netns(self._engine(host), self.labels)
        return self._machine_ns[where]

    # --- where the hosts run: one engine here; a testbed across engines answers per host ------------

    def _engine(self, host: str | None = None) -> docker.DockerClient:
        """The engine that runs `host` (or the testbed's first engine)."""
        return engine.client()

    def _docker_command(self, host: str) -> list[str]:
        """The docker CLI aimed at the host's engine."""
        return ["docker"]

    def _beside_from_machine(self) -> bool:
        """Whether netbed's tools run from the engine's machine in the hosts' namespaces (root there)."""
        return engine.runner_is_root_on_engine_host()

    def _machine_pid(self, container: Any) -> int:
        """The host's init as this machine numbers it (0 when it is not running)."""
        return int(container.attrs["State"]["Pid"])

    def isolate(self, host: str) -> None:
        """Take away the default route Docker gives even on internal networks, and the bridge's own address.

        Then a host reaching for any address outside its testbed fails at once
        ("Network is unreachable", or "No route to host" for the bridge's
        address, which is the machine's), and nothing is sent onto the bridge.
        """
        for family in ("-4", "-6"):
            self.netns(host, ["ip", family, "route", "del", "default"])
        # read now: a host that was stopped when this testbed was attached had no gateways to record
        fresh = _gateways(self._container(host).attrs["NetworkSettings"]["Networks"] or {},
                          _ipam_gateways(engine.client(), self.project))
        for gateway in sorted(set(self.host(host).gateways) | set(fresh)):
            family = "-6" if ":" in gateway else "-4"
            self.netns(host, ["ip", family, "route", "replace", "unreachable", gateway])

    def logs(self, host: str) -> str:
        try:
            return self._container(host).logs().decode(errors="replace")
        except docker.errors.APIError as exc:  # 409 while a teardown removes it
            raise self._refused(host, exc) from None

    # --- Compose plumbing ---------------------------------------------------

    def _compose(self, args: list[str], check: bool = True):
        override = self.run_dir / "netbed.override.json"
        return engine.compose(args, project=self.project,
                              files=[self.compose_file] + ([override] if override.is_file() else []),
                              env=self.env, cwd=self.compose_file.parent, check=check)

    def _config(self, with_override: bool = False) -> dict[str, Any]:
        """The compose model of the file (with netbed's override, for a testbed that is up: its addresses)."""
        self.env.setdefault("NETBED_NET", "10.98.0")
        override = self.run_dir / "netbed.override.json"
        files = [self.compose_file] + ([override] if with_override and override.is_file() else [])
        done = engine.compose(["config", "--format", "json"], project=self.project,
                              files=files, env=self.env, cwd=self.compose_file.parent, check=False)
        if done.returncode != 0:
            raise TestbedError(f"{self.compose_file} is not a valid compose file: {_last_line(done.stderr)}")
        return json.loads(done.stdout)

    def _write_override(self, model: dict[str, Any], hosts: list[str], services: dict[str, dict[str, Any]],
                        prefixes: dict[str, str]) -> None:
        unknown = set(services) - set(hosts)
        if unknown:
            raise TestbedError(f"{self.compose_file.name} has no service {', '.join(sorted(unknown))}: "
                               f"its hosts are {', '.join(hosts)}")
        try:
            override = spec.override(model, hosts, services, self.labels, prefixes)
        except ValueError as exc:
            raise TestbedError(f"{self.compose_file.name}: {exc}") from None
        (self.run_dir / "netbed.override.json").write_text(json.dumps(override, indent=2))

    def _bridge_name(self, cli: docker.DockerClient) -> str:
        networks = cli.networks.list(filters={"label": f"{COMPOSE_PROJECT}={self.project}"})
        if not networks:
            raise TestbedError(f"{self.project} has no network: give its hosts a bridge network")
        net = networks[0]  # the list gives its options: no inspect of a network that may be going
        return (net.attrs.get("Options") or {}).get("com.docker.network.bridge.name") or f"br-{net.id[:12]}"

    def _discover_hosts(self, cli: docker.DockerClient, names: list[str],
                        model: dict[str, Any] | None = None) -> dict[str, Host]:
        """The hosts as the engine shows them; a stopped host has no address there, so its
        static one from the compose file stands in (or none, if it has none)."""
        hosts = {}
        ipam = _ipam_gateways(cli, self.project)
        for container in engine.containers(cli, f"{COMPOSE_PROJECT}={self.project}"):
            service = container.labels.get("com.docker.compose.service")
            if service not in names:
                continue
            nets = container.networks
            first = next(iter(nets.values()), {})
            ip, mac = first.get("IPAddress", ""), first.get("MacAddress", "")
            if not ip and model is not None:
                ip, mac = _static_address(model, service)
            hosts[service] = Host(service, container.id, ip, mac, _gateways(nets, ipam))
        return hosts


def machine_netns(cli: docker.DockerClient, labels: dict[str, str]) -> str:
    """The network namespace ("net:[N]") of the machine an engine runs on, as a helper on its network reads it."""
    return cli.containers.run(engine.IMAGE, ["readlink", "/proc/self/ns/net"], network_mode="host", cap_drop=["ALL"],
                              remove=True, labels={**labels, LABEL_ROLE: FAULT_HELPER}).decode().strip()


def netns_helper(cli: docker.DockerClient, container_id: str, argv: list[str], machine_ns: str,
                 labels: dict[str, str], what: str) -> tuple[int, str]:
    """A network command in a container's network namespace, from a short-lived helper sharing it (NET_ADMIN),
    refused if that namespace is the machine's own (`machine_ns`). Returns the exit status and the output."""
    try:
        output = cli.containers.run(engine.IMAGE, guard.in_own_namespace(argv, machine_ns),
                                    network_mode=f"container:{container_id}", cap_drop=["ALL"],
                                    cap_add=["NET_ADMIN", "NET_RAW"], remove=True, stderr=True,
                                    labels={**labels, LABEL_ROLE: FAULT_HELPER})
        return 0, output.decode(errors="replace")
    except docker.errors.ContainerError as exc:
        if exc.exit_status == guard.REFUSED_STATUS:
            raise guard.RefusedError(f"netbed will not change the network of {what}: its namespace is the "
                                     "machine's own") from None
        return exc.exit_status, (exc.stderr or b"").decode(errors="replace")


def _for_every_host(services: dict[str, dict[str, Any]], every: dict[str, Any],
                    hosts: list[str]) -> dict[str, dict[str, Any]]:
    """Per-host settings with `every` folded into each host; mappings (sysctls, environment) merge key by key."""
    if not every:
        return services
    merged = {name: dict(settings) for name, settings in services.items()}
    for host in hosts:
        own = merged.setdefault(host, {})
        for key, value in every.items():
            own[key] = {**value, **own[key]} if isinstance(value, dict) and isinstance(own.get(key), dict) \
                else own.get(key, value)
    return merged


def _json_or_none(line: str) -> dict[str, Any] | None:
    """A line of a file other processes append to: the last may be half-written."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) and "ts_ns" in value and "text" in value else None


def _gateways(nets: dict[str, Any], ipam: dict[str, tuple[str, ...]] | None = None) -> tuple[str, ...]:
    """The bridge's own addresses (the machine's side) of a container's networks: as its network settings
    show them, and as each network's IPAM configuration has them (`ipam`, by network id).

    On an internal network Docker 26 shows no gateway in a container's settings (it gives it no default
    route), yet the bridge still has its address, one hop away: only the network's configuration names it.
    """
    found = [gw for net in nets.values() for gw in (net.get("Gateway"), net.get("IPv6Gateway")) if gw]
    found += [gw for net in nets.values() for gw in (ipam or {}).get(net.get("NetworkID") or "", ())]
    return tuple(dict.fromkeys(found))


def _ipam_gateways(cli: docker.DockerClient, project: str) -> dict[str, tuple[str, ...]]:
    """The gateway addresses each network of a project is configured with (netbed's override pins .1), by id."""
    rows = cli.api.networks(filters={"label": f"{COMPOSE_PROJECT}={project}"})
    return {row["Id"]: tuple(conf["Gateway"] for conf in (row.get("IPAM") or {}).get("Config") or []
                             if conf.get("Gateway")) for row in rows}


def _nsenter(host: str, pid: int, argv: list[str]) -> tuple[int, str]:
    """Run `argv` in the network namespace of process `pid`, never the machine's own.

    The namespace is opened once, checked, and entered through that same
    descriptor, so a container that stops and a PID reused in between
    cannot redirect the command to the machine.
    """
    try:
        fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    except OSError:
        return 1, f"{host} has no network namespace (is it running?)"
    try:
        guard.check_namespace(os.fstat(fd).st_ino, guard.machine_netns_inodes(), host)
        done = subprocess.run(["nsenter", f"--net=/proc/self/fd/{fd}", *argv], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, pass_fds=(fd,))
        return done.returncode, done.stdout + done.stderr
    finally:
        os.close(fd)


def _static_address(model: dict[str, Any], service: str) -> tuple[str, str]:
    """The address and MAC the compose file gives a service, or empty strings."""
    svc = model["services"].get(service) or {}
    nets = svc.get("networks") or {}
    first = next(iter(nets.values()), None) if isinstance(nets, dict) else None
    first = first or {}
    return first.get("ipv4_address", ""), svc.get("mac_address") or first.get("mac_address", "")


def _check_run_dir_free(cli: docker.DockerClient, run_dir: Path, project: str) -> None:
    """A testbed's folder is its own: another testbed that is up there keeps its capture and state."""
    state = run_dir / STATE_FILE
    try:
        other = json.loads(state.read_text()).get("project", "")
    except (OSError, ValueError, AttributeError):
        return
    if other and other != project and cli.containers.list(all=True, sparse=True,
                                                          filters={"label": f"{LABEL_PROJECT}={other}"}):
        raise TestbedError(f"{run_dir} is the folder of testbed {other}, which is up: give this one another folder")


def _claim(cli: docker.DockerClient, project: str, labels: dict[str, str]) -> None:
    """Make `project` this process's, or refuse: the engine's unique container names are the lock.

    Of two `up -p X` at once only one can create the claim; the other is
    refused before it touches anything, so the winner is never harmed. A
    project made some other way (the demo, an older netbed) is seen by its labels.
    """
    already = (f"{project} is already up: tear it down first (`netbed down -p {project}`, or `netbed clean` "
               "if the run that made it was killed) or choose another -p")
    try:
        claim = cli.containers.create(engine.IMAGE, ["true"], name=f"netbed-claim-{project}", network_mode="none",
                                      labels={**labels, LABEL_ROLE: CLAIM})
    except docker.errors.APIError as exc:
        if exc.status_code == 409:
            raise TestbedError(already) from None
        raise TestbedError(f"could not claim the project name {project}: {exc.explanation or exc}") from None
    others = [c for key in (COMPOSE_PROJECT, LABEL_PROJECT)  # sparse: no inspect of a container that may vanish
              for c in cli.containers.list(all=True, sparse=True, filters={"label": f"{key}={project}"})
              if c.id != claim.id]
    if others or cli.networks.list(filters={"label": f"{COMPOSE_PROJECT}={project}"}):
        claim.remove(force=True)
        raise TestbedError(already)


def _host_services(model: dict[str, Any]) -> list[str]:
    return [name for name, svc in model["services"].items()
            if (svc.get("labels") or {}).get(LABEL_ROLE) not in NOT_HOSTS]


def free_prefix(cli: docker.DockerClient) -> str:
    """A /24 in 10.200.0.0-10.254.255.0 that no Docker network on this engine uses."""
    return free_prefixes(cli, ["net"])["net"]


def free_prefixes(cli: docker.DockerClient, networks: list[str]) -> dict[str, str]:
    """For each network, its own /24 in 10.200.0.0-10.254.255.0 that no Docker network on this engine uses.

    Two runs that pick the same one at the same moment are told apart by the
    engine itself (it refuses overlapping pools); the loser picks again.
    """
    used = set()
    for net in cli.networks.list():
        for conf in (net.attrs.get("IPAM") or {}).get("Config") or []:
            subnet = conf.get("Subnet", "")
            if subnet.startswith("10."):
                used.add(".".join(subnet.split("/")[0].split(".")[:3]))
    rng = random.SystemRandom()
    chosen: dict[str, str] = {}
    for name in networks:
        prefix = f"10.{rng.randint(200, 254)}.{rng.randint(0, 255)}"
        while prefix in used:
            prefix = f"10.{rng.randint(200, 254)}.{rng.randint(0, 255)}"
        used.add(prefix)
        chosen[name] = prefix
    return chosen


def _go_on(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise Cancelled("called off while the testbed came up")


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no output"])[-1]


# --- what runs left behind ---------------------------------------------------------------


def leftovers(older_than_s: float | None = None, owner: str | None = None, kept: bool = False) -> list[Leftover]:
    """netbed's containers, networks and volumes whose run is over.

    A run of this machine is over when its owner process is gone; while the
    owner lives its testbed is never a leftover, however old (the owner tears
    it down itself). A run of another machine, whose process cannot be asked,
    is over once it started more than `older_than_s` ago. Testbeds kept on
    purpose are listed only with `kept` (and, with `older_than_s`, only the
    older ones). With `owner`: exactly that owner's things. Anything without
    netbed's labels is never listed.
    """
    cli = engine.client()
    label = {"label": LABEL_PROJECT}
    found: list[Leftover] = []
    projects: dict[str, tuple[str, str]] = {}
    for container in engine.containers(cli, LABEL_PROJECT):
        lab = container.labels
        projects[lab[LABEL_PROJECT]] = (lab.get(LABEL_OWNER, ""), lab.get(LABEL_STARTED, ""))
        found.append(Leftover("container", container.name, lab[LABEL_PROJECT], *projects[lab[LABEL_PROJECT]]))
    for net in cli.networks.list(filters=label):
        lab = net.attrs.get("Labels") or {}
        projects.setdefault(lab[LABEL_PROJECT], (lab.get(LABEL_OWNER, ""), lab.get(LABEL_STARTED, "")))
        found.append(Leftover("network", net.name, lab[LABEL_PROJECT], *projects[lab[LABEL_PROJECT]]))
    for project, (own, started) in projects.items():
        for volume in cli.volumes.list(filters={"label": f"{COMPOSE_PROJECT}={project}"}):
            found.append(Leftover("volume", volume.name, project, own, started))
    return [item for item in found if _over(item, older_than_s, owner, kept)]


def clean(items: list[Leftover]) -> None:
    """Remove what `leftovers` listed: containers first, then networks and volumes."""
    cli = engine.client()
    order = {"container": 0, "network": 1, "volume": 2}
    for item in sorted(items, key=lambda i: order[i.kind]):
        try:
            if item.kind == "container":
                engine.remove(cli, item.name)
            elif item.kind == "network":
                cli.api.remove_network(item.name)
            else:
                cli.api.remove_volume(item.name, force=True)
        except docker.errors.NotFound:
            pass  # gone meanwhile: someone else removed it
        except docker.errors.APIError as exc:
            raise TestbedError(f"could not remove {item.kind} {item.name}: {exc.explanation or exc}") from None


def _over(item: Leftover, older_than_s: float | None, owner: str | None, kept: bool) -> bool:
    if owner is not None:
        return item.owner == owner
    if item.kept:
        return kept and (older_than_s is None or _older(item, older_than_s))
    host, _, pid = item.owner.partition(":")
    if host == socket.gethostname() and pid.isdigit():
        return not Path(f"/proc/{pid}").exists()
    return older_than_s is not None and _older(item, older_than_s)  # another machine's run, or no owner


def _older(item: Leftover, seconds: float) -> bool:
    try:
        started = datetime.fromisoformat(item.started)
    except ValueError:
        return True
    return (datetime.now(timezone.utc) - started).total_seconds() > seconds
