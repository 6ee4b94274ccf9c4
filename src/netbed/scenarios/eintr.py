"""UNP 5.9: handling interrupted system calls: accept returns EINTR.

The parent of a fork-per-client server spends its life blocked in accept, a
slow system call. When a client ends its input, the child serving it exits
and SIGCHLD interrupts that accept, which fails with EINTR after the handler
has run. The unguarded server (tcpserv02) treats this as a fatal error:
"accept error: Interrupted system call", and it exits. The guarded one
restarts accept when it sees EINTR, and serves the next client as if nothing
had happened. Linux differs from the book only in that the book's own Signal
wrapper sets SA_RESTART, with which Linux restarts accept itself and never
shows EINTR; both servers here install their handler without SA_RESTART, as
the C library's signal function of the book's Solaris run did.
"""

from netbed.scenarios.catalogue import OWN, scenario
from netbed.scenarios.lab import Lab

UNGUARDED_PORT = 9878
ABORTED = 1  # echo_server's exit status after an abort


@scenario("eintr", "5.9", own=OWN, server=("--sigchld", "wait", "--accept", "guarded"))
def eintr(lab: Lab) -> None:
    unguarded = lab.server_program("--sigchld", "wait", "--accept", "unguarded", port=UNGUARDED_PORT,
                                   name="unguarded server")
    client = lab.client_program("echo_client", "--report", port=UNGUARDED_PORT, name="client of the unguarded server")
    client.expect_connected()
    client.send("hello")
    client.expect_echo("hello")
    client.end_input()
    end = unguarded.wait(timeout=10)
    said = unguarded.stderr[-1] if unguarded.stderr else ""
    lab.note("unguarded server", f"ended {end}: {said}")
    lab.check("the unguarded server aborts: accept error: Interrupted system call",
              end.code == ABORTED and said == "accept error: Interrupted system call",
              f"exit status {ABORTED}; 'accept error: Interrupted system call'", f"{end}; {said!r}")
    lab.expect_equal("its events: a client accepted, SIGCHLD, the child reaped, accept fails with EINTR",
                     ["accepted", "sigchld", "reaped", "eintr action=abort", "aborted"], story(lab.events(unguarded)))
    left = [p.command for p in lab.processes("server") if p.pid == unguarded.pid]
    lab.check("the unguarded server is gone from the server host", not left, f"no process {unguarded.pid}",
              ", ".join(left) or "gone")

    first = lab.client(name="first client")
    first.send("hello")
    first.expect_echo("hello")
    first.end_input()
    lab.wait_server_event("eintr", timeout=10)
    second = lab.client(name="second client")
    second.send("still there?")
    second.expect_echo("still there?")
    lab.wait_server_event("accepted", count=2)
    lab.expect_equal("the guarded server's events: SIGCHLD, the child reaped, accept restarted, the next client",
                     ["accepted", "sigchld", "reaped", "eintr action=restart", "accepted"], story(lab.server_events()))
    lab.expect_wire("the second client is served after the first one's child exited", second.connection,
                    "client > server  S", "server > client  S.", "client > server  .",
                    "client > server  P.", "server > client  P.")


def story(events: list[dict]) -> list[str]:
    """What the parent did about accepting and reaping, in order."""
    return [e["event"] + (f" action={e['action']}" if "action" in e else "") for e in events
            if e["event"] in ("accepted", "sigchld", "reaped", "eintr", "aborted")]
