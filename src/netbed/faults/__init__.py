"""Faults, each made the way it looks on the wire (DESIGN.md, "The fault model").

A fault acts on a testbed through `netbed.backend` only, returns once it is in
effect (checked, not slept on), and notes itself on the capture. Each is
declared in the registry (`registry.fault`): its name, parameters, how it is
applied and how it is undone; the CLI, the scenario lab and the pytest plugin
are made from the registry. netbed's own, one module per kind:

    processes.py  pause, unpause, kill, shutdown
    hosts.py      crash, reboot
    partition.py  partition
    impair.py     impair (netem, or iptables statistic + tbf + the NFQUEUE shaper)
    nodes.py      node_crash, node_reboot, node_partition: a whole node of a testbed across a cluster
    heal.py       heal: every registered undo, on one host or all
    base.py       the error, the waits, commands in a host's network namespace
"""

from netbed.faults.base import FaultError, parse_chains, parse_links, parse_root_qdisc
from netbed.faults.hosts import crash, reboot
from netbed.faults.impair import DELAY_MAX_MS, NETEM, PORTABLE, RATE_KBIT, Impairment, Mechanism, impair
from netbed.faults.nodes import node_crash, node_partition, node_reboot
from netbed.faults.partition import PARTITION_CHAIN, partition
from netbed.faults.processes import GRACE_MAX_S, check_pid, kill, pause, shutdown, signal_name, unpause
from netbed.faults.heal import heal
from netbed.faults.registry import HOST, Bound, Fault, Param, apply, fault, get, registered

__all__ = ["DELAY_MAX_MS", "GRACE_MAX_S", "HOST", "NETEM", "PARTITION_CHAIN", "PORTABLE", "RATE_KBIT", "Bound",
           "Fault", "FaultError", "Impairment", "Mechanism", "Param", "apply", "check_pid", "crash", "fault", "get",
           "heal", "impair", "kill", "node_crash", "node_partition", "node_reboot", "parse_chains", "parse_links",
           "parse_root_qdisc", "partition", "pause", "reboot", "registered", "shutdown", "signal_name", "unpause"]
