"""What netbed refuses to touch: the machine it runs on.

A fault changes routes, ARP, iptables and qdiscs in a host's network
namespace, and signals processes in its process namespace. That is safe only
when those namespaces are the host's own. A host that shares the machine's
(`network_mode: host`, `pid: host`), runs privileged, or mounts the engine's
socket or the machine's `/` would carry a fault to the machine itself. So:

- `refusals()` judges a host's settings, read from the compose model before
  anything is created (`up`) or from the running container before every
  action (the demo and other plain `docker compose up` projects);
- `check_namespace()` is the last line, right where a network command runs:
  the target namespace must not be the machine's, compared by inode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from netbed.errors import NetbedError

ENGINE_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
ENGINE_PIDFILES = ("/var/run/docker.pid", "/run/docker.pid")


class RefusedError(NetbedError):
    pass


@dataclass(frozen=True)
class HostSettings:
    """The settings of a host that decide whether its namespaces are its own."""

    network_mode: str = ""        # "", "host", "none", "bridge", "service:NAME", "container:ID", a network
    pid: str = ""                 # "", "host", "service:NAME", "container:ID"
    privileged: bool = False
    bind_sources: tuple[str, ...] = ()   # paths of the machine mounted into the host

    @classmethod
    def from_compose(cls, service: dict[str, Any]) -> "HostSettings":
        """From a compose service (as `docker compose config` prints it, or as given to the API)."""
        sources = []
        for volume in service.get("volumes") or []:
            if isinstance(volume, dict):
                if volume.get("type", "bind") == "bind" and volume.get("source"):
                    sources.append(str(volume["source"]))
            elif isinstance(volume, str) and volume.startswith(("/", ".", "~")):
                sources.append(volume.split(":", 1)[0])
        return cls(str(service.get("network_mode") or ""), str(service.get("pid") or ""),
                   bool(service.get("privileged")), tuple(sources))

    @classmethod
    def from_container(cls, attrs: dict[str, Any]) -> "HostSettings":
        """From the engine's inspection of a container."""
        config = attrs.get("HostConfig") or {}
        sources = tuple(m.get("Source", "") for m in attrs.get("Mounts") or [] if m.get("Type") == "bind")
        return cls(config.get("NetworkMode") or "", config.get("PidMode") or "", bool(config.get("Privileged")),
                   sources)


def refusals(name: str, settings: HostSettings, peers: frozenset[str] = frozenset()) -> list[str]:
    """Why host `name` would break the testbed's promises; empty when it may join a testbed.

    `peers` are the namespaces a host may share: other hosts of the same
    testbed, written as the setting names them ("service:server", or
    "container:ID" on a running project).
    """
    found = []
    mode = settings.network_mode
    if mode == "host":
        found.append(f"{name}: network_mode: host shares the machine's network namespace")
    elif mode in ("bridge", "default"):
        found.append(f"{name}: network_mode: {mode} joins Docker's default bridge, which is not internal")
    elif mode.startswith(("service:", "container:")) and mode not in peers:
        found.append(f"{name}: network_mode: {mode} shares the network namespace of a container that is not "
                     "a host of this testbed")
    if settings.pid == "host":
        found.append(f"{name}: pid: host shares the machine's processes (a shutdown would signal them all)")
    elif settings.pid.startswith(("service:", "container:")) and settings.pid not in peers:
        found.append(f"{name}: pid: {settings.pid} shares the processes of a container that is not a host of "
                     "this testbed")
    if settings.privileged:
        found.append(f"{name}: privileged: true gives the host the machine's devices and every capability")
    for source in settings.bind_sources:
        what = _dangerous_mount(source)
        if what:
            found.append(f"{name}: volumes: {source} mounts {what}")
    return found


def check_services(services: dict[str, dict[str, Any]], hosts: list[str], external: set[str] = set()) -> None:
    """Refuse, in one line, compose services whose hosts would break the testbed's promises.

    `external` names networks the model declares external: netbed did not
    create them, so it cannot make them internal.
    """
    peers = frozenset(f"{kind}:{host}" for host in hosts for kind in ("service", "container"))
    found = [reason for name in hosts if name in services
             for reason in refusals(name, HostSettings.from_compose(services[name] or {}), peers)]
    found += [f"{name}: networks: {net} is external, a network netbed did not create (and cannot make internal)"
              for name in hosts if name in services for net in (services[name] or {}).get("networks") or []
              if net in external]
    if found:
        raise RefusedError(f"refused: {'; '.join(found)} (a testbed host must have namespaces of its own; "
                           "remove the key)")


def check_container(name: str, attrs: dict[str, Any], peer_ids: set[str]) -> None:
    """Refuse to act on a running host whose namespaces are not its own."""
    peers = frozenset(f"container:{cid}" for cid in peer_ids)
    found = refusals(name, HostSettings.from_container(attrs), peers)
    if found:
        raise RefusedError(f"netbed will not act on {found[0]}")


def _dangerous_mount(source: str) -> str:
    """What a bind mount of `source` would hand to a host, if it is the machine's root or the engine's socket."""
    path = PurePosixPath(os.path.normpath(os.path.expanduser(source)))
    if str(path) == "/":
        return "the machine's /"
    for sock in _engine_sockets():
        if path == sock or path in sock.parents:
            return f"the Docker Engine's socket ({sock})"
    return ""


def _engine_sockets() -> list[PurePosixPath]:
    host = os.environ.get("DOCKER_HOST", "")
    paths = list(ENGINE_SOCKETS) + ([host.removeprefix("unix://")] if host.startswith("unix://") else [])
    return [PurePosixPath(os.path.realpath(p)) for p in paths] + [PurePosixPath(p) for p in paths]


# --- the last line: the namespace a network command runs in ----------------------------------


def engine_pidfiles() -> list[str]:
    """Where the engine daemons' pids are: the default's, and the one beside the socket DOCKER_HOST names.

    dockerd keeps /var/run/docker.pid beside /var/run/docker.sock; a second
    engine netbed starts (netbed.backend.compose.engines) keeps its pid file
    the same way, and runs in a network namespace of its own, where its
    bridges are: that namespace is the machine's for its testbeds.
    """
    return list(dict.fromkeys([*ENGINE_PIDFILES, *([engine_pidfile()] if engine_pidfile() else [])]))


def engine_pidfile() -> str:
    """The pid file of the engine DOCKER_HOST names (Docker's default one without it); empty for a remote one."""
    host = os.environ.get("DOCKER_HOST") or f"unix://{ENGINE_SOCKETS[0]}"
    return str(PurePosixPath(host.removeprefix("unix://")).with_suffix(".pid")) if host.startswith("unix://") else ""


def machine_netns_inodes() -> set[int]:
    """The network namespaces netbed must never change when it enters one itself.

    Its own, PID 1's and the engine daemons' (the default's and the one at
    DOCKER_HOST), each where this process may read it (a sandbox may hide PID 1's).
    """
    found = set()
    pids = ["1", "self"] + [Path(p).read_text().strip() for p in engine_pidfiles() if Path(p).is_file()]
    for path in (f"/proc/{pid}/ns/net" for pid in pids):
        try:
            found.add(os.stat(path).st_ino)
        except OSError:
            pass
    return found


def check_namespace(inode: int, machine: set[int], host: str) -> None:
    if inode in machine:
        raise RefusedError(f"netbed will not change the network of {host}: its namespace (net:[{inode}]) is the "
                           "machine's own")


REFUSED_STATUS = 125
"""Exit status of `in_own_namespace` when it found itself in the machine's namespace."""


def in_own_namespace(argv: list[str], machine_ns: str) -> list[str]:
    """`argv` wrapped so that it runs only if the namespace it runs in is not `machine_ns` ("net:[N]").

    For helper containers that share the target's namespace: the check runs
    in the very namespace the command changes, so nothing can come between.
    """
    script = ('[ "$(readlink /proc/self/ns/net)" != "$0" ] || '
              '{ echo "the namespace is the machine\'s own ($0)" >&2; exit %d; }; exec "$@"' % REFUSED_STATUS)
    return ["sh", "-c", script, machine_ns, *argv]
