"""Heal: undo, on one host or all, every fault that registered an undo (partitions, impairments, ...)."""

from __future__ import annotations

from typing import Any

from netbed.backend import Backend
from netbed.faults.base import FaultError
from netbed.faults.registry import Param, fault, registered


def _healed(_: dict[str, Any], healed: list[str]) -> str:
    return "\n".join(f"healed {what}" for what in healed)


@fault("heal", "Undo partitions and impairments (on one host, or all).", said=_healed,
       params=(Param("host", "the host (default: every host)", positional=True, default=None),))
def heal(bed: Backend, host: str | None = None) -> list[str]:
    """Undo what can be undone on one host or all; returns what was healed ("server: partition")."""
    undos = [f.undo for f in registered().values() if f.undo is not None]
    healed: list[str] = []
    for name in [host] if host else sorted(bed.hosts):
        bed.own(name)
        if bed.status(name) != "running":
            continue
        for undo in undos:
            healed += undo(bed, name)
    if not healed:
        raise FaultError(f"heal: nothing to heal on {host or 'any host'} (no partition or impairment in place)")
    return healed
