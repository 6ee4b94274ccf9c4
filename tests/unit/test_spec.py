"""The testbed spec on compose models alone: netbed's subnets, static addresses and MACs, internal networks."""

from __future__ import annotations

import pytest

from netbed import spec

LABELS = {"org.netbed.project": "p"}


def model(services: dict, networks: dict) -> dict:
    return {"services": services, "networks": networks}


def test_a_file_that_pins_its_own_subnet_gets_netbeds_with_the_same_last_octets_and_macs():
    m = model({"web": {"networks": {"lan": {"ipv4_address": "172.28.5.7"}}, "mac_address": "02:00:00:00:00:07"},
               "db": {"networks": {"lan": None}}},
              {"lan": {"ipam": {"config": [{"subnet": "172.28.5.0/24", "gateway": "172.28.5.254"}]}}})
    out = spec.override(m, ["web", "db"], {}, LABELS, {"lan": "10.201.3"})
    assert out["networks"]["lan"] == {"labels": LABELS, "internal": True,
                                      "ipam": {"config": [{"subnet": "10.201.3.0/24", "gateway": "10.201.3.1"}]}}
    assert out["services"]["web"]["networks"] == {"lan": {"ipv4_address": "10.201.3.7"}}
    assert out["services"]["web"]["mac_address"] == "02:00:00:00:00:07", "a pinned MAC stays"
    assert out["services"]["db"]["networks"] == {"lan": {"ipv4_address": "10.201.3.10"}}
    assert out["services"]["db"]["mac_address"] == "02:42:0a:c9:03:0a", "derived from the address, on any engine"


def test_free_octets_never_take_a_pinned_one_and_each_network_has_its_own():
    m = model({"a": {"networks": ["x", "y"]}, "b": {"networks": {"x": {"ipv4_address": "10.0.0.10"}}},
               "c": {"networks": ["y"]}},
              {"x": {}, "y": {}, "ext": {"external": True}})
    assert spec.created_networks(m) == ["x", "y"]
    out = spec.addressing(m, ["a", "b", "c"], {"x": "10.210.0", "y": "10.211.0"})
    assert out["b"]["networks"] == {"x": {"ipv4_address": "10.210.0.10"}}
    assert out["a"]["networks"] == {"x": {"ipv4_address": "10.210.0.11"}, "y": {"ipv4_address": "10.211.0.10"}}
    assert out["c"]["networks"] == {"y": {"ipv4_address": "10.211.0.11"}}
    assert "ext" not in spec.override(m, ["a", "b", "c"], {}, LABELS, {"x": "10.210.0", "y": "10.211.0"})["networks"]


def test_the_callers_settings_win_and_a_host_without_networks_gets_no_address():
    m = model({"a": {"networks": ["x"]}, "b": {"network_mode": "service:a"}}, {"x": {}})
    out = spec.override(m, ["a", "b"], {"a": {"mac_address": "02:00:00:00:00:99", "command": ["true"]}},
                        LABELS, {"x": "10.220.0"})
    assert out["services"]["a"]["mac_address"] == "02:00:00:00:00:99" and out["services"]["a"]["command"] == ["true"]
    assert out["services"]["b"] == {"labels": LABELS}


def test_a_network_with_ipv6_keeps_its_ipv6_subnet():
    m = model({"a": {"networks": ["x"]}},
              {"x": {"enable_ipv6": True, "ipam": {"config": [{"subnet": "172.30.0.0/24"}, {"subnet": "fd00:1::/64"}]}}})
    config = spec.override(m, ["a"], {}, LABELS, {"x": "10.230.0"})["networks"]["x"]["ipam"]["config"]
    assert config == [{"subnet": "10.230.0.0/24", "gateway": "10.230.0.1"}, {"subnet": "fd00:1::/64"}]


def test_more_hosts_than_a_slash_24_holds_is_an_error():
    m = model({f"h{i}": {"networks": ["x"]} for i in range(250)}, {"x": {}})
    with pytest.raises(ValueError, match="more hosts than a /24"):
        spec.addressing(m, list(m["services"]), {"x": "10.240.0"})


def test_a_cluster_keeps_the_top_octets_for_its_recorders():
    hosts = [f"h{i}" for i in range(245)]
    m = model({h: {"networks": {"lan": None}} for h in hosts}, {"lan": {}})
    assert len(spec.addressing(m, hosts, {"lan": "10.9.9"})) == 245  # .10 to .254 on one engine
    with pytest.raises(ValueError, match="more hosts than a /24"):
        spec.addressing(m, hosts, {"lan": "10.9.9"}, last_host=spec.LAST_HOST - 3)
    kept = spec.addressing(m, hosts[:242], {"lan": "10.9.9"}, last_host=spec.LAST_HOST - 3)
    assert max(int(a["networks"]["lan"]["ipv4_address"].rsplit(".", 1)[1]) for a in kept.values()) == 251
