"""A scenario: one section of the book, its settings, and the function that reproduces it."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from netbed.scenarios.lab import Lab

ROLES = ("server", "client")


@dataclass(frozen=True)
class Scenario:
    """A scenario, and which of the user's programs it can judge.

    `takes` names the roles ("server", "client") for which it runs and judges
    the user's program; for the others it runs netbed's own, and `own` says
    why (shown by `netbed list` and in the verdict).
    """

    name: str
    section: str
    title: str
    doc: str
    run: Callable[[Lab], None]
    takes: tuple[str, ...] = ()
    own: str = ""                           # why the roles it does not take stay netbed's
    server: tuple[str, ...] = ()            # netbed's echo_server switches
    server_program: str = "echo_server"     # or sum_server
    client_sysctls: dict[str, Any] = field(default_factory=dict)
    server_sysctls: dict[str, Any] = field(default_factory=dict)
    timers_s: float = 0.0                   # how long the TCP timers it waits on take, by its settings

    def __post_init__(self) -> None:
        unknown = set(self.takes) - set(ROLES)
        if unknown:
            raise ValueError(f"{self.name}: takes {sorted(unknown)}; a scenario takes the user's {' or '.join(ROLES)}")
        if set(self.takes) != set(ROLES) and not self.own:
            raise ValueError(f"{self.name}: say in `own` why it keeps netbed's own programs")

    @property
    def user_programs(self) -> bool:
        """Whether it takes any of the user's programs."""
        return bool(self.takes)

    def refuses(self, roles: set[str]) -> str:
        """Why none of the user's programs for these roles can be judged here ('' when one can)."""
        if not roles or roles & set(self.takes):
            return ""
        return f"{self.name} judges netbed's own {' and '.join(sorted(roles))}: {self.own}"


def scenario(name: str, section: str, **settings: Any) -> Callable[[Callable[[Lab], None]], Scenario]:
    """Make a function into a Scenario; its module's docstring (the book's paragraph) is its doc."""
    def make(fn: Callable[[Lab], None]) -> Scenario:
        doc = inspect.getdoc(inspect.getmodule(fn)) or inspect.getdoc(fn) or name
        title = re.sub(r"^UNP [\d.]+(, [\d.]+)*:\s*", "", doc.splitlines()[0])
        return Scenario(name=name, section=section, title=title, doc=doc, run=fn, **settings)
    return make
