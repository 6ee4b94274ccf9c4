"""A fault never touches the machine netbed runs on, and nothing on a testbed reaches the machine.

The host-namespace case runs for real: a host on `network_mode: host` is
brought up with plain `docker compose` (netbed itself refuses it at `up`),
every verb is tried on it, and the machine's routes, link flags, iptables
rules and qdiscs must be as they were (they are put back if not).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from netbed.backend import guard
from netbed.backend.compose import engine
from netbed.observe import wait_for
from netbed.backend.compose.testbed import LABEL_RUN_DIR, Testbed, _nsenter, default_compose_file, free_prefix

import machine_state

NETBED = str(Path(sys.executable).with_name("netbed"))
HOST = {"image": engine.IMAGE, "init": True, "command": ["sleep", "infinity"], "networks": ["bed"],
        "labels": {"org.netbed.project": "safety-test"}}


def compose_file(folder: Path, client: dict, extra: str = "") -> Path:
    """server on an internal network, and a client with the settings under test."""
    import json

    services = {"server": HOST, "client": {**{k: v for k, v in HOST.items() if k != "networks"}, **client}}
    if "network_mode" not in client:
        services["client"]["networks"] = client.get("networks", ["bed"])
    model = {"services": services, "networks": {"bed": {"internal": True}}}
    path = folder / "compose.yaml"
    path.write_text(json.dumps(model) + extra)  # JSON is YAML
    return path


@pytest.fixture
def machine_unharmed():
    """Fails the test if the machine's own network changed (the runner's namespace, and the engine daemon's when
    it has its own), and puts it back whatever happened."""
    where = machine_state.namespaces()
    before = [machine_state.snapshot(inside) for inside in where]
    differences = {}
    try:
        yield
    finally:
        for inside, then in zip(where, before):
            changed = then.differences(machine_state.snapshot(inside))
            if changed:
                differences[" ".join(inside) or "the runner's"] = changed
                machine_state.restore(then, inside)
    assert not differences, f"the machine's network changed: {differences}"


DANGEROUS = {
    "network_mode host": ({"network_mode": "host"}, "client: network_mode: host"),
    "network_mode of another container": ({"network_mode": "container:some-other-container"},
                                          "client: network_mode: container:some-other-container"),
    "docker's default bridge": ({"network_mode": "bridge"}, "client: network_mode: bridge"),
    "pid host": ({"pid": "host"}, "client: pid: host"),
    "privileged": ({"privileged": True}, "client: privileged: true"),
    "the docker socket": ({"volumes": ["/var/run/docker.sock:/var/run/docker.sock"]},
                          "client: volumes: /var/run/docker.sock mounts the Docker Engine's socket"),
    "the folder of the docker socket": ({"volumes": ["/run:/host-run:ro"]},
                                        "client: volumes: /run mounts the Docker Engine's socket"),
    "the machine's root": ({"volumes": ["/:/host:ro"]}, "client: volumes: / mounts the machine's /"),
}


@pytest.mark.parametrize("case", sorted(DANGEROUS))
def test_up_refuses_a_host_that_would_share_the_machine(case, tmp_path, docker_engine):
    settings, said = DANGEROUS[case]
    path = compose_file(tmp_path, settings)
    done = subprocess.run([NETBED, "up", "-f", str(path)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"netbed: refused: {said}"), done.stderr
    assert "Traceback" not in done.stderr
    made = [c.id for c in docker_engine.containers.list(all=True, sparse=True, filters={"label": LABEL_RUN_DIR})
            if c.attrs["Labels"][LABEL_RUN_DIR].startswith(str(tmp_path))]  # a sparse listing: no Config
    made += [n.name for n in docker_engine.networks.list(filters={"label": LABEL_RUN_DIR})
             if n.attrs["Labels"][LABEL_RUN_DIR].startswith(str(tmp_path))]
    assert made == [], "nothing was created"


def test_an_external_network_is_refused(tmp_path, docker_engine):
    path = compose_file(tmp_path, {"networks": ["outside"]}, extra="")
    text = path.read_text().replace('"networks": {"bed": {"internal": true}}',
                                    '"networks": {"bed": {"internal": true}, "outside": {"external": true, '
                                    '"name": "bridge"}}')
    path.write_text(text)
    with pytest.raises(guard.RefusedError, match="client: networks: outside is external"):
        Testbed.up(path, run_dir=tmp_path / "run")


def test_settings_given_through_the_api_are_refused_too(tmp_path, docker_engine):
    with pytest.raises(guard.RefusedError, match="client: network_mode: host"):
        Testbed.up(run_dir=tmp_path, services={"client": {"network_mode": "host"}})


def test_every_network_netbed_creates_is_internal_whatever_the_file_says(tmp_path, docker_engine):
    path = compose_file(tmp_path, {})
    path.write_text(path.read_text().replace('"internal": true', '"internal": false'))
    with Testbed.up(path, run_dir=tmp_path / "run") as bed:
        nets = bed.container("client").attrs["NetworkSettings"]["Networks"]
        assert [docker_engine.networks.get(n).attrs["Internal"] for n in nets] == [True]


VERBS = [["crash", "client"], ["reboot", "client"], ["pause", "client"], ["unpause", "client"],
         ["kill", "client"], ["kill", "client", "--pid", "7"], ["shutdown", "client"],
         ["partition", "server", "client"], ["impair", "client", "--loss", "10"],
         ["impair", "client", "--delay", "10"], ["impair", "client", "--rate", "100"], ["heal", "client"],
         ["heal"], ["ps", "client"], ["sockets", "client"]]


@pytest.fixture
def host_network_project(tmp_path, docker_engine):
    """A plain `docker compose up` project (as the demo is) whose client is on the machine's network."""
    compose_file(tmp_path, {"network_mode": "host"})
    project = f"safety-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "COMPOSE_PROJECT_NAME": project}
    subprocess.run(["docker", "compose", "up", "-d"], cwd=tmp_path, env=env, check=True, capture_output=True)
    try:
        yield tmp_path
    finally:
        subprocess.run(["docker", "compose", "down", "--timeout", "0"], cwd=tmp_path, env=env, capture_output=True)


def test_every_verb_on_a_host_sharing_the_machine_network_is_refused(host_network_project, machine_unharmed):
    for verb in VERBS:
        done = subprocess.run([NETBED, *verb], capture_output=True, text=True, cwd=host_network_project)
        assert done.returncode == 1, (verb, done)
        assert done.stderr.strip() == ("netbed: netbed will not act on client: network_mode: host shares the "
                                       "machine's network namespace"), (verb, done.stderr)


def test_the_last_line_refuses_the_machine_namespace_even_past_the_settings(host_network_project, docker_engine,
                                                                             machine_unharmed):
    """Below the settings check: entering a namespace compares it with the machine's, by inode."""
    client = next(c for c in docker_engine.containers.list() if c.attrs["HostConfig"]["NetworkMode"] == "host"
                  and c.labels.get("com.docker.compose.service") == "client"
                  and c.labels.get("com.docker.compose.project.working_dir") == str(host_network_project))
    with pytest.raises(guard.RefusedError, match="namespace .* is the machine's own"):
        _nsenter("client", client.attrs["State"]["Pid"], ["iptables", "-w", "-N", "NETBED-GUARD-TEST"])
    # the helper-container path (a runner that is not root on the engine host) checks inside the namespace
    machine_ns = os.readlink(f"/proc/{open(guard.engine_pidfile()).read().strip()}/ns/net")  # the engine's
    argv = guard.in_own_namespace(["iptables", "-w", "-N", "NETBED-GUARD-TEST"], machine_ns)
    assert _helper(docker_engine, argv, "host") == guard.REFUSED_STATUS
    server_ns = f"container:{_service(docker_engine, host_network_project, 'server').id}"
    assert _helper(docker_engine, guard.in_own_namespace(["true"], machine_ns), server_ns) == 0, \
        "a host's own namespace is not refused"


def _service(cli, folder: Path, name: str):
    return next(c for c in cli.containers.list() if c.labels.get("com.docker.compose.service") == name
                and c.labels.get("com.docker.compose.project.working_dir") == str(folder))


def _helper(cli, argv: list[str], network_mode: str) -> int:
    """The exit status of `argv` in a helper container on `network_mode`, as netbed's fault helpers run."""
    container = cli.containers.create(engine.IMAGE, argv, network_mode=network_mode, cap_drop=["ALL"],
                                      cap_add=["NET_ADMIN"], labels={"org.netbed.project": "safety-test"})
    try:
        container.start()
        return cli.api.wait(container.id)["StatusCode"]
    finally:
        container.remove(force=True)


def test_nothing_on_the_testbed_reaches_the_machine(tmp_path, docker_engine):
    """A listener of the test's own on the machine: no host reaches it, by the bridge's address or any other."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    with Testbed.up(run_dir=tmp_path) as bed:
        # the runner's addresses, and the engine's where it has a namespace of its own (its bridges are there)
        machine = [address for inside in machine_state.namespaces() for address in machine_state.addresses(inside)]
        gateways = bed.host("client").gateways
        assert gateways and set(gateways) <= set(machine), "the bridge's own address is the machine's"
        for address in machine:
            probe = (f"import socket\ntry:\n    socket.create_connection(('{address}', {port}), timeout=3)\n"
                     f"    print('connected')\nexcept OSError as e:\n    print(e.strerror)\n")
            done = bed.exec("client", ["python3", "-c", probe])
            assert done.stdout.strip() in ("No route to host", "Network is unreachable"), (address, done)
    with pytest.raises(BlockingIOError):
        listener.accept()
    listener.close()


def test_the_machine_state_check_puts_back_what_a_fault_would_change(tmp_path):
    """The restorer itself, in a namespace of the test's own: a crash's chains, ARP off, a route gone, a qdisc."""
    name = f"nbsafety{uuid.uuid4().hex[:6]}"
    inside = ["ip", "netns", "exec", name]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for argv in (["ip", "link", "add", "test0", "type", "veth", "peer", "name", "test1"],
                     ["ip", "link", "set", "test0", "up"], ["ip", "addr", "add", "10.9.9.2/24", "dev", "test0"],
                     ["ip", "route", "add", "default", "via", "10.9.9.1"]):
            subprocess.run([*inside, *argv], check=True)
        before = machine_state.snapshot(inside)
        for argv in (["iptables", "-N", "NETBED-CRASH"], ["iptables", "-A", "NETBED-CRASH", "-j", "DROP"],
                     ["iptables", "-I", "INPUT", "1", "-j", "NETBED-CRASH"], ["ip", "link", "set", "test0", "arp", "off"],
                     ["ip", "route", "del", "default"], ["tc", "qdisc", "add", "dev", "test0", "root", "tbf", "rate",
                                                         "1mbit", "burst", "16kbit", "latency", "50ms"]):
            subprocess.run([*inside, *argv], check=True)
        changed = before.differences(machine_state.snapshot(inside))
        assert set(changed) == {"routes", "links", "rules", "chains", "qdiscs"}
        machine_state.restore(before, inside)
        assert before.differences(machine_state.snapshot(inside)) == {}
    finally:
        subprocess.run(["ip", "netns", "del", name])


def test_the_demo_hosts_cannot_reach_the_machine_either(tmp_path, docker_engine):
    """Plain `docker compose up` of compose.yaml: its one-shot isolators take the same routes away."""
    project = f"netbed-demo-{uuid.uuid4().hex[:8]}"
    prefix = free_prefix(docker_engine)
    env = {"NETBED_NET": prefix, "NETBED_BRIDGE": f"nbd{uuid.uuid4().hex[:8]}", "NETBED_CAPTURE_DIR": str(tmp_path)}
    run = lambda *args, check=True: engine.compose(list(args), project=project,  # noqa: E731
                                                   files=[default_compose_file()], env=env, check=check)
    try:
        run("up", "-d")
        for host in ("client", "server"):
            routes = wait_for(lambda: run("exec", "-T", host, "ip", "route").stdout,
                              lambda out: f"unreachable {prefix}.1" in out, timeout=20,
                              what=f"the demo's {host} to lose its routes to the machine")
            assert "default" not in routes
        with socket.create_server(("0.0.0.0", 0)) as listener:  # the test's own, on the machine
            port = listener.getsockname()[1]
            probe = (f"import socket\ntry:\n    socket.create_connection(('{prefix}.1', {port}), timeout=3)\n"
                     "except OSError as e:\n    print(e.strerror)\n")
            assert run("exec", "-T", "client", "python3", "-c", probe).stdout.strip() == "No route to host"
        wait_for(lambda: run("logs", "client").stdout, lambda log: "line 2" in log, timeout=30,
                 what="the demo still echoing")
    finally:
        run("down", "--volumes", "--timeout", "2", check=False)
