"""The fault registry: what a fault declares is what the CLI, the lab and the plugin's fixture offer."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from faultplugin import install

from netbed import faults
from netbed.faults.registry import HOST, Param, fault
from netbed.scenarios.lab import Lab


def netbed(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netbed", *args], capture_output=True, text=True, timeout=60,
                          env=env, stdin=subprocess.DEVNULL)


def test_every_fault_of_netbeds_own_is_registered_with_its_undo():
    found = faults.registered()
    assert set(found) == {"pause", "unpause", "kill", "shutdown", "crash", "reboot", "partition", "impair", "heal",
                          "node_crash", "node_reboot", "node_partition"}
    assert {name for name, f in found.items() if f.undo} == {"partition", "impair", "node_partition"}
    assert {name: f.undone_by for name, f in found.items() if f.undone_by} == \
        {"pause": "unpause", "crash": "reboot", "shutdown": "reboot", "node_crash": "node-reboot"}
    assert [p.name for p in found["impair"].params] == ["host", "delay", "jitter", "loss", "rate", "duplicate",
                                                        "reorder"]


def test_every_registered_fault_is_a_cli_command_with_its_parameters():
    listed = netbed("--help").stdout
    for f in faults.registered().values():
        assert f"  {f.command} " in listed, f.command
    shutdown = netbed("shutdown", "--help").stdout
    assert "--grace" in shutdown and "Undone by `netbed reboot`" in shutdown, shutdown


def test_a_plugin_fault_is_found_through_its_entry_point_and_checked_at_parse_time(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(install(tmp_path / "plugin"))}
    assert "blackhole" in netbed("--help", env=env).stdout
    for args, says in ((["blackhole", "server", "--port", "0"], "--port"), (["blackhole"], "HOST"),
                       (["blackhole", "server"], "--port")):
        done = netbed(*args, env=env)
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "blackhole" not in netbed("--help").stdout, "without the plugin installed, no such command"


def test_a_plugin_that_fails_to_load_is_one_line(tmp_path):
    plugin = install(tmp_path / "plugin")
    (plugin / "blackhole_fault.py").write_text("raise RuntimeError('broken on purpose')\n")
    done = netbed("--help", env={**os.environ, "PYTHONPATH": str(plugin)})
    assert done.returncode == 1, done.stdout
    assert done.stderr.strip().splitlines() == [
        "netbed: the faults of blackhole_fault (entry point 'blackhole') could not be loaded: "
        "RuntimeError: broken on purpose"], done.stderr


def test_a_fault_is_refused_a_taken_name_or_parameters_its_function_lacks():
    with pytest.raises(ValueError, match="registered already"):
        fault("crash", "again")(lambda bed, host: None)
    with pytest.raises(ValueError, match="takes no parameter port"):
        fault("stray", "x", params=(HOST, Param("port", kind=int)))(lambda bed, host: None)
    with pytest.raises(ValueError, match="lowercase"):
        fault("Bad-Name", "x")(lambda bed, host: None)
    assert "stray" not in faults.registered()


def test_the_lab_and_the_fixture_offer_every_registered_fault_and_nothing_else():
    lab = Lab.__new__(Lab)
    bound = faults.Bound(bed=None)  # type: ignore[arg-type]  # not called: only looked up
    for name in faults.registered():
        assert callable(getattr(lab, name)) and callable(getattr(bound, name))
    for obj in (lab, bound):
        with pytest.raises(AttributeError, match="no fault|no attribute"):
            obj.explode
