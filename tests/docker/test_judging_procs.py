"""Negative controls for 4.8-5.10: anyone's server, judged from its processes; the book's bugs fail by name.

Each case runs one scenario with the user programs of tests/programs (built
once for the module, mounted at /opt/mine) and checks the verdict and the
words that explain it: the failing check's observed text names the bug, a
NOT_JUDGED verdict says why. The four servers the issue names (fork without
reaping, fork with one wait per signal, fork with a waitpid loop, one select
process) go through every scenario here with the line client; the
five-connection and two-writes clients where the client matters; threads and
asyncio servers, socat and a buffering client where they tell something.
"""

from __future__ import annotations

import pytest

from netbed.scenarios.lab import Verdict

from judging import assert_verdict, run_case

P, F, N = Verdict.PASSED, Verdict.FAILED, Verdict.NOT_JUDGED
NOT_REAPED = "the server does not reap its children (no SIGCHLD handler calling wait/waitpid, UNP 5.9)"
ONE_WAIT = ("the SIGCHLD handler calls wait once per signal, but signals are not queued; "
            "loop on waitpid(-1, &status, WNOHANG) (UNP 5.10)")
NOT_FORK = "serves every connection: not fork-per-client (UNP 4.8 forks a child per client)"
NO_SIGCHLD = "one process serves every connection: no child exits, so there is no SIGCHLD to handle"

# scenario, server, client (None: netbed's), verdict, words the verdict must show (failing checks or reason;
# a tuple: each of them)
CASES = [
    ("concurrent-server", "fork-noreap", "lines", P, "3 connections, 3 distinct children of pid"),
    ("concurrent-server", "fork-wait", "lines", P, "3 connections, 3 distinct children of pid"),
    ("concurrent-server", "fork-waitpid", "lines", P, "3 connections, 3 distinct children of pid"),
    ("concurrent-server", "select", "lines", F, f") {NOT_FORK}"),  # "one process (pid N) serves every ..."
    ("concurrent-server", "threads", "lines", F, f" threads {NOT_FORK}"),  # "... (pid N) with 4 threads serves"
    ("concurrent-server", "asyncio", "lines", F, f") {NOT_FORK}"),
    ("concurrent-server", "fork-noclose", "lines", F,
     ("it does not close the connected socket after fork (UNP 4.8: the parent closes connfd",
      "they do not close the listening socket after fork (UNP 4.8: the child closes listenfd)")),
    ("concurrent-server", "iterative", "lines", F, "(an iterative server: it serves one client at a time)"),
    ("concurrent-server", "fork-waitpid", "five", P, "15 connections, 15 distinct children of pid"),
    ("concurrent-server", "fork-waitpid", "two-writes", P, "3 connections, 3 distinct children of pid"),
    ("concurrent-server", "fork-waitpid", "socat", P, "3 connections, 3 distinct children of pid"),
    ("concurrent-server", "fork-waitpid", "buffered", N, "its stdout is buffered"),
    ("normal-termination", "fork-noreap", "lines", F, f"left a zombie: {NOT_REAPED}"),
    ("normal-termination", "fork-wait", "lines", P, "reaped"),
    ("normal-termination", "fork-waitpid", "lines", P, "reaped"),
    ("normal-termination", "select", "lines", P, "TIME-WAIT"),  # no children: only the close is judged
    ("normal-termination", "fork-waitpid", "five", P, "reaped"),
    ("normal-termination", "fork-noreap", "five", F, f"5 of 5 children left zombies: {NOT_REAPED}"),
    ("normal-termination", "fork-waitpid", "two-writes", P, "reaped"),
    ("sigchld-handler", "fork-noreap", "lines", F, f"left a zombie: {NOT_REAPED}"),
    ("sigchld-handler", "fork-wait", "lines", P, "reaped"),
    ("sigchld-handler", "fork-waitpid", "lines", P, "reaped"),
    ("sigchld-handler", "fork-wait-eintr", "lines", F,
     "the server exited with 'accept error: Interrupted system call': accept was interrupted by SIGCHLD"),
    ("sigchld-handler", "select", "lines", N, NO_SIGCHLD),
    ("sigchld-handler", "threads", "lines", N, NO_SIGCHLD),
    ("sigchld-handler", "asyncio", "lines", N, NO_SIGCHLD),
    ("eintr", "fork-wait-eintr", "lines", F,
     "the server exited with 'accept error: Interrupted system call': accept was interrupted by SIGCHLD and not "
     "restarted (UNP 5.9)"),
    ("eintr", "fork-wait", "lines", P, "still listens"),
    ("eintr", "fork-waitpid", "lines", P, "still listens"),
    ("eintr", "fork-noreap", "lines", P, "still listens"),  # no handler: nothing interrupts accept
    ("eintr", "select", "lines", N, NO_SIGCHLD),
    ("sigchld-multiple", "fork-wait", None, F, f"children left zombies: {ONE_WAIT}"),  # 1-4 of 5, or 4 of 5 stopped
    ("sigchld-multiple", "fork-waitpid", None, P, "0 zombies"),
    ("sigchld-multiple", "fork-noreap", None, F, f"5 of 5 children left zombies: {NOT_REAPED}"),
    ("sigchld-multiple", "fork-wait-eintr", None, F, "'accept error: Interrupted system call'"),
    ("sigchld-multiple", "select", None, N, "one process serves every connection"),
]


@pytest.mark.parametrize("scenario, server, client, verdict, words", CASES,
                         ids=[f"{s}-{sv or 'netbed'}-{cl or 'netbed'}" for s, sv, cl, *_ in CASES])
def test_verdict(scenario, server, client, verdict, words, built, tmp_path):
    assert_verdict(run_case(scenario, server, client, built, tmp_path), verdict, words)
