"""A partition: the link between two hosts is cut, both ways or one (UNP 5.14's 'network down')."""

from __future__ import annotations

from typing import Any

from netbed.backend import Backend
from netbed.faults.base import FaultError, add_chain, chains, netns, remove_chain, running
from netbed.faults.registry import Param, fault

PARTITION_CHAIN = "NETBED-PARTITION"


def _mend(bed: Backend, host: str) -> list[str]:
    if PARTITION_CHAIN not in chains(bed, host):
        return []
    remove_chain(bed, host, PARTITION_CHAIN, ("INPUT",))
    return [f"{host}: partition"]


def _two_hosts(values: dict[str, Any]) -> dict[str, Any]:
    if values["a"] == values["b"]:
        raise FaultError(f"partition: {values['a']} and {values['b']} are the same host; "
                         "name the two ends of the link")
    return values


def _cut(values: dict[str, Any], _: Any) -> str:
    return f"partition: {values['a']} {'->' if values.get('one_way') else '<->'} {values['b']} cut"


@fault("partition", "Cut the link between two hosts.", undo=_mend, prepare=_two_hosts, said=_cut,
       params=(Param("a", "one end", positional=True), Param("b", "the other end", positional=True),
               Param("one_way", "Only what A sends to B is lost.", kind=bool, default=False)))
def partition(bed: Backend, a: str, b: str, one_way: bool = False) -> None:
    """Cut the link between a and b (only a -> b with one_way).

    Each receiver drops what comes from the other, so both sides' segments
    still cross the bridge and the capture shows every retransmission.
    """
    _two_hosts({"a": a, "b": b})
    for host in (a, b):
        running(bed, host, "partition")
        if not bed.host(host).ip:
            raise FaultError(f"partition: {host} has no address on the testbed's network")
    pairs = [(b, a)] if one_way else [(b, a), (a, b)]
    rules = {receiver: ["-s", bed.host(sender).ip, "-j", "DROP"] for receiver, sender in pairs}
    for receiver, sender in pairs:  # all checked before anything is installed
        if netns(bed, receiver, ["iptables", "-w", "-C", PARTITION_CHAIN, *rules[receiver]], check=False) == 0:
            raise FaultError(f"partition: {receiver} already drops what {sender} sends")
    done: list[tuple[str, bool]] = []
    try:
        for receiver, _ in pairs:
            made = PARTITION_CHAIN not in chains(bed, receiver)
            done.append((receiver, made))
            if made:
                add_chain(bed, receiver, PARTITION_CHAIN, "INPUT")
            netns(bed, receiver, ["iptables", "-w", "-A", PARTITION_CHAIN, *rules[receiver]])
    except BaseException:
        for receiver, made in done:  # all or nothing
            if made:
                remove_chain(bed, receiver, PARTITION_CHAIN, ("INPUT",))
            else:
                netns(bed, receiver, ["iptables", "-w", "-D", PARTITION_CHAIN, *rules[receiver]], check=False)
        raise
