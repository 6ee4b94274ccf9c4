"""UNP 5.12: termination of the server process.

The server child serving the client is killed. Its TCP sends a FIN, which
the client's TCP ACKs, leaving the client's socket in CLOSE-WAIT; the client
is blocked reading its terminal and does not notice. Its next line goes out
anyway, the server's TCP, which has no socket for it, answers with an RST,
and the client, reading the FIN first as EOF, says the server terminated
prematurely. Linux behaves as the book says.
"""

from netbed.scenarios.catalogue import scenario
from netbed.scenarios.lab import Lab


@scenario("server-process-killed", "5.12", takes=("server", "client"), timers_s=0.0)
def server_process_killed(lab: Lab) -> None:
    client = lab.client()
    client.send("hello")
    client.expect_echo("hello")

    port = f":{lab.programs.port}"
    child = next(s.pids[0] for s in lab.sockets("server")
                 if s.state == "ESTABLISHED" and s.local.endswith(port) and s.pids)
    lab.kill("server", pid=child, signal="SIGTERM")
    lab.wait_for(lambda: lab.sockets("client"),
                 lambda socks: any(s.state == "CLOSE-WAIT" and s.peer.endswith(port) for s in socks),
                 timeout=10, what="the client's socket in CLOSE-WAIT")
    lab.check("the client's socket is in CLOSE-WAIT", True, "CLOSE-WAIT", "CLOSE-WAIT")

    client.send("another line")
    client.expect_error("premature", timeout=10)
    conn = lab.wait_on_wire(client, lambda c: c.first_reset is not None, timeout=10, what="the server's RST")
    lab.expect_wire("FIN from the dead child, then the next line draws an RST", conn,
                    "server > client  F.",
                    "client > server  .",
                    "client > server  P.",
                    "server > client  R")
