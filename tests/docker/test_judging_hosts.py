"""Negative controls for the host scenarios (5.14-5.16, keepalive, heartbeat, partition): right and wrong programs.

Each test runs one scenario on the user programs of tests/programs (built once
per module, mounted at /opt/mine) and checks the verdict and its words: the
book's clients pass, a client that ignores errors or names the wrong errno
fails with a message that says so, a client that buffers its stdout is not
judged, and the error kind of a client that says nothing is told from the wire
(ETIMEDOUT after a crash, ECONNRESET after a reboot).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netbed.scenarios import Programs, find, runner
from netbed.scenarios.lab import Verdict

from judging import CLIENTS, MOUNT, SERVERS

SERVER = SERVERS["fork-waitpid"]


def run(name: str, built: Path, tmp_path: Path, client: str | None = None, server: str | None = SERVER):
    programs = Programs(server_cmd=server, client_cmd=CLIENTS[client] if client else None,
                        mounts=(f"{built}:{MOUNT}",))
    return runner.run(find([name])[0], tmp_path, programs)


def failures(result) -> str:
    return "\n".join(f"{c.name}\n  expected: {c.expected}\n  observed: {c.observed}"
                     for c in result.checks if not c.passed) or f"verdict {result.verdict}: {result.reason}"


def error_check(result):
    """The check on how the client failed."""
    return next(c for c in result.checks if " fails with " in c.name)


# --- crash (5.14) and reboot (5.15): the book's clients pass, each with its errno ------------------

ERRNO_TEXT = {"server-host-crash": "Connection timed out", "server-host-reboot": "Connection reset by peer"}


@pytest.mark.parametrize("scenario", ["server-host-crash", "server-host-reboot"])
@pytest.mark.parametrize("client", ["lines", "five", "two-writes"])
def test_the_books_clients_pass_and_report_the_right_errno(scenario, client, built, tmp_path):
    result = run(scenario, built, tmp_path, client)
    assert result.verdict == Verdict.PASSED, failures(result)
    check = error_check(result)
    assert ERRNO_TEXT[scenario] in check.observed  # readline error: Connection timed out / reset by peer
    if client == "two-writes":  # its first byte alone, retransmitted: counted as retransmissions, not keep-alives
        assert any("retransmitted into silence" in c.name or "answers the client's retransmitted line" in c.name
                   for c in result.checks if c.passed)


@pytest.mark.parametrize("scenario", ["server-host-crash", "server-host-reboot"])
def test_a_client_that_ignores_errors_fails_it_did_not_notice(scenario, built, tmp_path):
    result = run(scenario, built, tmp_path, "ignores-errors")
    assert result.verdict == Verdict.FAILED
    check = error_check(result)
    assert not check.passed and check.observed.startswith("the client did not notice: it exited 0 without a word")


@pytest.mark.parametrize("scenario", ["server-host-crash", "server-host-reboot"])
def test_a_buffered_client_is_not_judged(scenario, built, tmp_path):
    result = run(scenario, built, tmp_path, "buffered")
    assert result.verdict == Verdict.NOT_JUDGED, failures(result)
    assert "printed nothing although the echo of 'hello' reached it" in result.reason


@pytest.mark.parametrize("scenario, verdict, words", [
    ("server-host-crash", Verdict.PASSED, "Connection timed out"),
    ("server-host-reboot", Verdict.FAILED, "the client did not notice: it exited 0 without a word"),
])
def test_socat_as_client_gets_a_right_verdict(scenario, verdict, words, built, tmp_path):
    """socat echoes line by line. A timeout it reports ("E read(5, ...): Connection timed out", exit 1), but it takes
    a reset for the end of the stream (a notice below its default log level) and exits 0 without a word: after a
    reboot its user is not told that the server is gone, which the book's client says (ECONNRESET)."""
    result = run(scenario, built, tmp_path, "socat")
    assert result.verdict == verdict, failures(result)
    assert words in error_check(result).observed
    assert all(c.passed for c in result.checks if c is not error_check(result)), failures(result)


def test_crash_and_reboot_tell_the_errors_apart(built, tmp_path):
    """The same silent client (exit 1, no word) is judged by the wire: ETIMEDOUT in the crash, ECONNRESET in the
    reboot; a client that says "Connection reset by peer" whatever happened fails the crash and passes the reboot."""
    crash = run("server-host-crash", built, tmp_path / "quiet", "exits-quietly")
    assert crash.verdict == Verdict.PASSED, failures(crash)
    assert "it ended when ETIMEDOUT ('Connection timed out') comes, by the wire" in error_check(crash).observed
    reboot = run("server-host-reboot", built, tmp_path / "quiet", "exits-quietly")
    assert reboot.verdict == Verdict.PASSED, failures(reboot)
    assert "it ended when ECONNRESET ('Connection reset by peer') comes, by the wire" in error_check(reboot).observed


@pytest.mark.parametrize("scenario, verdict", [("server-host-crash", Verdict.FAILED),
                                               ("server-host-reboot", Verdict.PASSED)])
def test_a_client_that_names_the_wrong_errno(scenario, verdict, built, tmp_path):
    result = run(scenario, built, tmp_path, "says-reset")
    assert result.verdict == verdict, failures(result)
    if verdict == Verdict.FAILED:
        check = error_check(result)
        assert check.observed.startswith("the client reports ECONNRESET ('Connection reset by peer') where the "
                                         "book's client gets ETIMEDOUT ('Connection timed out') after a crash")


# --- shutdown (5.16) --------------------------------------------------------------------------------

@pytest.mark.parametrize("client, verdict, words", [
    ("lines", Verdict.PASSED, "str_cli: server terminated prematurely"),
    ("ignores-errors", Verdict.FAILED, "the client did not notice: it exited 0 without a word"),
])
def test_shutdown(client, verdict, words, built, tmp_path):
    result = run("server-host-shutdown", built, tmp_path, client)
    assert result.verdict == verdict, failures(result)
    assert words in error_check(result).observed
    others = [c for c in result.checks if c is not error_check(result)]
    assert all(c.passed for c in others), failures(result)  # the FIN in the grace period, nothing answers...


def test_shutdown_fails_a_server_that_ignores_sigterm(built, tmp_path):
    result = run("server-host-shutdown", built, tmp_path, "lines", server=SERVERS["ignores-term"])
    assert result.verdict == Verdict.FAILED
    failed = {c.name: c.observed for c in result.checks if not c.passed}
    assert set(failed) == {"the server's FIN leaves within the grace period (2 s): it dies of the SIGTERM",
                           "every process of the host is gone: each ended on the SIGTERM, before the grace period's "
                           "SIGKILL"}, failures(result)
    assert "the server outlived the SIGTERM" in failed["the server's FIN leaves within the grace period (2 s): it dies "
                                                       "of the SIGTERM"]
    assert error_check(result).passed  # the client still reads the FIN as EOF: "server terminated prematurely"


# --- keepalive and heartbeat: the user's server, netbed's clients -----------------------------------

@pytest.mark.parametrize("scenario, server, client", [
    ("keepalive-crash", SERVERS["select"], None),
    ("keepalive-reboot", SERVERS["fork-waitpid"], "lines"),   # the client given is left out, and the verdict says why
    ("heartbeat-pause", SERVERS["threads"], None),
])
def test_keepalive_scenarios_judge_the_users_server(scenario, server, client, built, tmp_path):
    result = run(scenario, built, tmp_path, client, server=server)
    assert result.verdict == Verdict.PASSED, failures(result)
    assert result.settings["server"] == server
    assert any(c.name.startswith("the server accepted the connections") for c in result.checks)
    if client:
        assert result.settings["client"] == "echo_client"
        assert result.settings["own_programs"] == (
            "netbed's own client here: keepalive needs a client that sets SO_KEEPALIVE and seconds-long "
            "TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT; yours is judged by server-host-reboot")


def test_keepalive_refuses_a_users_client_alone_and_says_why(built, tmp_path):
    result = run("keepalive-crash", built, tmp_path, "lines", server=None)
    assert result.verdict == Verdict.NOT_JUDGED
    assert "SO_KEEPALIVE and seconds-long TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT" in result.reason
    assert "yours is judged by server-host-crash" in result.reason


# --- partition healed ----------------------------------------------------------------------------------

@pytest.mark.parametrize("client", ["lines", "two-writes"])
def test_partition_heal_the_client_sees_only_a_delay(client, built, tmp_path):
    result = run("partition-heal", built, tmp_path, client)
    assert result.verdict == Verdict.PASSED, failures(result)


def test_partition_heal_fails_a_client_that_takes_a_delay_for_a_failure(built, tmp_path):
    result = run("partition-heal", built, tmp_path, "gives-up")
    assert result.verdict == Verdict.FAILED
    failed = [c for c in result.checks if not c.passed]
    assert [c.name for c in failed] == ["the client saw only a delay: still running, no error message"]
    assert failed[0].observed.startswith("it gave up while TCP was still retransmitting its line: exit status 1, "
                                         "it said 'str_cli: server not responding'")


@pytest.mark.parametrize("scenario", ["keepalive-crash", "heartbeat-pause"])
def test_keepalive_scenarios_fail_a_server_that_serves_one_client_at_a_time(scenario, built, tmp_path):
    result = run(scenario, built, tmp_path, server=SERVERS["iterative"])
    assert result.verdict == Verdict.FAILED
    failed = [c for c in result.checks if not c.passed]
    assert [c.name for c in failed] == ["the server accepted the connections (a process on its host owns each)"]
    assert "never accepted: the server does not accept a second client while the first is connected" \
        in failed[0].observed
