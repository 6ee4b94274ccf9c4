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
"""

from netbed.scenarios.catalogue import OWN, scenario
from netbed.scenarios.lab import Client, Lab

WRITE_PAUSE = 1.0  # the book's sleep(1) between the two writes
SIGPIPE = 13


@scenario("sigpipe", "5.13", own=OWN, timers_s=WRITE_PAUSE)
def sigpipe(lab: Lab) -> None:
    killed = lab.client("--write-twice", "--write-pause", str(WRITE_PAUSE), "--sigpipe", "default",
                        name="client with SIGPIPE's default action")
    line_after_server_death(lab, killed, served=1)
    end = killed.wait(timeout=WRITE_PAUSE + 10)
    lab.expect_equal("the second write kills the client with SIGPIPE (a shell says status 141)",
                     f"killed by signal {SIGPIPE}", str(end))
    lab.expect_equal("it dies silently: no message on stderr", [], killed.program.stderr)

    ignoring = lab.client("--write-twice", "--write-pause", str(WRITE_PAUSE), "--sigpipe", "ignore",
                          name="client ignoring SIGPIPE")
    line_after_server_death(lab, ignoring, served=2)
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


def line_after_server_death(lab: Lab, client: Client, served: int) -> None:
    """The client is served, its server child is killed, and it types its next line."""
    client.send("hello")
    client.expect_echo("hello")
    child = lab.wait_server_event("accepted", count=served)[-1]["child"]
    lab.kill("server", pid=child, signal="SIGTERM")
    lab.wait_on_wire(client, lambda c: c.close_kind == "half-closed-by-server", timeout=5,
                     what="the dead child's FIN")
    client.send("bye")
    lab.wait_on_wire(client, lambda c: c.first_reset == "server", timeout=5, what="the server's RST")
