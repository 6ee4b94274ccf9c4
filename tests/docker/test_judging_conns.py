"""Negative controls for 5.11-5.13 and 5.18: anyone's programs, right ones pass, the book's bugs fail by name.

Each case runs one scenario with the user programs of tests/programs (built
once for the module, mounted at /opt/mine) and checks the verdict and the
words that explain it: the failing check's observed text names the bug, a
NOT_JUDGED verdict says why.
"""

from __future__ import annotations

import pytest

from netbed.scenarios import Programs, find, runner
from netbed.scenarios.lab import Verdict

from judging import CLIENTS, MOUNT, SERVERS, assert_verdict, run_case, said


P, F, N = Verdict.PASSED, Verdict.FAILED, Verdict.NOT_JUDGED

# scenario, server, client (None: netbed's), verdict, words the verdict must show (failing check or reason)
CASES = [
    ("accept-abort", "fork-waitpid", None, P, "the same process still listens"),
    ("accept-abort", "dies-on-abort", None, F,
     "the server exited when a connection was reset before accept (exit status 1; its last words: 'getpeername "
     "error: Transport endpoint is not connected'): a connection can be aborted between the handshake and accept"),
    ("accept-abort", "select", None, P, "the same process still listens"),
    ("accept-abort", "asyncio", None, P, "the same process still listens"),
    ("accept-abort", "threads", None, P, "the same process still listens"),
    ("accept-abort", "fork-noreap", None, P, "the same process still listens"),
    ("server-process-killed", "fork-waitpid", "lines", P, "is gone while the parent"),
    ("server-process-killed", "fork-waitpid", "five", P, "is gone while the parent"),
    ("server-process-killed", "fork-noreap", "two-writes", P, "is gone while the parent"),
    ("server-process-killed", "fork-waitpid", "ignores-errors", F,
     "the client ignored the server's FIN and the RST: it exited 0 without a word (UNP 5.12: str_cli must report "
     "'server terminated prematurely')"),
    ("server-process-killed", "select", "lines", N,
     "serves every connection: killing it kills the server, not a child (UNP 5.12 kills the child of a "
     "fork-per-client server)"),
    ("server-process-killed", "threads", "lines", N, "serves every connection: killing it kills the server"),
    ("server-process-killed", "fork-waitpid", "buffered", N, "its stdout is buffered"),
    ("sigpipe", "fork-waitpid", "two-writes", P, "killed by SIGPIPE, silently, as the book's client"),
    ("sigpipe", "fork-waitpid", "two-writes-epipe", P, "it ignores or catches SIGPIPE and reports EPIPE"),
    ("sigpipe", "fork-waitpid", "lines", N,
     "the client wrote the line in one write; SIGPIPE needs a second write after the RST, as UNP 5.13's client "
     "writes the first byte, sleeps, then the rest"),
    ("sigpipe", "fork-waitpid", "ignores-errors", F, "it ignores SIGPIPE and never checks write's result (EPIPE)"),
    ("sigpipe", "asyncio", "two-writes", N, "serves every connection: killing it kills the server"),
    ("sigpipe", "fork-waitpid", None, P, "killed by signal 13"),
    ("data-format-text", "sum-text", None, P, "'33'"),
    ("data-format-text", "sum-text-atoi", None, F,
     "answered '0' to 'one two', not 'input error': the server does not check that the line holds two numbers"),
    ("data-format-text", "fork-waitpid", None, N,
     "the server echoes '11 22' instead of answering its sum: 5.18 needs the book's sum server (str_echo08/09)"),
    ("data-format-text", "sum-text", "lines", P, "'input error'"),
    ("data-format-text", None, "sum-binary", N, "not the line as text"),
    ("data-format-binary", "sum-binary", None, P, "'-99'"),
    ("data-format-binary", "sum-binary-int", None, F,
     "the server reads and writes 32-bit integers where the client uses 64-bit longs: a size mismatch"),
    ("data-format-binary", "fork-waitpid", None, N, "the server echoes the 16-byte structure"),
    ("data-format-binary", "sum-text", None, N, "it is a text sum server (str_echo08)"),
    ("data-format-binary", None, "sum-binary", P, "'-99'"),
    ("data-format-binary", None, "lines", N, "the client sends the line as text"),
    ("data-format-binary", "sum-binary", "sum-binary", P, "'-99'"),
]


@pytest.mark.parametrize("scenario, server, client, verdict, words", CASES,
                         ids=[f"{s}-{sv or 'netbed'}-{cl or 'netbed'}" for s, sv, cl, *_ in CASES])
def test_verdict(scenario, server, client, verdict, words, built, tmp_path):
    assert_verdict(run_case(scenario, server, client, built, tmp_path), verdict, words)


@pytest.mark.parametrize("scenario", ["server-process-killed", "sigpipe"])
def test_socat_as_the_client_of_a_killed_server(scenario, built, tmp_path):
    """socat watches the socket: the child's FIN ends its session (it closes 0.5 s later, exit 0, silently) before
    the next line is typed, so the RST the scenario is about never comes: not judged, and the reason says why.
    Now and then socat also reads end-of-file on its terminal just after its first line and closes the connection
    itself, before the kill: not judged either, with that reason."""
    programs = Programs(server_cmd=SERVERS["fork-waitpid"], client_cmd=CLIENTS["socat"], mounts=(f"{built}:{MOUNT}",))
    result = runner.run(find([scenario])[0], tmp_path, programs)
    assert result.verdict == N, said(result)
    assert ("ended on the server's FIN before its next line was typed" in result.reason
            or "closed its connection by itself after its echo" in result.reason), said(result)
