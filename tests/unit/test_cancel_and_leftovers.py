"""Calling work off, and what `netbed clean` takes for a leftover: no Docker needed."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time

import pytest

from netbed.errors import Cancelled
from netbed.observe import wait_for
from netbed.backend.compose.testbed import Leftover, _over


def test_a_wait_ends_within_a_poll_once_called_off():
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled, match="the moon"):
        wait_for(lambda: False, timeout=30, what="the moon", cancel=cancel)
    assert time.monotonic() - started < 1


def test_a_wait_that_is_called_off_before_it_starts_looks_at_nothing():
    cancel = threading.Event()
    cancel.set()
    looked = []
    with pytest.raises(Cancelled):
        wait_for(lambda: looked.append(1), timeout=30, what="anything", cancel=cancel)
    assert looked == []


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


HERE = socket.gethostname()
OLD = "2000-01-01T00:00:00+00:00"


def item(owner: str, started: str = OLD) -> Leftover:
    return Leftover("container", "c", "netbed-x", owner, started)


@pytest.mark.parametrize("owner, older_than_s, kept, over", [
    (f"{HERE}:LIVE", None, False, False),            # a live run: never, however old
    (f"{HERE}:LIVE", 0, True, False),
    (f"{HERE}:DEAD", None, False, True),             # its process is gone
    (f"{HERE}:kept", None, False, False),            # kept on purpose: only with --kept
    (f"{HERE}:cli", 0, False, False),
    (f"{HERE}:kept", None, True, True),
    (f"{HERE}:cli", 0, True, True),
    ("elsewhere:123", None, False, False),           # another machine's: only by age
    ("elsewhere:123", 3600, False, True),
    ("", 3600, False, True),
])
def test_what_clean_takes_for_a_leftover(owner, older_than_s, kept, over):
    owner = owner.replace("DEAD", str(dead_pid())).replace("LIVE", str(os.getpid()))
    assert _over(item(owner), older_than_s, None, kept) is over


def test_a_kept_testbed_younger_than_older_than_stays_even_with_kept():
    young = item(f"{HERE}:kept", started=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()))
    assert _over(young, 3600, None, True) is False
