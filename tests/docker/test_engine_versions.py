"""What differs between Docker Engine versions, and how netbed makes its testbeds the same on each.

`make test` runs these on Docker 20.10 (Debian 12) and 26.1 (Debian 13): each
claim of the README's "Engine versions" section is checked here on whichever
engine the run has.
"""

from __future__ import annotations

import uuid

from netbed import faults
from netbed.backend.compose import engine
from netbed.backend.compose.testbed import Testbed, free_prefix

PINNED_MAC = "02:00:5e:10:00:2a"  # not derived from any address: only netbed's pin can keep it


def test_netbed_speaks_the_engines_own_api_version(docker_engine):
    """docker-py asks the engine for its version and speaks that one: an engine whose oldest accepted API is newer
    than docker-py's default (Docker 29 accepts 1.44 and later) or older (20.10 speaks 1.41) is spoken to as it is."""
    server = docker_engine.version()
    assert docker_engine.api.api_version == server["ApiVersion"]
    fresh = engine.client(timeout=10)
    assert fresh.api.api_version == server["ApiVersion"], "netbed's own client negotiates too"


def test_an_internal_network_has_a_default_route_only_before_docker_25(docker_engine):
    """Docker 25 stopped giving containers on an internal network a default route; netbed takes it away on older
    engines (and on every reboot), so a testbed host has none on either."""
    version = engine.upstream_version(docker_engine.version()["Version"])
    prefix = free_prefix(docker_engine)
    name = f"netbed-route-test-{uuid.uuid4().hex[:6]}"
    network = docker_engine.networks.create(
        name, internal=True,
        ipam={"Config": [{"Subnet": f"{prefix}.0/24", "Gateway": f"{prefix}.1"}]})
    try:
        routes = docker_engine.containers.run(engine.IMAGE, ["ip", "-4", "route"], network=name, remove=True).decode()
    finally:
        network.remove()
    assert ("default" in routes) == (version < (25,)), f"Docker {version}: {routes}"


def test_a_rebooted_host_keeps_the_mac_netbed_pins(tmp_path, docker_engine):
    """Docker 28 gives a container a random MAC at every start; netbed pins each host's (its own, or one derived
    from its address as older engines did), so a rebooted host answers with the MAC its peers have cached."""
    with Testbed.up(run_dir=tmp_path, services={"client": {"command": ["sleep", "infinity"],
                                                           "mac_address": PINNED_MAC}}) as bed:
        before = {name: bed.host(name).mac for name in ("client", "server")}
        assert before["client"] == PINNED_MAC
        for name in ("client", "server"):
            faults.reboot(bed, name)
            # read in the host's namespace (nsenter), not through `docker exec`, whose output of a command
            # that ends at once is sometimes lost on Docker 20.10 under load (an empty MAC was seen so)
            link = bed.netns(name, ["ip", "-o", "link", "show", "dev", "eth0"])[1].split()
            inside = link[link.index("link/ether") + 1] if "link/ether" in link else ""
            assert (inside, bed.address(name)[1]) == (before[name], before[name]), name
            routes = bed.netns(name, ["ip", "-4", "route"])[1]
            assert "default" not in routes, f"{name} after its reboot: {routes}"
