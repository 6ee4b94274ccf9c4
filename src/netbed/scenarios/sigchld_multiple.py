"""UNP 5.10: wait versus waitpid: five children exit together.

The client opens five connections to the server, so five children serve it,
and when its input ends it closes all five at once: five FINs, five children
exit at about the same time, five SIGCHLDs. Unix signals are not queued, so
the handler runs once; a handler that calls wait once reaps one child and
leaves four zombies, while one that loops on waitpid with WNOHANG reaps all
five. On Linux, how many signals get merged is left to chance (1 to 4
zombies from run to run); the servers here hold SIGCHLD blocked until all
five children have exited (--coalesce 5), so the handler runs exactly once,
as in the book's run, and the counts are the book's every time.
"""

from netbed.scenarios.catalogue import OWN, scenario
from netbed.scenarios.lab import Client, Lab

CHILDREN = 5
WAITPID_PORT = 9878


@scenario("sigchld-multiple", "5.10", own=OWN, server=("--sigchld", "wait", "--coalesce", str(CHILDREN)))
def sigchld_multiple(lab: Lab) -> None:
    client = lab.client("--connections", str(CHILDREN), name="client of the wait server")
    client.send("hello")
    client.expect_echo("hello")
    client.end_input()
    released = lab.wait_server_event("sigchld_released", timeout=10)[0]
    events = lab.server_events()
    lab.expect_equal(f"wait: {CHILDREN} children exit, one SIGCHLD, one handler run, one child reaped",
                     (CHILDREN, 1, 1), (released["exited"], count(events, "sigchld"), count(events, "reaped")))
    lab.expect_equal(f"wait: {CHILDREN - 1} zombies on the server host", CHILDREN - 1, len(lab.zombies("server")))
    closed_by_client(lab, client, "wait", lab.programs.port)

    waitpid = lab.server_program("--sigchld", "waitpid", "--coalesce", str(CHILDREN), port=WAITPID_PORT,
                                 name="waitpid server")
    client = lab.client_program("echo_client", "--connections", str(CHILDREN), "--report", port=WAITPID_PORT,
                                name="client of the waitpid server")
    client.expect_connected()
    client.send("hello")
    client.expect_echo("hello")
    client.end_input()
    waitpid.expect_output(r"^event=sigchld_released ", timeout=10)
    events = lab.events(waitpid)
    released = next(e for e in events if e["event"] == "sigchld_released")
    lab.expect_equal(f"waitpid: {CHILDREN} children exit, one SIGCHLD, one handler run, {CHILDREN} children reaped",
                     (CHILDREN, 1, CHILDREN), (released["exited"], count(events, "sigchld"), count(events, "reaped")))
    lab.expect_equal("waitpid: no zombie of the waitpid server", 0,
                     len([p for p in lab.zombies("server") if p.ppid == waitpid.pid]))
    closed_by_client(lab, client, "waitpid", WAITPID_PORT)


def count(events: list[dict], name: str) -> int:
    return sum(e["event"] == name for e in events)


def closed_by_client(lab: Lab, client: Client, server: str, port: int) -> None:
    """On the wire: the client's connections to that server, each closed by the client's FIN first."""
    conns = lab.wait_for(lambda: [c for c in lab.connections() if c.server.port == port],
                         lambda cs: len(cs) >= CHILDREN and all(c.close_kind not in ("open", "half-closed-by-client")
                                                                for c in cs),
                         timeout=5, what=f"the {CHILDREN} connections to the {server} server closed by both sides")
    lab.expect_equal(f"{server}: {CHILDREN} connections on the wire, each closed by the client's FIN first",
                     ["client-first"] * CHILDREN, [str(c.close_kind) for c in conns])
    lab.expect_wire(f"{server}: the connection that carried the echo", client.connection,
                    "client > server  P.", "server > client  P.", "client > server  F.", "server > client  F.")
