"""UNP 5.7: normal termination: the client ends its input, both sides close.

The client types a line, gets its echo, then ends its input (Ctrl-D): its TCP
sends a FIN, which the server's TCP ACKs; the server child reads EOF, closes,
and its FIN is ACKed by the client, which stays in TIME-WAIT. Between the two
FINs the client sits in FIN-WAIT-2 and the server child in CLOSE-WAIT, and
`ss` shows both. The child exits and, with no SIGCHLD handler, stays a zombie.
On Linux a child that closes at once lets its ACK ride on its FIN (three
segments, not four); netbed's server waits a second before closing so the
book's four segments and its two half-closed states can be seen. A user's
server may give either close; both are accepted.

A user's server is also judged by its process table: once both FINs of
each of the client's connections are on the wire, the children of the
listener that served them must be reaped within a few seconds (a zombie left
is the book's first server, with no SIGCHLD handler). netbed's own server
runs without a handler and shows the book's zombie. A single-process server
has no children: only its close is judged.
"""

from netbed.scenarios import children
from netbed.scenarios.catalogue import scenario
from netbed.scenarios.lab import Lab

CLOSE_DELAY = 1.0


@scenario("normal-termination", "5.7", takes=("server", "client"),
          server=("--sigchld", "none", "--close-delay", str(CLOSE_DELAY)), timers_s=CLOSE_DELAY)
def normal_termination(lab: Lab) -> None:
    client = lab.client()
    client.send("hello, world")
    client.expect_echo("hello, world")
    port = f":{lab.programs.port}"
    listener = lab.listener()
    served = children.settled_owners(lab, [client], listener) if lab.programs.server_cmd else {}
    client.end_input()

    if not lab.programs.user:
        client_side = lab.wait_for(lambda: lab.sockets("client"),
                                   lambda socks: any(s.state == "FIN-WAIT-2" and s.peer.endswith(port) for s in socks),
                                   timeout=CLOSE_DELAY + 5, what="the client's socket in FIN-WAIT-2")
        server_side = lab.sockets("server")
        lab.check("client in FIN-WAIT-2 while the server child holds its end",
                  any(s.state == "FIN-WAIT-2" for s in client_side), "FIN-WAIT-2",
                  ", ".join(s.state for s in client_side))
        lab.check("server child in CLOSE-WAIT", any(s.state == "CLOSE-WAIT" and s.local.endswith(port)
                                                    for s in server_side),
                  "CLOSE-WAIT", ", ".join(s.state for s in server_side))

    conn = lab.wait_on_wire(client, lambda c: c.states["client"][-1:] == ["TIME-WAIT"],
                            timeout=CLOSE_DELAY + 10, what="the client's TCP in TIME-WAIT")
    lab.expect_wire("the four-segment close (an ACK may ride on the server's FIN)", conn,
                    "client > server  F.",
                    "server > client  .",
                    "server > client  F.",
                    "client > server  .")
    lab.check("client passes FIN-WAIT-1, FIN-WAIT-2 (or CLOSING), TIME-WAIT",
              conn.states["client"][-1] == "TIME-WAIT" and "FIN-WAIT-1" in conn.states["client"],
              "... FIN-WAIT-1 -> FIN-WAIT-2 -> TIME-WAIT", " -> ".join(conn.states["client"]))
    lab.check("server passes CLOSE-WAIT, LAST-ACK, CLOSED",
              conn.states["server"][-3:] == ["CLOSE-WAIT", "LAST-ACK", "CLOSED"],
              "... CLOSE-WAIT -> LAST-ACK -> CLOSED", " -> ".join(conn.states["server"]))
    lab.expect_equal("client ends normally", "exit status 0", f"exit status {client.wait(timeout=10).code}")
    time_wait = [s for s in lab.sockets("client") if s.state == "TIME-WAIT" and s.peer.endswith(port)]
    lab.check("ss shows the client's TIME-WAIT", bool(time_wait), "TIME-WAIT", str([s.state for s in time_wait]))
    if lab.programs.server_cmd:
        judge_reaping(lab, listener, served)
    else:
        zombies = lab.wait_for(lambda: lab.zombies("server"), timeout=5, what="the exited child as a zombie")
        lab.expect_equal("the child is left a zombie (no SIGCHLD handler)", 1, len(zombies))


def judge_reaping(lab: Lab, listener: int, served: dict[int, tuple[int, ...]]) -> None:
    """The children that served the client's connections, reaped once every connection is closed."""
    kids = sorted({pid for pids in served.values() for pid in pids if pid != listener})
    if not kids:
        lab.note("netbed", f"{children.one_process(lab, listener)}: no child to reap, only the close is judged")
        return
    ports = set(served)
    lab.wait_for(lambda: [c for c in lab.connections() if c.client.port in ports],
                 lambda cs: len(cs) >= len(ports) and all(c.close_kind not in ("open", "half-closed-by-client",
                                                                                 "half-closed-by-server") for c in cs),
                 timeout=10, what=f"both FINs of the client's {len(ports)} connection(s) on the wire")
    children.exited(lab, kids)
    zombies = children.zombies_after_reaping(lab, kids, listener)
    lab.check(f"the {'child' if len(kids) == 1 else f'{len(kids)} children'} that served the client reaped "
              f"(no zombie of pid {listener})",
              not zombies, f"{', '.join(map(str, kids))} gone from the process table",
              children.zombie_verdict(zombies, len(kids)) or f"{', '.join(map(str, kids))} reaped")
