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

A user's server has no such switch: netbed makes the book's situation
certain from outside. Once the five children serve the five connections,
it stops the listener (SIGSTOP), lets the client end (five FINs, five
children exit and stay zombies while their parent cannot run), and
continues it (SIGCONT) once all five are zombies: the five SIGCHLDs are
then one pending signal, really merged by the kernel, and the handler runs
once. What the process table shows after that is the verdict: no zombie
left (a waitpid loop) passes; one to four left is a handler that calls wait
once per signal; five, a server that does not reap. The client is netbed's
five-connection one (the book's tcpcli04's role).
"""

from netbed import observe
from netbed.scenarios import children
from netbed.scenarios.catalogue import scenario
from netbed.scenarios.lab import Client, Lab

CHILDREN = 5
WAITPID_PORT = 9878


@scenario("sigchld-multiple", "5.10", takes=("server",),
          own="it needs the book's tcpcli04, a client that opens five connections; netbed's own opens them",
          server=("--sigchld", "wait", "--coalesce", str(CHILDREN)))
def sigchld_multiple(lab: Lab) -> None:
    client = lab.client("--connections", str(CHILDREN),
                        name="client" if lab.programs.server_cmd else "client of the wait server")
    client.send("hello")
    client.expect_echo("hello")
    opened = children.settled(lab, client.ports, lambda ports: len(ports) >= CHILDREN,
                              what=f"the client's {CHILDREN} connections")
    if len(opened) < CHILDREN:
        lab.not_judged(f"the client opened {len(opened)} connection(s): this scenario needs one that opens "
                       f"{CHILDREN} at once and closes them together, as the book's tcpcli04 (or netbed's own: "
                       "give no --client-cmd)")
    if lab.programs.server_cmd:
        judge_users_server(lab, client)
        return
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


def judge_users_server(lab: Lab, client: Client) -> None:
    """Five children exit while their parent is stopped; once it runs again, how many does it reap?"""
    listener = lab.listener()
    owned = children.settled_owners(lab, [client], listener)
    kids = sorted({pid for pids in owned.values() for pid in pids if pid != listener})
    if not kids:
        lab.not_judged(children.NO_CHILD + " (none to merge)")
    lab.note("netbed", f"{len(owned)} connections served by children {', '.join(map(str, kids))} of pid {listener}")
    lab.kill("server", pid=listener, signal="SIGSTOP")
    try:
        client.end_input()
        lab.wait_for(lambda: [c for c in lab.connections() if c.client.port in owned],
                     lambda cs: len(cs) >= len(owned) and all(c.close_kind not in ("open", "half-closed-by-client")
                                                              for c in cs),
                     timeout=10, what=f"both FINs of the {len(owned)} connections on the wire")
        left = children.exited(lab, kids)
        lab.note("netbed", f"{sum(s.startswith('Z') for s in left.values())} of {len(kids)} children are zombies "
                           f"while pid {listener} is stopped: their SIGCHLDs are one pending signal")
    finally:
        lab.kill("server", pid=listener, signal="SIGCONT")
    zombies = children.zombies_after_reaping(lab, kids)
    ok, seen = children.survives(lab, listener)
    lab.check("the server survives the merged SIGCHLD: the same process still listens", ok,
              f"pid {listener} still listens", seen)
    lab.check(f"one SIGCHLD for {len(kids)} exited children: all {len(kids)} reaped (no zombie of pid {listener})",
              not zombies, "0 zombies (a handler that loops on waitpid with WNOHANG)",
              children.zombie_verdict(zombies, len(kids)) or f"0 zombies: children {', '.join(map(str, kids))} reaped")
    closed_by_client(lab, client, "the server", lab.programs.port)
