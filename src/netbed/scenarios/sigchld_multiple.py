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

A user's server has no such switch, and is judged from its process table
over two rounds of five connections from netbed's five-connection client
(the book's tcpcli04's role). First as the kernel does it: the five children
exit, and any child still a zombie once the server had a few seconds to reap
is a failure (a handler that calls wait once leaves 1 to 4, or none when
every signal happened to come apart: that round cannot tell it from a loop).
Then the book's situation made certain from outside: once the five new
children serve their connections, netbed stops the listener (SIGSTOP), lets
the client end (five FINs; five children exit and stay zombies while their
parent cannot run) and continues it (SIGCONT) once all five are zombies:
their SIGCHLDs are then one pending signal, merged by the kernel, and the
handler runs once. A waitpid loop leaves no zombie; a single wait reaps one
(4 of 5 left); a server that never reaps, all five.
"""

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
    lab.expect_equal(f"the client opens {CHILDREN} connections", CHILDREN, len(opened))
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


def closed_by_client(lab: Lab, client: Client, server: str, port: int, ports: set[int] | None = None) -> None:
    """On the wire: the client's connections to that server (those from `ports` if given), each closed by the
    client's FIN first."""
    conns = lab.wait_for(lambda: [c for c in lab.connections() if c.server.port == port
                                  and (ports is None or c.client.port in ports)],
                         lambda cs: len(cs) >= CHILDREN and all(c.close_kind not in ("open", "half-closed-by-client")
                                                                for c in cs),
                         timeout=5, what=f"the {CHILDREN} connections ({server}) closed by both sides")
    lab.expect_equal(f"{server}: {CHILDREN} connections on the wire, each closed by the client's FIN first",
                     ["client-first"] * CHILDREN, [str(c.close_kind) for c in conns])
    lab.expect_wire(f"{server}: the connection that carried the echo", client.connection,
                    "client > server  P.", "server > client  P.", "client > server  F.", "server > client  F.")


def judge_users_server(lab: Lab, client: Client) -> None:
    """Five children exit together, as the kernel does it, then while their parent is stopped: how many
    does the server reap?"""
    listener = lab.listener()
    owned, kids = served(lab, client, listener)
    client.end_input()
    both_fins(lab, owned)
    children.exited(lab, kids)
    zombies = children.zombies_after_reaping(lab, kids, listener)
    lab.check(f"first round, as the kernel does it: {len(kids)} children exit together, all reaped "
              f"(no zombie of pid {listener})", not zombies, "0 zombies", children.zombie_verdict(zombies, len(kids))
              or f"0 zombies: children {', '.join(map(str, kids))} reaped (in this run a single wait could not be "
                 "told from a loop: each SIGCHLD may have come apart)")
    closed_by_client(lab, client, "first round", lab.programs.port, set(owned))
    ok, seen = children.survives(lab, listener)
    lab.check("first round: the server survives its children's SIGCHLDs, the same process still listens", ok,
              f"pid {listener} still listens", seen)
    if not ok:
        return

    client = lab.client("--connections", str(CHILDREN), name="second client")
    client.send("hello again")
    client.expect_echo("hello again")
    owned, kids = served(lab, client, listener)
    lab.kill("server", pid=listener, signal="SIGSTOP")
    try:
        lab.wait_for(lambda: children.alive(lab, [listener]).get(listener, ""), lambda stat: stat.startswith("T"),
                     timeout=5, what=f"pid {listener} stopped")  # before any child exits: no SIGCHLD handled early
        client.end_input()
        both_fins(lab, owned)
        left = children.exited(lab, kids)
        before = [p.pid for p in lab.children(listener) if p.zombie]
        lab.note("netbed", f"{sum(s.startswith('Z') for s in left.values())} of {len(kids)} children are zombies "
                           f"while pid {listener} is stopped: their SIGCHLDs are one pending signal")
    finally:
        lab.kill("server", pid=listener, signal="SIGCONT")
    after = children.zombies_after_reaping(lab, before, listener)
    ok, seen = children.survives(lab, listener)
    lab.check("second round: the server survives the merged SIGCHLD, the same process still listens", ok,
              f"pid {listener} still listens", seen)
    if len(before) > len(kids):  # zombies left by the first round too: one wait may reap any of them
        verdict = (f"{len(after)} of the {len(before)} zombie children left after one merged SIGCHLD: "
                   f"{children.NOT_REAPED if len(after) == len(before) else children.ONE_WAIT}")
    else:
        verdict = children.zombie_verdict(after, len(kids))
    lab.check(f"second round, one SIGCHLD for {len(kids)} exited children (pid {listener} stopped while they "
              f"exit): all {len(kids)} reaped", not after, "0 zombies (a handler that loops on waitpid with WNOHANG)",
              verdict or f"0 zombies: children {', '.join(map(str, kids))} reaped")
    closed_by_client(lab, client, "second round", lab.programs.port, set(owned))


def served(lab: Lab, client: Client, listener: int) -> tuple[dict[int, tuple[int, ...]], list[int]]:
    """The client's connections and their owners, and the children of the listener among them."""
    owned = children.settled_owners(lab, [client], listener)
    kids = sorted({pid for pids in owned.values() for pid in pids if pid != listener})
    if not kids:
        lab.not_judged(children.NO_CHILD + " (none to merge)")
    lab.note("netbed", f"{len(owned)} connections served by children {', '.join(map(str, kids))} of pid {listener}")
    return owned, kids


def both_fins(lab: Lab, owned: dict[int, tuple[int, ...]]) -> None:
    lab.wait_for(lambda: [c for c in lab.connections() if c.client.port in owned],
                 lambda cs: len(cs) >= len(owned) and all(c.close_kind not in ("open", "half-closed-by-client")
                                                          for c in cs),
                 timeout=10, what=f"both FINs of the {len(owned)} connections on the wire")
