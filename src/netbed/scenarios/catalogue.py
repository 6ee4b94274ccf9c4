"""A scenario: one section of the book, its settings, and the function that reproduces it."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from netbed.scenarios.lab import Lab


@dataclass(frozen=True)
class Scenario:
    name: str
    section: str
    title: str
    doc: str
    run: Callable[[Lab], None]
    user_programs: bool = False
    server: tuple[str, ...] = ()            # netbed's echo_server switches
    server_program: str = "echo_server"     # or sum_server
    client_sysctls: dict[str, Any] = field(default_factory=dict)
    server_sysctls: dict[str, Any] = field(default_factory=dict)
    timers_s: float = 0.0                   # how long the TCP timers it waits on take, by its settings


def scenario(name: str, section: str, **settings: Any) -> Callable[[Callable[[Lab], None]], Scenario]:
    """Make a function into a Scenario; its module's docstring (the book's paragraph) is its doc."""
    def make(fn: Callable[[Lab], None]) -> Scenario:
        doc = inspect.getdoc(inspect.getmodule(fn)) or inspect.getdoc(fn) or name
        title = re.sub(r"^UNP [\d.]+(, [\d.]+)*:\s*", "", doc.splitlines()[0])
        return Scenario(name=name, section=section, title=title, doc=doc, run=fn, **settings)
    return make
