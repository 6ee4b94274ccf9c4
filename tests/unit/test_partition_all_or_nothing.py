"""A partition is installed on both receivers or on neither: checked against a fake namespace's iptables."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from netbed import faults


@dataclass
class Tables:
    """Just enough of iptables in one namespace: chains, jumps from INPUT, rules."""

    chains: set[str] = field(default_factory=set)
    jumps: list[str] = field(default_factory=list)
    rules: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)

    def run(self, args: list[str]) -> int:
        op, rest = args[0], args[1:]
        if op == "-N":
            self.chains.add(rest[0])
            self.rules[rest[0]] = []
        elif op == "-I":
            self.jumps.append(rest[-1])
        elif op == "-D" and rest[0] == "INPUT":
            if rest[-1] not in self.jumps:
                return 1
            self.jumps.remove(rest[-1])
        elif op in ("-A", "-C", "-D"):
            if rest[0] not in self.chains:
                return 1
            rule = tuple(rest[1:])
            if op == "-A":
                self.rules[rest[0]].append(rule)
            elif rule not in self.rules[rest[0]]:
                return 1
            elif op == "-D":
                self.rules[rest[0]].remove(rule)
        elif op == "-F":
            self.rules[rest[0]] = []
        elif op == "-X":
            self.chains.discard(rest[0])
        return 0

    def show(self) -> str:
        return "".join(f"-N {c}\n" for c in sorted(self.chains))


class FakeBed:
    def __init__(self, fail_on: str) -> None:
        self.tables = {"client": Tables(), "server": Tables()}
        self.fail_on = fail_on  # the host where appending a DROP rule fails

    def own(self, host: str) -> None:
        """The host's namespaces are its own (a fake has none to share)."""

    def status(self, host: str) -> str:
        return "running"

    def note(self, text: str) -> None:
        """Faults note themselves on the testbed (for the capture's comments); nothing to keep here."""

    def host(self, host: str):
        return SimpleNamespace(ip={"client": "10.0.0.20", "server": "10.0.0.10"}[host])

    def netns(self, host: str, argv: list[str]) -> tuple[int, str]:
        args = argv[2:]  # after "iptables -w"
        if args == ["-S"]:
            return 0, self.tables[host].show()
        if args[0] == "-A" and host == self.fail_on:
            return 1, "iptables: out of memory"
        return self.tables[host].run(args), ""


@pytest.mark.parametrize("fail_on", ["client", "server"])
def test_a_partition_that_fails_half_way_leaves_neither_side_cut(fail_on):
    bed = FakeBed(fail_on)
    with pytest.raises(faults.FaultError, match="out of memory"):
        faults.partition(bed, "client", "server")
    for host, tables in bed.tables.items():
        assert tables.chains == set() and tables.jumps == [], (host, tables)


def test_a_partition_that_succeeds_cuts_both_sides():
    bed = FakeBed(fail_on="")
    faults.partition(bed, "client", "server")
    assert bed.tables["server"].rules[faults.PARTITION_CHAIN] == [("-s", "10.0.0.20", "-j", "DROP")]
    assert bed.tables["client"].rules[faults.PARTITION_CHAIN] == [("-s", "10.0.0.10", "-j", "DROP")]
