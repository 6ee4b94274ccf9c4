"""Watching a testbed: waiting for conditions with deadlines, never sleeping blind."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

from netbed.errors import NetbedError

T = TypeVar("T")
POLL_SECONDS = 0.05


class WaitTimeout(NetbedError, AssertionError):
    """A condition did not come true in time; says what was awaited and what was last seen."""


def wait_for(probe: Callable[[], T], until: Callable[[T], bool] = bool, *, timeout: float,
             what: str) -> T:
    """Poll `probe` until `until(observation)` holds; return that observation.

    The deadline comes from the caller (usually from the TCP timers in play);
    on timeout the error names `what` was awaited and the last observation.
    """
    deadline = time.monotonic() + timeout
    while True:
        seen = probe()
        if until(seen):
            return seen
        if time.monotonic() >= deadline:
            shown = repr(seen)
            if len(shown) > 400:
                shown = shown[:200] + " ... " + shown[-200:]
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}; last seen: {shown}")
        time.sleep(POLL_SECONDS)
