"""UNP 5.16: shutdown of the server host.

An orderly shutdown sends SIGTERM to every process, then SIGKILL to those
left: the server child dies and its TCP sends a FIN, just as when the child
is killed (5.12). The client, blocked reading its terminal, does not see it;
its next line goes out, the client reads the FIN as EOF and says the server
terminated prematurely. The host is gone by then, so nothing answers the
line. Note that `docker stop` alone would signal only PID 1.
"""

from netbed.scenarios.catalogue import scenario
from netbed.scenarios.lab import Lab

GRACE = 2.0


@scenario("server-host-shutdown", "5.16", takes=("server", "client"), timers_s=0.0)
def server_host_shutdown(lab: Lab) -> None:
    client = lab.client()
    client.send("hello")
    client.expect_echo("hello")

    lab.shutdown("server", grace=GRACE)
    lab.wait_on_wire(client, lambda c: any(s.sender == "server" and "F" in s.letters for s in c.segments), timeout=10,
                     what="the FIN of the server's shutdown")
    client.send("after the shutdown")
    client.expect_error("premature", timeout=10)
    conn = lab.wait_on_wire(client, lambda c: any(s.sender == "client" and s.payload_len for s in c.segments[-3:]),
                            timeout=10, what="the line on the wire")
    lab.expect_wire("the server's FIN, then the client's line", conn,
                    "server > client  F.",
                    "client > server  .",
                    "client > server  P.")
    lab.check("nothing answers the line (the host is down)", conn.first_reset is None,
              "no RST from the server", f"reset by {conn.first_reset}" if conn.first_reset else "none")
