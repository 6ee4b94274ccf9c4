"""Progress of long steps, as events: the core reports, the front end renders.

The core never prints. A long step (installing the engine, bootstrapping the
base image, running a scenario) calls a `Reporter` with `Event`s; the CLI
draws them in the terminal, pytest ignores them.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Iterator


class Phase(Enum):
    START = "start"
    INFO = "info"
    DONE = "done"
    SKIP = "skip"
    FAIL = "fail"


@dataclass(frozen=True)
class Event:
    step: str
    phase: Phase
    detail: str = ""
    seconds: float | None = None


Reporter = Callable[[Event], None]


def silent(_event: Event) -> None:
    """The reporter for callers that want no progress (tests, libraries)."""


class StepRun:
    """A step in progress: lets the step say what it is doing, or that it had nothing to do."""

    def __init__(self, report: Reporter, name: str) -> None:
        self._report = report
        self.name = name
        self.skipped = ""

    def info(self, detail: str) -> None:
        self._report(Event(self.name, Phase.INFO, detail))

    def skip(self, why: str) -> None:
        self.skipped = why


@contextmanager
def step(report: Reporter, name: str) -> Iterator[StepRun]:
    """Report START, then DONE with the duration, SKIP, or FAIL if the body raises."""
    started = time.monotonic()
    report(Event(name, Phase.START))
    run = StepRun(report, name)
    try:
        yield run
    except BaseException as exc:
        report(Event(name, Phase.FAIL, str(exc) or type(exc).__name__, time.monotonic() - started))
        raise
    phase = Phase.SKIP if run.skipped else Phase.DONE
    report(Event(name, phase, run.skipped, time.monotonic() - started))
