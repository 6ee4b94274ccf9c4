"""UNP 5.13: SIGPIPE: writing to a socket that has received an RST.

The client (tcpcli11) writes each line in two parts, one byte, a pause of a
second, then the rest. The server child is killed as in 5.12: its FIN
arrives, the client does not notice, and its next line's first byte goes
out and draws an RST. The second write hits the reset socket: the kernel
sends the client SIGPIPE, whose default action kills it silently, and a
client that ignores SIGPIPE gets EPIPE from write instead. Linux behaves as
the book says; note that CPython ignores SIGPIPE at start-up (the client
restores the default), and that a program running as a container's PID 1
would not be killed by it.

A user's client is judged on death by SIGPIPE versus EPIPE: killed by
signal 13 passes, so does a client that ignores or catches SIGPIPE and
reports EPIPE ("Broken pipe") with a failure status; one that exits 0
without a word fails. A client that writes each line in one write never
makes the second write (it reads the FIN as EOF first): not judged. The
server's side is judged as in 5.12 (the child serving this client is killed;
a single-process server is not judged).
"""

from __future__ import annotations

from netbed import observe
from netbed.scenarios.catalogue import scenario
from netbed.scenarios.lab import Client, Lab
from netbed.scenarios.server_process_killed import (client_waits_in_close_wait, kill_serving_child,
                                                    nothing_after_the_reset, reset_after_fin)

WRITE_PAUSE = 1.0  # the book's sleep(1) between the two writes
SIGPIPE = 13
NEXT_LINE = "bye"
ONE_WRITE = ("the client wrote the line in one write; SIGPIPE needs a second write after the RST, as UNP 5.13's "
             "client writes the first byte, sleeps, then the rest")
SILENT = ("the client exited 0 without a word after the server's FIN and RST: it ignores SIGPIPE and never checks "
          "write's result (EPIPE) nor read's EOF, so its user is never told the server is gone (UNP 5.13: let "
          "SIGPIPE kill it, or catch it and report EPIPE)")


@scenario("sigpipe", "5.13", takes=("server", "client"), timers_s=WRITE_PAUSE)
def sigpipe(lab: Lab) -> None:
    if lab.programs.client_cmd:
        users_client(lab)
        return
    killed = lab.client("--write-twice", "--write-pause", str(WRITE_PAUSE), "--sigpipe", "default",
                        name="client with SIGPIPE's default action")
    line_after_server_death(lab, killed)
    end = killed.wait(timeout=WRITE_PAUSE + 10)
    lab.expect_equal("the second write kills the client with SIGPIPE (a shell says status 141)",
                     f"killed by signal {SIGPIPE}", str(end))
    lab.expect_equal("it dies silently: no message on stderr", [], killed.program.stderr)

    ignoring = lab.client("--write-twice", "--write-pause", str(WRITE_PAUSE), "--sigpipe", "ignore",
                          name="client ignoring SIGPIPE")
    line_after_server_death(lab, ignoring)
    ignoring.expect_error("EPIPE", timeout=WRITE_PAUSE + 10)

    for client in (killed, ignoring):
        conn = client.connection
        lab.expect_wire(f"{client.name}: the child's FIN, the line's first byte, the RST", conn,
                        "server > client  F.",
                        "client > server  .",
                        "client > server  P.  len=1",
                        "server > client  R", strict=True)
        lab.check(f"{client.name}: the second write sends nothing", "R" in conn.segments[-1].letters,
                  "no segment after the RST", " ".join(conn.tcpdump_flags[-3:]))


def line_after_server_death(lab: Lab, client: Client) -> bool:
    """The client is served, the child serving it is killed, and it types its next line; False when the
    client ended on the FIN by itself (judged there)."""
    client.send("hello")
    client.expect_echo("hello")
    kill_serving_child(lab, client)
    if not client_waits_in_close_wait(lab, client):
        return False
    client.send(NEXT_LINE)
    lab.wait_on_wire(client, lambda c: reset_after_fin(c) is not None or client.program.exit is not None,
                     timeout=WRITE_PAUSE + 10, what="the server's RST")
    return True


def users_client(lab: Lab) -> None:
    """Judge a user's client: SIGPIPE's death, EPIPE reported, or silence (a bug); one write: not judged."""
    client = lab.client()
    if not line_after_server_death(lab, client):
        return
    try:
        end = client.program.wait(timeout=WRITE_PAUSE + 10)
    except observe.WaitTimeout:
        lab.check(f"{client.name} dies of SIGPIPE or reports EPIPE", False, "killed by SIGPIPE, or EPIPE reported",
                  f"still running {WRITE_PAUSE + 10:g} s after the RST, having said "
                  f"{client.program.stderr[-1:] or 'nothing'}")
        return
    said = [line for line in client.program.stderr if line.strip()]
    lab.moment(client.name, f"ended {end}{f': {said[-1]}' if said else ''}")
    conn = lab.wait_on_wire(client, lambda c: reset_after_fin(c) is not None, timeout=5, what="the server's RST")
    fin = next(s for s in conn.segments if s.sender == "server" and "F" in s.letters)
    data = [s for s in conn.segments[fin.index:] if s.sender == "client" and s.payload_len]
    whole_line = len(data) == 1 and data[0].payload() == f"{NEXT_LINE}\n".encode()
    epipe = any("broken pipe" in line.lower() or "epipe" in line.lower() for line in said)
    died, reported, silent = end.signal == SIGPIPE, epipe and not end.ok, end.ok and not said
    if not (died or reported or silent) and whole_line:
        lab.not_judged(f"{ONE_WRITE} (the wire shows the whole line {NEXT_LINE!r} in one segment, then the RST; the "
                       f"client read the FIN as EOF and ended: {end}{f', {said[-1]!r}' if said else ''})")
    if died:
        observed = ("killed by SIGPIPE, silently, as the book's client" if not said
                    else f"killed by SIGPIPE, but it printed {said[-1]!r} first")
    elif reported:
        observed = f"it ignores or catches SIGPIPE and reports EPIPE: {end}; {said[-1]!r}"
    elif silent:
        observed = SILENT
    else:
        observed = (f"{end}; stderr {said[-1:]}: its write after the RST failed with EPIPE and it did not say so "
                    "(UNP 5.13)")
    lab.check(f"{client.name} dies of SIGPIPE or reports EPIPE", (died and not said) or reported,
              "killed by SIGPIPE (silently), or EPIPE reported with a failure status", observed)
    lab.expect_wire(f"{client.name}: the child's FIN, the line's first write, the RST", conn,
                    "server > client  F.",
                    "client > server  .",
                    "client > server  P.",
                    "server > client  R", strict=True)
    nothing_after_the_reset(lab, conn)
