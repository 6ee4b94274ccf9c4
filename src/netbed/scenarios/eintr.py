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

A user's server is judged without its output: before the first client ends,
netbed sees the parent blocked in accept (its kernel wait channel,
/proc/PID/wchan: inet_csk_accept; or in poll/select, which a SIGCHLD
interrupts the same way, as socat's parent); the child serving that client
then exits, and the parent must survive the SIGCHLD (the same process still
listening) and serve a second client. A server that dies says why in its last line,
quoted in the verdict. A server that serves every connection from one
process has no child, hence no SIGCHLD: not judged.
"""

from netbed.scenarios import children
from netbed.apps import status
from netbed.scenarios.catalogue import scenario
from netbed.scenarios.lab import Lab

UNGUARDED_PORT = 9878
ABORTED = status.FAILED  # echo_server's exit status after an abort


@scenario("eintr", "5.9", takes=("server", "client"), server=("--sigchld", "wait", "--accept", "guarded"))
def eintr(lab: Lab) -> None:
    if lab.programs.server_cmd:
        judge_users_server(lab)
        return
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


def judge_users_server(lab: Lab) -> None:
    """The parent is blocked in accept when its child exits; it survives and serves the next client."""
    first = lab.client(name="first client")
    first.send("hello")
    first.expect_echo("hello")
    listener = lab.listener()
    owned = children.settled_owners(lab, [first], listener)
    kids = sorted({pid for pids in owned.values() for pid in pids if pid != listener})
    if not kids:
        lab.not_judged(children.NO_CHILD + " (no accept to interrupt)")
    channel = children.settled(lab, lambda: children.wait_channel(lab, listener),
                               lambda seen: not seen or children.in_slow_call(seen), what=f"pid {listener} in accept")
    if children.in_accept(channel):
        lab.note("netbed", f"the parent (pid {listener}) is blocked in accept ({channel}) before its child exits")
    elif children.in_slow_call(channel):
        lab.note("netbed", f"the parent (pid {listener}) is blocked in {channel} (poll/select on the listening "
                           "socket, not accept: SIGCHLD interrupts it the same way) before its child exits")
    elif channel:
        lab.not_judged(f"the parent (pid {listener}) is not blocked in accept (nor poll/select) when its child "
                       f"exits (kernel wait channel: {channel}): no slow system call for SIGCHLD to interrupt")
    else:
        lab.note("netbed", f"pid {listener}'s kernel wait channel cannot be read here: where it waits is not checked")
    first.end_input()
    lab.wait_on_wire(first, lambda c: c.close_kind == "client-first", timeout=10,
                     what="the first client's FIN, then the child's")
    children.exited(lab, kids)
    lab.note("netbed", f"child {', '.join(map(str, kids))} exited: SIGCHLD to pid {listener}")

    second, echoed = children.serves_after_sigchld(
        lab, listener, "the parent survives the SIGCHLD that interrupted its accept: the same process still listens")
    if echoed:
        lab.expect_wire("the second client: handshake and echo", second.connection,
                        "client > server  S", "server > client  S.", "client > server  .",
                        "client > server  P.", "server > client  P.")
