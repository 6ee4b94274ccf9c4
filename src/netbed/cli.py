"""The `netbed` command: parses, calls the Python API, renders. Nothing else lives here."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import click
from rich.console import Console
from rich.markup import escape

from netbed import backend, faults, observe
from netbed.errors import NetbedError
from netbed.progress import Event, Phase
from netbed.tcp import PcapError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def render_progress(event: Event) -> None:
    """Draw a progress event as one terminal line: steps, what they do, how long they took.

    Lines of steps that run side by side (scenarios with --jobs) carry the step's name.
    """
    took = f" ({event.seconds:.1f} s)" if event.seconds is not None else ""
    detail = escape(event.detail)
    said = f": {detail}" if detail else ""
    if event.phase is Phase.START:
        err.print(f"[bold cyan]>[/] {event.step}{said or ' ...'}", markup=True)
    elif event.phase is Phase.INFO:
        err.print(f"  [dim]{event.step}:[/] {detail}")
    elif event.phase is Phase.DONE:
        err.print(f"[green]✓[/] {event.step}{said}{took}")
    elif event.phase is Phase.SKIP:
        err.print(f"[green]✓[/] {event.step}{said}, nothing to do{took}")
    else:
        err.print(f"[red]✗[/] {event.step}{said}{took}")


class Commands(click.Group):
    """netbed's commands, and one per registered fault (`netbed crash HOST`), made when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *(f.command for f in faults.registered().values())})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        found = super().get_command(ctx, name)
        if found is not None:
            return found
        wanted = [f for f in faults.registered().values() if f.command == name]
        return fault_command(wanted[0]) if wanted else None


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="netbed")
def cli() -> None:
    """netbed: real TCP hosts in containers, real faults, proof from the wire."""


# --- checking input at parse time --------------------------------------------------------


class Finite(click.FloatRange):
    """A float in a range that is also a number: click's FloatRange lets nan (and inf with no max) through."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def _checked(check: Callable[[Any], Any]):
    """A click callback that runs one of the API's own checks, so a bad value is a usage error (exit 2)."""
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return value
        try:
            return check(value)
        except NetbedError as exc:
            raise click.BadParameter(str(exc).removeprefix(f"{ctx.info_name}: "), ctx=ctx, param=param) from None
    return callback


def _project_name(name: str) -> str:
    from netbed.spec import check_project_name

    return check_project_name(name)


def _placement(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    """HOST=NODE, repeatable."""
    placed: dict[str, str] = {}
    for text in values:
        host, sep, node = text.partition("=")
        if not sep or not host.strip() or not node.strip():
            raise click.BadParameter(f"{text!r}: write it as HOST=NODE, e.g. server=node2", ctx=ctx, param=param)
        placed[host.strip()] = node.strip()
    return placed


def _new_folder(path: str) -> Path:
    from netbed.folders import check_new_folder

    return check_new_folder(path)


def _output_file(path: str) -> str:
    """A file netbed writes at the end: its folder must be there now, not after a long run."""
    if not Path(path).resolve().parent.is_dir():
        raise NetbedError(f"{Path(path).resolve().parent} is not a folder: create it first")
    if Path(path).is_dir():
        raise NetbedError(f"{path} is a folder: give a file name")
    return path


def _new_file(path: str) -> str:
    if os.path.lexists(path):
        raise NetbedError(f"{path} exists: netbed does not overwrite files; choose another name or remove it")
    if not Path(path).resolve().parent.is_dir():
        raise NetbedError(f"{Path(path).resolve().parent} is not a folder: create it first")
    return path


# --- testbeds -------------------------------------------------------------------------

project_option = click.option("-p", "--project", callback=_checked(_project_name),
                              help="The testbed's project name (default: the one running ./compose.yaml).")
file_option = click.option("-f", "--file", "compose_file", type=click.Path(dir_okay=False, exists=True),
                           help="Compose file (default: compose.yaml here, else netbed's).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _cluster_name(name: str) -> str:
    return backend.check_cluster_name(name)


@cli.command()
@click.option("--fix", is_flag=True, help="Set up what is missing (Debian, root): engine, daemon, Compose v2, images.")
@click.option("--cluster", "cluster_name", callback=_checked(_cluster_name), metavar="NAME",
              help="Check a cluster instead (`netbed cluster up`): engines, Swarm, ports, image on every node.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def doctor(fix: bool, cluster_name: str | None, as_json: bool) -> None:
    """Say what netbed needs and whether it is there."""
    if fix and cluster_name:
        raise click.UsageError("--fix and --cluster go separately: `netbed cluster up` sets a cluster up")
    try:
        if cluster_name:
            findings = backend.cluster_diagnose(cluster_name)
        else:
            findings = backend.fix(render_progress) if fix else backend.diagnose()
    except NetbedError as exc:
        if not as_json:
            raise
        # --json prints JSON whatever happens: what is there, and the step that could not be done
        findings = [*backend.diagnose(), backend.Finding("set-up", False, str(exc), "see the detail")]
    if as_json:
        click.echo(json.dumps([f.__dict__ for f in findings], indent=2))
    else:
        for f in findings:
            mark = "[green]✓[/]" if f.ok else "[red]✗[/]"
            remedy = f" [yellow]-> {f.remedy}[/]" if not f.ok and f.remedy else ""
            out.print(f"{mark} {f.name}: {f.detail}{remedy}")
    if not all(f.ok for f in findings):
        sys.exit(1)


# --- clusters: several engines on this machine -------------------------------------------

cluster_name_option = click.option("--name", "name", default="netbed-cluster", show_default=True,
                                   callback=_checked(_cluster_name), help="The cluster's name.")


@cli.group()
def cluster() -> None:
    """An N-node Docker Swarm of engine containers on this machine (for multi-node testbeds)."""


@cluster.command(name="up")
@click.argument("n", type=click.IntRange(1, 9), metavar="N")
@cluster_name_option
def cluster_up(n: int, name: str) -> None:
    """Start N engines (1-9) in containers, form a Swarm, load netbed's host image into each."""
    made = backend.cluster_up(n, name, report=render_progress)
    _print_cluster(made)
    out.print(f"check: netbed doctor --cluster {made.name}    tear down: netbed cluster down --name {made.name}")


@cluster.command(name="down")
@cluster_name_option
def cluster_down(name: str) -> None:
    """Remove the cluster: node containers, their data, the network, sockets and cgroups (idempotent)."""
    removed = backend.cluster_down(name, report=render_progress)
    out.print(f"cluster {name} is down" if removed else f"no cluster named {name}: nothing to remove")


@cluster.command(name="load-image")
@cluster_name_option
def cluster_load_image(name: str) -> None:
    """Rebuild netbed's host image if netbed changed, and load it into every node that lacks it."""
    backend.cluster_load_image(name, report=render_progress)
    _print_cluster(backend.cluster_status(name))


@cluster.command(name="status")
@cluster_name_option
@json_option
def cluster_status(name: str, as_json: bool) -> None:
    """The cluster's nodes, read back from the engines: endpoint, address, Swarm role and state, image."""
    found = backend.cluster_status(name)
    if as_json:
        _print_json(found)
    else:
        _print_cluster(found)


def _print_cluster(found) -> None:
    out.print(f"{found.name}  network {found.network} {found.subnet}  bridge {found.bridge}")
    for n in found.nodes:
        out.print(f"  {n.name:6} {n.address:15} {n.role or '?':8} {n.state or '?'}/{n.availability or '?':7} "
                  f"image {n.image or '?':8} {n.swarm_id[:12] or '-':12} {n.endpoint}")



def _compose_file(path: str | None):
    from pathlib import Path

    if path:
        return Path(path)
    here = Path("compose.yaml")
    return here if here.is_file() else None


def _testbed(project: str | None, compose_file: str | None = None):
    return backend.attach(project, _compose_file(compose_file))


def _print_json(value) -> None:
    click.echo(json.dumps(value, indent=2, default=lambda o: o.__dict__))


def _host_setting(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """[HOST:]KEY=VALUE, repeatable: (host or "" for every host, key, value)."""
    found = []
    for text in values:
        head, sep, value = text.partition("=")
        host, colon, key = head.rpartition(":")
        if not sep or not key.strip() or (colon and not host):
            raise click.BadParameter(f"{text!r}: write it as KEY=VALUE (every host) or HOST:KEY=VALUE", ctx=ctx,
                                     param=param)
        found.append((host, key.strip(), value))
    return found


def _settings(sysctls: list[tuple[str, str, str]], envs: list[tuple[str, str, str]]):
    """--sysctl and --env as compose settings: per host, and for every host."""
    services: dict[str, dict[str, Any]] = {}
    every: dict[str, Any] = {}
    for key, given in (("sysctls", sysctls), ("environment", envs)):
        for host, name, value in given:
            target = services.setdefault(host, {}) if host else every
            target.setdefault(key, {})[name] = value
    return services, every


@cli.command()
@file_option
@project_option
@click.option("--run-dir", type=click.Path(file_okay=False), help="Where the capture and logs go (default runs/PROJECT).")
@click.option("--sysctl", "sysctls", multiple=True, callback=_host_setting, metavar="[HOST:]KEY=VALUE",
              help="A sysctl for every host, or for HOST (repeatable), e.g. client:net.ipv4.tcp_retries2=5.")
@click.option("--env", "envs", multiple=True, callback=_host_setting, metavar="[HOST:]KEY=VALUE",
              help="An environment variable for every host, or for HOST (repeatable).")
@click.option("--cluster", callback=_checked(_cluster_name),
              help="Spread the hosts over this cluster's nodes (`netbed cluster up N`).")
@click.option("--nodes", callback=_checked(backend.parse_nodes), metavar="[NAME=]ENDPOINT,...",
              help="Spread the hosts over the engines of your own Swarm (unix://, tcp://, ssh:// or a Docker "
                   "context; the first a manager).")
@click.option("--place", "places", multiple=True, callback=_placement, metavar="HOST=NODE",
              help="Run HOST on NODE (repeatable); the other hosts go to the nodes in turn.")
def up(compose_file: str | None, project: str | None, run_dir: str | None, sysctls: list, envs: list,
       cluster: str | None, nodes: dict[str, str] | None, places: dict[str, str]) -> None:
    """Bring up a testbed (capture first, then the hosts) and leave it running."""
    import socket

    if places and not (cluster or nodes):
        raise click.UsageError("--place needs --cluster or --nodes: hosts are placed on nodes")
    if cluster and nodes:
        raise click.UsageError("give --cluster or --nodes, not both")
    services, every = _settings(sysctls, envs)
    bed = backend.up(_compose_file(compose_file), project=project, run_dir=run_dir, report=render_progress,
                     owner=f"{socket.gethostname()}:cli", services=services, every_host=every, cluster=cluster,
                     nodes=nodes, place=places or None)
    for host in bed.hosts.values():
        node = bed.node_of(host.name)
        out.print(f"{host.name:10} {host.ip:15} {host.mac}{f'  on {node}' if node else ''}")
    out.print(f"capture: {bed.pcap}")
    out.print(f"tear down: netbed down -p {bed.project}")


@cli.command()
@project_option
@file_option
def down(project: str | None, compose_file: str | None) -> None:
    """Stop the hosts, then the capture, and remove everything of the testbed."""
    bed = _testbed(project, compose_file)
    bed.down()
    out.print(f"{bed.project} is down; capture kept at {bed.pcap}")
    if bed.capture_error:
        err.print(f"netbed: note: {bed.capture_error}", markup=False)


@cli.command()
@project_option
@file_option
@json_option
def status(project: str | None, compose_file: str | None, as_json: bool) -> None:
    """The testbed's hosts: state, address, MAC."""
    bed = _testbed(project, compose_file)
    rows = [{"host": h.name, "status": bed.status(h.name), "ip": h.ip, "mac": h.mac, "node": bed.node_of(h.name)}
            for h in bed.hosts.values()]
    if as_json:
        _print_json({"project": bed.project, "bridge": bed.bridge, "capture": str(bed.pcap), "hosts": rows})
        return
    out.print(f"{bed.project}  bridge {bed.bridge}  capture {bed.pcap}")
    for r in rows:
        out.print(f"  {r['host']:10} {r['status']:8} {r['ip']:15} {r['mac']}{'  on ' + r['node'] if r['node'] else ''}")


@cli.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.argument("host")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED, metavar="[--] COMMAND [ARG]...")
@project_option
def exec_(host: str, argv: tuple[str, ...], project: str | None) -> None:
    """Run a command on a host and print its output; exits with its status (`netbed exec server -- ss -tan`)."""
    done = _testbed(project).exec(host, list(argv))
    click.echo(done.stdout, nl=False)
    click.echo(done.stderr, nl=False, err=True)
    sys.exit(done.exit_code)


@cli.command()
@click.argument("host")
@project_option
def logs(host: str, project: str | None) -> None:
    """A host's output so far."""
    click.echo(_testbed(project).logs(host), nl=False)


@cli.command(name="ps")
@click.argument("host")
@project_option
@json_option
def ps_(host: str, project: str | None, as_json: bool) -> None:
    """A host's processes; zombies are marked."""
    procs = observe.processes(_testbed(project), host)
    if as_json:
        _print_json([{**p.__dict__, "zombie": p.zombie} for p in procs])
        return
    for p in procs:
        out.print(f"{p.pid:6} {p.ppid:6} {p.stat:5} {p.command}{'  <- zombie' if p.zombie else ''}")


@cli.command()
@click.argument("host")
@project_option
@json_option
def sockets(host: str, project: str | None, as_json: bool) -> None:
    """A host's TCP sockets: state, addresses, timers, owning pids."""
    socks = observe.sockets(_testbed(project), host)
    if as_json:
        _print_json(socks)
        return
    for s in socks:
        out.print(f"{s.state:13} {s.local:22} {s.peer:22} pids={','.join(map(str, s.pids)) or '-'} {s.timer}")


def fault_command(fault: faults.Fault) -> click.Command:
    """A registered fault as a command: its parameters as arguments and options, checked at parse time."""
    def run(project: str | None, **values: Any) -> None:
        try:
            arguments = fault.arguments(values)
        except faults.FaultError as exc:
            raise click.UsageError(str(exc).removeprefix(f"{fault.name}: ")) from None
        result = fault.apply(_testbed(project), **arguments)
        out.print(fault.said(values, result) if fault.said else f"{fault.name}: {values.get('host', '')} done",
                  markup=False)

    ends = f" Undone by `netbed {fault.undone_by}`." if fault.undone_by else ""
    command = click.command(fault.command, help=fault.summary + ends)(project_option(run))
    command.params[:0] = [_fault_param(p) for p in fault.params]
    return command


def _fault_param(param: faults.Param) -> click.Parameter:
    kind: Any = click.STRING
    if param.kind is float:
        kind = Finite(*param.range) if param.range else Finite()
    elif param.kind is int:
        kind = click.IntRange(int(param.range[0]), int(param.range[1])) if param.range else click.INT
    callback = _checked(param.check) if param.check else None
    required = param.default is faults.registry.REQUIRED
    given = {} if required else {"default": param.default}  # click takes any default, None too, as "not required"
    if param.positional:
        return click.Argument([param.name], type=kind, required=required, callback=callback, **given)
    flag = "--" + param.name.replace("_", "-")
    if param.kind is bool:
        return click.Option([flag, param.name], is_flag=True, help=param.help, **given)
    return click.Option([flag, param.name], type=kind, required=required, callback=callback, help=param.help,
                        show_default=given.get("default") not in (None, 0, ""), **given)


@cli.command()
@click.option("--older-than", "older_than",
              help="Also other machines' runs that started longer ago than this: 30s, 10m, 2h, 1d.")
@click.option("--kept", is_flag=True,
              help="Also testbeds kept up on purpose (`netbed up`, `run --keep`, `--netbed-keep`).")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
def clean(older_than: str | None, kept: bool, dry_run: bool) -> None:
    """Remove what killed runs left behind (only netbed's own containers, networks, volumes).

    A run whose process on this machine is still alive is never touched, however old.
    """
    items = backend.leftovers(older_than_s=_duration(older_than) if older_than else None, kept=kept)
    for item in items:
        out.print(f"{'would remove' if dry_run else 'removing'} {item.kind} {item.name} (project {item.project}, "
                  f"owner {item.owner}, started {item.started})")
    if not dry_run:
        backend.clean(items)
    out.print(f"{len(items)} left-over item(s){' found' if dry_run else ' removed'}")
    if not kept:
        alone = sorted({i.project for i in backend.leftovers(kept=True) if i.kept})
        if alone:
            out.print(f"kept up on purpose, left alone: {', '.join(alone)} (remove one with `netbed down -p PROJECT`, "
                      "all with `netbed clean --kept`)")


def _duration(text: str) -> float:
    import re

    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd]?)", text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration like 30s, 10m, 2h or 1d", param_hint="--older-than")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


# --- captures and what they show ---------------------------------------------------------

name_option = click.option("--name", "names", multiple=True, metavar="IP=NAME", help="A host name for an address.")


def _names(pairs: tuple[str, ...]) -> dict[str, str]:
    names = {}
    for pair in pairs:
        ip, sep, name = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r}: write it as IP=NAME", param_hint="--name")
        names[ip] = name
    return names


@cli.command()
@click.argument("pcap", type=click.Path(dir_okay=False))
@name_option
@json_option
def analyze(pcap: str, names: tuple[str, ...], as_json: bool) -> None:
    """Each TCP connection of a capture: roles, flags, retransmissions, keepalives, RSTs, close, states.

    Each connection is printed once it is over (closed, then quiet), the ones
    still open at the end last; memory does not grow with the capture. What
    was read ends the text, and goes to stderr with --json.
    """
    from netbed.tcp import ReadStats, connections
    from netbed.tcp.render import Batched, write_json, write_text

    stats = ReadStats()
    path = _readable(pcap)
    show = _reading(path)
    found = connections(path, _names(names), keep_segments=False, stats=stats, progress=show)
    write = Batched(sys.stdout.write)
    try:
        if as_json:
            write_json(found, write)
        else:
            n = 0
            for conn in found:
                write_text(conn, write)
                n += 1
            if not n:
                write("no TCP connection in this capture\n")
            write(stats.describe() + "\n")
    finally:
        write.flush()
        if show is not None:
            show.done()
    if as_json:
        sys.stdout.flush()
        err.print(stats.describe(), markup=False)


class _Reading:
    """How far the reading of a large capture has come, on one terminal line of stderr, twice a second."""

    def __init__(self, path: str, size: int) -> None:
        import time

        self.clock = time.monotonic
        self.path = path
        self.size = size
        self.start = self.last = self.clock()
        self.shown = False

    def __call__(self, done: int) -> None:
        now = self.clock()
        if now - self.last < 0.5:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        left = (self.size - done) / rate if rate else 0
        sys.stderr.write(
            f"\rreading {self.path}: {done / 2**30:.1f} of {self.size / 2**30:.1f} GiB"
            f" ({100 * done // max(self.size, 1)}%), {rate / 2**20:.0f} MiB/s, about {left:.0f} s left\x1b[K"
        )
        sys.stderr.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _reading(path: str) -> _Reading | None:
    """A progress line for a capture of 256 MiB or more, when stderr is a terminal."""
    size = Path(path).stat().st_size
    return _Reading(path, size) if size >= 1 << 28 and sys.stderr.isatty() else None


@cli.command()
@click.argument("pcap", type=click.Path(dir_okay=False))
@click.option("--conn", "conn_id", type=int, help="Only the connection with this id (see `netbed analyze`).")
@click.option("--svg", type=click.Path(dir_okay=False), callback=_checked(_output_file),
              help="Also write the (first) connection as SVG here.")
@click.option("--follow", is_flag=True, help="Print each segment as the capture grows (Ctrl-C to stop).")
@name_option
def ladder(pcap: str, conn_id: int | None, svg: str | None, follow: bool, names: tuple[str, ...]) -> None:
    """Each connection of a capture as a two-column sequence diagram."""
    from netbed.tcp import connections, follow as follow_file, render_ladder_svg
    from netbed.tcp.annotate import read_notes
    from netbed.tcp.ladder import ladder_text, with_segments
    from netbed.tcp.render import Batched

    if follow:
        if not Path(pcap).parent.is_dir():
            raise NetbedError(f"no folder {Path(pcap).parent} for {pcap}: give the path of a capture (it may not exist yet)")
        err.print(f"following {pcap}{'' if Path(pcap).exists() else ' (waiting for it to appear)'}; Ctrl-C to stop",
                  markup=False)
        for line in follow_file(pcap, _names(names)):
            click.echo(line)
        return
    path = _readable(pcap)
    notes = read_notes(path)  # netbed's notes, if netbed wrote this capture: drawn between the segments
    picked: list[Any] = []
    if conn_id is not None:  # its segments are read again from the file when drawn, not held
        found = connections(path, _names(names))
        for conn in found:
            if conn.id == conn_id:
                picked.append(conn)
                break
        found.close()  # the reading stops once the connection asked for is over
    chosen: Iterable[Any] = picked if conn_id is not None else with_segments(path, _names(names))
    write = Batched(sys.stdout.write)
    drawn = 0
    first = None
    try:
        for conn in chosen:
            if drawn:
                write("\n")
            elif svg:
                first = conn
            drawn += 1
            for text in ladder_text(conn, events=notes):  # whole lines, runs of them at a time
                write(text)
    finally:
        write.flush()
    if not drawn:
        raise NetbedError(f"no connection {conn_id} in {pcap}" if conn_id is not None else f"no TCP connection in {pcap}")
    if first is not None and svg:
        Path(svg).write_text(render_ladder_svg(first))
        err.print(f"SVG: {svg}")


def _readable(path: str) -> str:
    if not Path(path).is_file():
        raise NetbedError(f"no file {path}: give the path of a pcap or pcapng capture")
    return path


@cli.group()
def capture() -> None:
    """Record a testbed's bridge into an extra pcap, from a container (works on any engine)."""


@capture.command(name="start")
@project_option
@click.option("--out", "out_file", type=click.Path(dir_okay=False), required=True, callback=_checked(_new_file),
              help="The pcap to write (a new file: an existing one is never overwritten).")
def capture_start(project: str | None, out_file: str) -> None:
    from netbed.capture import max_frames_from_env

    bed = _testbed(project)
    started = bed.record(Path(out_file), max_frames_from_env())
    out.print(f"recording {started.bridge} into {started.path} (`netbed capture stop -p {bed.project}` ends it)")


@capture.command(name="stop")
@project_option
def capture_stop(project: str | None) -> None:
    bed = _testbed(project)
    stopped = bed.stop_recordings()
    if not stopped:
        raise NetbedError(f"no extra capture runs on {bed.project}: start one with `netbed capture start`")
    for stats in stopped:
        out.print(f"stopped: {stats}")


# --- scenarios ----------------------------------------------------------------------------


@cli.command(name="list")
@json_option
def list_(as_json: bool) -> None:
    """The scenario catalogue: name, book section, title, which of your programs it judges and why not the rest."""
    from netbed.scenarios import CATALOGUE

    rows: list[dict[str, Any]] = [{"name": s.name, "section": s.section, "title": s.title, "user_programs": s.user_programs,
             "takes": list(s.takes), "own": s.own} for s in CATALOGUE]
    if as_json:
        _print_json(rows)
        return
    for r in rows:
        takes = " and ".join(r["takes"])
        mark = f"  (judges your {takes})" if takes else ""
        out.print(f"{r['name']:22} {r['section']:9} {r['title']}{mark}", markup=False)
        if r["own"]:
            own = " and ".join(role for role in ("server", "client") if role not in r["takes"])
            out.print(f"{'':32}netbed's own {own}: {r['own']}", markup=False)


@cli.command(name="run")
@click.argument("names", nargs=-1)
@click.option("--all", "run_all", is_flag=True, help="Run the whole catalogue.")
@click.option("--out", "out_path", type=click.Path(file_okay=False), callback=_checked(_new_folder),
              help="Run folder, new or empty: runs never share one (default runs/<timestamp>, linked as runs/latest).")
@click.option("--jobs", type=click.IntRange(1, 16), default=1, show_default=True, help="Scenarios at a time.")
@click.option("--keep", is_flag=True, help="Leave each testbed up for inspection.")
@click.option("--server-cmd", help="Your server, e.g. \"/opt/mine/echo-server {port}\". Split into words as a "
              "shell would, never run by one; {port} becomes the port, other braces stay as typed.")
@click.option("--client-cmd", help="Your client, e.g. \"/opt/mine/echo-client {server_ip}\"; "
              "{server_ip} and {port} are replaced, other braces stay as typed.")
@click.option("--mount", "mounts", multiple=True,
              help="HOST_PATH:CONTAINER_PATH[:ro|rw] for your programs (repeatable).")
@click.option("--image", help="Image for the hosts (default netbed-host).")
@click.option("--port", type=click.IntRange(1, 65535), default=9877, show_default=True, help="The server's port.")
@click.option("--html", "html_report", is_flag=True, help="Also write DIR/report.html.")
@click.option("--junit", type=click.Path(dir_okay=False), callback=_checked(_output_file),
              help="Also write JUnit XML to this file.")
@click.option("--cluster", callback=_checked(_cluster_name),
              help="Run each testbed across this cluster's nodes (`netbed cluster up N`): server and client apart.")
def run_(names: tuple[str, ...], run_all: bool, out_path: str | None, jobs: int, keep: bool, server_cmd: str | None,
         client_cmd: str | None, mounts: tuple[str, ...], image: str | None, port: int, html_report: bool,
         junit: str | None, cluster: str | None) -> None:
    """Run scenarios, each on its own testbed.

    Each gets a verdict: passed, failed, or not judged (the programs could not
    be judged there, and why). Exit 0 if every one passed, 1 if one failed,
    3 if none failed but some were not judged.
    """
    from netbed.scenarios import CATALOGUE, Programs, ScenarioError, find, runner
    from netbed.scenarios.lab import Verdict
    from netbed.folders import run_folder

    if bool(names) == run_all:
        raise click.UsageError("name the scenarios to run, or give --all (`netbed list` shows them)")
    try:
        chosen = list(CATALOGUE) if run_all else find(list(names))
    except ScenarioError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        programs = Programs(server_cmd, client_cmd, mounts, image, port)
    except NetbedError as exc:
        raise click.UsageError(str(exc)) from None
    with run_folder(out_path) as out_dir, _interrupts_call_off() as interrupt:
        err.print(f"running {len(chosen)} scenario(s), {jobs} at a time; results in {out_dir}")
        results = runner.run_many(chosen, out_dir, jobs=jobs, programs=programs, keep=keep, report=render_progress,
                                  cancel=interrupt.called_off, cluster=cluster)
    out.print("")
    for r in results:
        verdict = ("[yellow]STOP[/]" if r.interrupted else "[green]PASS[/]" if r.passed
                   else "[yellow]N/J [/]" if r.verdict == Verdict.NOT_JUDGED else "[red]FAIL[/]")
        out.print(f"{verdict} {r.scenario:22} {r.section:9} {r.duration_s:6.1f} s  {r.out_dir}")
        if r.settings.get("own_programs"):
            out.print(f"       {escape(r.settings['own_programs'])}")
        if r.reason:
            out.print(f"       [yellow]not judged:[/] {escape(r.reason)}")
        if r.vanished:  # what failed after that is its consequence
            out.print(f"       [red]✗[/] {escape(r.vanished)}")
            continue
        for c in r.checks:
            if not c.passed and not r.interrupted:
                out.print(f"       [red]✗[/] {c.name}: expected {c.expected!r}", markup=True)
                out.print(f"         observed: {c.observed.splitlines()[0] if c.observed else ''}", markup=False)
    if (html_report or junit) and results:
        from netbed.report import load_run, write_html, write_junit

        reports = [r for r in load_run(out_dir) if r.name in {res.scenario for res in results}]
        if html_report:
            out.print(f"report: {write_html(reports, out_dir / 'report.html')}")
        if junit:
            out.print(f"JUnit XML: {write_junit(reports, Path(junit))}")
    passed = sum(r.passed for r in results)
    unjudged = sum(r.verdict == Verdict.NOT_JUDGED for r in results)
    stopped = [r.scenario for r in results if r.interrupted]
    if interrupt.signum is None:
        failed = len(results) - passed - unjudged
        out.print(f"{passed} passed, {failed} failed, {unjudged} not judged")
        sys.exit(1 if failed else 3 if unjudged else 0)
    ran = {r.scenario for r in results}
    not_run = [s.name for s in chosen if s.name not in ran]
    out.print(f"{passed} passed, {len(results) - passed - len(stopped)} failed; stopped by "
              f"{signal.Signals(interrupt.signum).name}: {len(stopped)} interrupted ({', '.join(stopped) or 'none'}), "
              f"{len(not_run)} not run ({', '.join(not_run) or 'none'})", markup=False)
    _tear_down_mine()
    sys.exit(128 + interrupt.signum)


@cli.command()
@click.argument("submissions", type=click.Path(file_okay=False))
@click.option("--scenario", "names", multiple=True, help="A scenario to grade (repeatable; default: the catalogue).")
@click.option("--out", "out_path", type=click.Path(file_okay=False), callback=_checked(_new_folder),
              help="Grading folder, new or empty (default runs/<timestamp>, linked as runs/latest).")
@click.option("--jobs", type=click.IntRange(1, 16), default=1, show_default=True, help="Testbeds at a time.")
@click.option("--image", help="Image for the hosts (default netbed-host).")
@click.option("--port", type=click.IntRange(1, 65535), default=9877, show_default=True, help="The server's port.")
def grade(submissions: str, names: tuple[str, ...], out_path: str | None, jobs: int, image: str | None,
          port: int) -> None:
    """Grade a folder of submissions (one subfolder each) against the catalogue: one table.

    Each subfolder holds server / server.py / server.c and/or client / client.py /
    client.c (or a netbed.json naming the commands). Writes grade.csv, grade.xml
    (JUnit) and grade.html (a row per submission, a column per scenario, each cell
    linked to its run's evidence). Exits 0 once the table is written, whatever the
    verdicts: they are the table's.
    """
    from netbed.folders import run_folder
    from netbed.grade import find_submissions, grade as grade_all
    from netbed.report.grades import write_csv, write_junit as write_grade_junit, write_page
    from netbed.scenarios import CATALOGUE, Programs, find
    from netbed.scenarios.lab import Verdict

    try:
        chosen = find(list(names)) if names else list(CATALOGUE)
        subs = find_submissions(submissions)
        Programs(image=image)  # checks the image's name
    except NetbedError as exc:
        raise click.UsageError(str(exc)) from None
    with run_folder(out_path, reports="*/*/report.json") as out_dir, _interrupts_call_off() as interrupt:
        err.print(f"grading {len(subs)} submission(s) on {len(chosen)} scenario(s), {jobs} testbed(s) at a time; "
                  f"results in {out_dir}")
        rows = grade_all(subs, chosen, out_dir, jobs=jobs, image=image, port=port, report=render_progress,
                         cancel=interrupt.called_off)
        columns = [s.name for s in chosen]
        csv_path = write_csv(rows, columns, out_dir / "grade.csv")
        xml_path = write_grade_junit(rows, columns, out_dir / "grade.xml")
        page = write_page(rows, columns, out_dir)
    out.print("")
    for row in rows:
        out.print(f"{row.submission:24} {row.count(Verdict.PASSED):3} passed {row.count(Verdict.FAILED):3} failed "
                  f"{row.count(Verdict.NOT_JUDGED):3} not judged", markup=False)
    out.print(f"table: {csv_path}\nJUnit XML: {xml_path}\npage: {page}", markup=False)
    if interrupt.signum is not None:
        _tear_down_mine()
        sys.exit(128 + interrupt.signum)


@cli.command()
@click.argument("run_dir", type=click.Path(), default="runs/latest")
@click.option("--junit", type=click.Path(dir_okay=False), callback=_checked(_output_file),
              help="Also write JUnit XML to this file.")
def report(run_dir: str, junit: str | None) -> None:
    """Write RUN_DIR/report.html: one self-contained page for a run (default runs/latest)."""
    from netbed.report import load_run, write_html, write_junit

    reports = load_run(Path(run_dir))
    out.print(f"report: {write_html(reports, Path(run_dir) / 'report.html')}")
    if junit:
        out.print(f"JUnit XML: {write_junit(reports, Path(junit))}")


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, as Ctrl-C: unwinds, so every testbed of this process is torn down on the way out."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupted(signum: int, _frame) -> None:
    raise Interrupted(signum)


class _CallOff:
    """The first SIGINT or SIGTERM calls the work off (it stops at its next step); a second one unwinds at once."""

    def __init__(self) -> None:
        self.called_off = threading.Event()
        self.signum: int | None = None

    def __call__(self, signum: int, _frame) -> None:
        if self.called_off.is_set():
            raise Interrupted(signum)
        self.signum = signum
        self.called_off.set()
        err.print(f"netbed: {signal.Signals(signum).name}: no new scenario starts, the running ones stop and are "
                  "torn down (again to stop at once)", markup=False)


@contextmanager
def _interrupts_call_off() -> Iterator[_CallOff]:
    """While inside, SIGINT and SIGTERM call the work off instead of unwinding (an ignored SIGINT stays ignored)."""
    handler = _CallOff()
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)
                if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        yield handler
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)


def main() -> None:
    """Entry point: a NetbedError becomes one line on stderr and exit status 1, never a traceback.

    SIGINT and SIGTERM end a command with 130 and 143, its testbeds torn down.
    """
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:  # one line: what is wrong, and where the help is
        where = exc.ctx.command_path if exc.ctx else "netbed"
        err.print(f"{where}: {exc.format_message()} (`{where} -h` for help)", markup=False)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:  # click's word for a KeyboardInterrupt (or an Interrupted) inside it
        _tear_down_mine()
        sys.exit(128 + getattr(exc.__cause__, "signum", signal.SIGINT))
    except (NetbedError, PcapError) as exc:
        err.print(f"netbed: {exc}", markup=False)
        sys.exit(1)
    except OSError as exc:
        err.print(f"netbed: {exc.filename or ''}: {exc.strerror or exc}", markup=False)
        sys.exit(1)
    except KeyboardInterrupt as exc:
        _tear_down_mine()
        sys.exit(128 + getattr(exc, "signum", signal.SIGINT))


def _tear_down_mine() -> None:
    """After an interrupt: remove every testbed this process made (threads may still hold some)."""
    from netbed.labels import owner_id

    try:
        mine = backend.leftovers(owner=owner_id())
        if mine:
            err.print("netbed: interrupted; tearing down this run's testbeds")
            backend.clean(mine)
    except NetbedError as exc:
        err.print(f"netbed: {exc}", markup=False)
