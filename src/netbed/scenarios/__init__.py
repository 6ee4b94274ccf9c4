"""The scenario catalogue: Unix Network Programming ch. 4-5, one module per section."""

from __future__ import annotations

from netbed.scenarios.catalogue import Scenario
from netbed.scenarios.accept_abort import accept_abort
from netbed.scenarios.concurrent_server import concurrent_server
from netbed.scenarios.data_format_binary import data_format_binary
from netbed.scenarios.data_format_text import data_format_text
from netbed.scenarios.eintr import eintr
from netbed.scenarios.heartbeat_pause import heartbeat_pause
from netbed.scenarios.keepalive_crash import keepalive_crash
from netbed.scenarios.keepalive_reboot import keepalive_reboot
from netbed.scenarios.lab import Lab, Programs, ScenarioError
from netbed.scenarios.normal_termination import normal_termination
from netbed.scenarios.partition_heal import partition_heal
from netbed.scenarios.server_host_crash import server_host_crash
from netbed.scenarios.server_host_reboot import server_host_reboot
from netbed.scenarios.server_host_shutdown import server_host_shutdown
from netbed.scenarios.server_process_killed import server_process_killed
from netbed.scenarios.sigchld_handler import sigchld_handler
from netbed.scenarios.sigchld_multiple import sigchld_multiple
from netbed.scenarios.sigpipe import sigpipe

CATALOGUE: tuple[Scenario, ...] = (
    concurrent_server,
    normal_termination,
    sigchld_handler,
    eintr,
    sigchld_multiple,
    accept_abort,
    server_process_killed,
    sigpipe,
    server_host_crash,
    server_host_reboot,
    server_host_shutdown,
    keepalive_crash,
    keepalive_reboot,
    heartbeat_pause,
    partition_heal,
    data_format_text,
    data_format_binary,
)


def find(names: list[str]) -> list[Scenario]:
    """The scenarios with these names, in the order given; an unknown name is an error."""
    by_name = {s.name: s for s in CATALOGUE}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ScenarioError(f"no scenario {', '.join(unknown)}: `netbed list` shows them all")
    return [by_name[n] for n in names]


__all__ = ["CATALOGUE", "Lab", "Programs", "Scenario", "ScenarioError", "find"]
