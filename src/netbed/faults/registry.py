"""The fault registry: each fault declares its name, its parameters, how it is applied and how it is undone.

The CLI's fault commands, the scenario lab's verbs (`lab.crash(host)`) and
the pytest plugin's `faults` fixture are all made from the registry, so a new
fault is one module holding one decorated function:

    @fault("blackhole", "Drop what reaches the host's port.", params=(HOST, Param("port", kind=int)),
           undo=_open_port)
    def blackhole(bed: Backend, host: str, port: int) -> None: ...

As Jepsen's nemesis, a fault is applied, then undone: by `heal` (which calls
every registered `undo` on each host) or by another verb named in
`undone_by` (a crash ends with `reboot`). Someone else's package adds faults
through the entry-point group "netbed.faults": each entry names a module that
registers its faults when imported; they are loaded the first time the
registry is read.
"""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, TypeVar

from netbed.backend import Backend
from netbed.errors import NetbedError
from netbed.faults.base import FaultError

ENTRY_POINTS = "netbed.faults"
NAME = re.compile(r"[a-z][a-z0-9_]*")
T = TypeVar("T")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Param:
    """One parameter of a fault, as the CLI shows it and the API takes it (the same name in both)."""

    name: str
    help: str = ""
    kind: type = str                             # str, int, float, or bool for a flag
    default: Any = REQUIRED
    positional: bool = False                     # an argument (HOST) rather than an option (--grace)
    range: tuple[float, float] | None = None     # a number's bounds, inclusive, refused at parse time
    check: Callable[[Any], Any] | None = None    # the API's own check of one value (returns it, maybe normalised)


HOST = Param("host", "the host", positional=True)


@dataclass(frozen=True)
class Fault:
    """A registered fault. `apply(bed, **values)` acts and returns once the fault is in effect."""

    name: str
    summary: str                                 # one line: the CLI's help, `netbed --help`'s list
    apply: Callable[..., Any]
    params: tuple[Param, ...] = (HOST,)
    undo: Callable[[Backend, str], list[str]] | None = None   # `heal` on one host: what it undid, [] for nothing
    undone_by: str = ""                          # the verb that ends it when `heal` does not
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # the user's values -> apply's; raises
    said: Callable[[dict[str, Any], Any], str] | None = None           # the CLI's line once it is done

    @property
    def command(self) -> str:
        """Its name on the command line."""
        return self.name.replace("_", "-")

    def arguments(self, values: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments of `apply` for the user's values, checked (a FaultError says what is wrong)."""
        return self.prepare(values) if self.prepare else values


_faults: dict[str, Fault] = {}   # the one registry: faults are named by the modules that define them


def fault(name: str, summary: str, *, params: tuple[Param, ...] = (HOST,),
          undo: Callable[[Backend, str], list[str]] | None = None, undone_by: str = "",
          prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
          said: Callable[[dict[str, Any], Any], str] | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Register the decorated function as a fault; it comes back noted (see `noted`)."""
    def register(apply: Callable[..., T]) -> Callable[..., T]:
        if not NAME.fullmatch(name):
            raise ValueError(f"fault name {name!r}: lowercase letters, digits and '_', starting with a letter")
        if name in _faults:
            raise ValueError(f"a fault named {name!r} is registered already (by {_faults[name].apply.__module__})")
        accepted = inspect.signature(apply).parameters
        missing = [p.name for p in params if p.name not in accepted]
        if missing and not prepare:
            raise ValueError(f"fault {name}: {apply.__name__}() takes no parameter {', '.join(missing)}")
        applied = noted(apply, name)
        _faults[name] = Fault(name, summary, applied, params, undo, undone_by, prepare, said)
        return applied
    return register


def noted(apply: Callable[..., T], name: str) -> Callable[..., T]:
    """Each fault notes itself on the testbed as it begins, so the capture carries it as a comment
    just before the frames it causes (a kill's FIN, a reboot's RST); a fault that fails says so too."""

    @functools.wraps(apply)
    def applied(bed: Backend, *args: Any, **kwargs: Any) -> T:
        said = " ".join([name, *map(str, args), *(f"{k}={v}" for k, v in kwargs.items() if v is not None)])
        bed.note(said)
        try:
            return apply(bed, *args, **kwargs)
        except NetbedError as exc:
            bed.note(f"{said}: failed: {exc}")
            raise
    return applied


def registered() -> dict[str, Fault]:
    """Every fault: netbed's own, then those of installed packages (entry points "netbed.faults")."""
    _load_entry_points()
    return dict(_faults)


def get(name: str) -> Fault:
    found = registered().get(name.replace("-", "_"))
    if found is None:
        raise FaultError(f"no fault {name!r}: the faults are {', '.join(sorted(registered()))}")
    return found


def apply(bed: Backend, name: str, *args: Any, **kwargs: Any) -> Any:
    """Apply the fault called `name` to the testbed."""
    return get(name).apply(bed, *args, **kwargs)


@functools.cache
def _load_entry_points() -> None:
    for entry in metadata.entry_points(group=ENTRY_POINTS):
        try:
            entry.load()
        except Exception as exc:  # someone else's module: say which, in one line
            raise FaultError(f"the faults of {entry.value} (entry point {entry.name!r}) could not be loaded: "
                             f"{type(exc).__name__}: {exc}") from None


@dataclass
class Bound:
    """The registered faults bound to one testbed: `faults.crash("server")` (the pytest plugin's fixture)."""

    bed: Backend
    _names: frozenset[str] = field(default_factory=lambda: frozenset(registered()), repr=False)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name not in self._names:
            raise AttributeError(f"no fault {name!r}: the faults are {', '.join(sorted(self._names))}")
        return functools.partial(get(name).apply, self.bed)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._names})
