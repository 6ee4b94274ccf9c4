"""A fault that netbed does not ship, as someone else's package adds one: one module, installed with an entry point.

`install(folder)` writes the module and the metadata of an installed
distribution (`*.dist-info/entry_points.txt`, group "netbed.faults") into
`folder`; with `folder` on PYTHONPATH, every netbed process finds the fault,
exactly as after `pip install` of a package that declares:

    [project.entry-points."netbed.faults"]
    blackhole = "blackhole_fault"
"""

from __future__ import annotations

from pathlib import Path

MODULE = '''
"""blackhole: what reaches one TCP port of a host is dropped (the host and its other ports are untouched)."""

from netbed.backend import Backend
from netbed.faults.base import add_chain, chains, netns, remove_chain, running
from netbed.faults.registry import HOST, Param, fault

CHAIN = "NETBED-BLACKHOLE"


def _reopen(bed: Backend, host: str) -> list[str]:
    if CHAIN not in chains(bed, host):
        return []
    remove_chain(bed, host, CHAIN, ("INPUT",))
    return [f"{host}: blackhole"]


@fault("blackhole", "Drop every segment that reaches one TCP port of a host.", undo=_reopen,
       params=(HOST, Param("port", "The TCP port.", kind=int, range=(1, 65535))))
def blackhole(bed: Backend, host: str, port: int) -> None:
    running(bed, host, "blackhole")
    if CHAIN not in chains(bed, host):
        add_chain(bed, host, CHAIN, "INPUT")
    netns(bed, host, ["iptables", "-w", "-A", CHAIN, "-p", "tcp", "--dport", str(port), "-j", "DROP"])
'''


def install(folder: Path) -> Path:
    """The plugin as an installed distribution in `folder` (put it on PYTHONPATH); returns `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "blackhole_fault.py").write_text(MODULE)
    info = folder / "blackhole_fault-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: blackhole-fault\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[netbed.faults]\nblackhole = blackhole_fault\n")
    return folder
