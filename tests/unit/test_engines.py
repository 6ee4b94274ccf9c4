"""The second engine's set-up, judged without starting it: names, paths, containerd's configuration, versions."""

from __future__ import annotations

import tomllib

from netbed.backend import guard
from netbed.backend.compose import engines


def test_the_second_engine_has_everything_of_its_own(monkeypatch):
    rel = engines.release("26.1")
    assert rel.host == "unix:///run/netbed-docker26.sock"
    assert (rel.netns, rel.cgroup_parent) == ("netbed-docker26", "/netbed-docker26")
    monkeypatch.setenv("DOCKER_HOST", rel.host)
    assert guard.engine_pidfile() == str(rel.pidfile), "the guard finds its daemon's namespace from DOCKER_HOST"
    assert str(rel.data).startswith("/var/lib/netbed/engines/") and str(rel.run).startswith("/run/netbed-")
    config = tomllib.loads(engines._containerd_config(rel))
    assert config["grpc"]["address"] == str(rel.run / "containerd.sock")
    assert (config["root"], config["state"]) == (str(rel.data / "containerd"), str(rel.run / "containerd"))
    assert "io.containerd.grpc.v1.cri" in config["disabled_plugins"]


def test_an_unknown_release_is_one_line():
    try:
        engines.release("99.0")
    except engines.EngineError as exc:
        assert str(exc) == "netbed knows no engine '99.0' (known: 26.1)"
    else:
        raise AssertionError("no error")


def test_the_debian_version_must_be_the_upstream_release():
    assert engines.is_release("26.1.5+dfsg1-9+deb13u1+b1", "26.1.5")
    assert engines.is_release("1.7.24~ds1-6+deb13u1", "1.7.24")
    assert not engines.is_release("26.1.50-1", "26.1.5")
    assert not engines.is_release("1:26.1.6-1", "26.1.5")
