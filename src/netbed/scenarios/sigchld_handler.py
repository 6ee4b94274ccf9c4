"""UNP 5.9: handling SIGCHLD signals: a handler that calls wait reaps the child.

The server installs a SIGCHLD handler that calls wait. One client connects,
gets its echo and ends its input: the server child reads EOF, closes (the two
FINs cross the wire as in 5.7) and exits. The kernel sends SIGCHLD to the
parent, whose handler collects the child's exit status, so the server's
event lines show the reap (the book's "child 12345 terminated") and `ps` on
the server host shows no zombie, unlike 5.7. The signal also interrupts the
parent's accept; this server restarts it (the eintr scenario shows one that
does not). Linux behaves as the book says.

A user's server is judged from the server host: once the child's FIN is on
the wire, the child that served the client is gone from the process table
within a few seconds (reaped, not a zombie), the same process still listens,
and a second client is served (the parent survived the signal). A server
that serves every connection from one process has no child to reap: not
judged.
"""

from netbed.scenarios import children
from netbed.scenarios.catalogue import scenario
from netbed.scenarios.lab import Client, Lab


@scenario("sigchld-handler", "5.9", takes=("server", "client"), server=("--sigchld", "wait"))
def sigchld_handler(lab: Lab) -> None:
    client = lab.client()
    client.send("hello")
    client.expect_echo("hello")
    if lab.programs.server_cmd:
        judge_users_server(lab, client)
        return
    child = lab.wait_server_event("accepted")[0]["child"]
    client.end_input()

    lab.wait_server_event("eintr", action="restart", timeout=10)  # the parent's last step: back to accept
    events = [e for e in lab.server_events() if e["event"] in ("exit", "sigchld", "reaped", "eintr")]
    lab.expect_equal("the server's events: the child exits, SIGCHLD, the handler reaps it, accept is restarted",
                     ["exit", "sigchld", "reaped", "eintr"], [e["event"] for e in events])
    reaped = next(e for e in events if e["event"] == "reaped")
    lab.expect_equal("the handler reaps the child (pid, exit status)", (child, 0),
                     (reaped["child"], reaped.get("code")))
    zombies = lab.zombies("server")
    lab.check("no zombie on the server host", not zombies, "none",
              ", ".join(f"{p.pid} {p.command}" for p in zombies) or "none")

    lab.expect_equal("the client ends normally", "exit status 0", f"exit status {client.wait(timeout=10).code}")
    close_on_the_wire(lab, client)


def close_on_the_wire(lab: Lab, client: Client) -> None:
    conn = lab.wait_on_wire(client, lambda c: c.close_kind == "client-first", timeout=5, what="both FINs")
    lab.expect_wire("the client's FIN, then the child's FIN as it exits", conn,
                    "client > server  F.",
                    "server > client  .",
                    "server > client  F.",
                    "client > server  .")


def judge_users_server(lab: Lab, client: Client) -> None:
    """The child serving the client exits; it is reaped, and the parent goes on serving."""
    listener = lab.listener()
    owned = children.settled_owners(lab, [client], listener)
    kids = sorted({pid for pids in owned.values() for pid in pids if pid != listener})
    if not kids:
        lab.not_judged(children.NO_CHILD)
    lab.note("netbed", f"the client's connection is served by child {', '.join(map(str, kids))} of pid {listener}")
    client.end_input()
    lab.expect_equal("the client ends normally", "exit status 0", f"exit status {client.wait(timeout=10).code}")
    close_on_the_wire(lab, client)
    children.exited(lab, kids)
    zombies = children.zombies_after_reaping(lab, kids, listener)
    lab.check(f"the SIGCHLD handler reaps the child (no zombie of pid {listener})", not zombies,
              f"child {', '.join(map(str, kids))} gone from the process table",
              children.zombie_verdict(zombies, len(kids)) or f"child {', '.join(map(str, kids))} reaped")

    children.serves_after_sigchld(
        lab, listener, "the parent survives its child's SIGCHLD: the same process still listens")
