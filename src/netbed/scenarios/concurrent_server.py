"""UNP 4.8: the concurrent server: one child per client.

Three clients connect at once and each gets its echo: the parent accepts
each connection, forks, and closes its copy; the child serving it owns it.
`ss` on the server host shows the listening socket in the parent only, and
each established connection in a different child of that parent.
"""

from netbed.scenarios.catalogue import scenario
from netbed.scenarios.lab import Lab

CLIENTS = 3


@scenario("concurrent-server", "4.8", takes=("server", "client"), timers_s=0.0)
def concurrent_server(lab: Lab) -> None:
    clients = [lab.client(name=f"client{i + 1}") for i in range(CLIENTS)]
    for i, client in enumerate(clients):
        client.send(f"I am client {i + 1}")
    for i, client in enumerate(clients):
        client.expect_echo(f"I am client {i + 1}")

    port = f":{lab.programs.port}"
    procs = {p.pid: p for p in lab.processes("server")}
    socks = [s for s in lab.sockets("server") if s.local.endswith(port)]
    listening = {pid for s in socks if s.state == "LISTEN" for pid in s.pids}
    owners = [s.pids for s in socks if s.state == "ESTABLISHED"]
    lab.expect_equal("one listening socket, in one process", 1, len(listening))
    parent = next(iter(listening), None)
    children = {pids[0] for pids in owners if len(pids) == 1}
    lab.check(f"each of the {CLIENTS} connections owned by its own child of the listener",
              len(owners) == CLIENTS and len(children) == CLIENTS
              and all(procs.get(pid) and procs[pid].ppid == parent for pid in children),
              f"{CLIENTS} connections, {CLIENTS} distinct children of pid {parent}",
              "; ".join(f"owned by {pids} (ppid {[procs[p].ppid for p in pids if p in procs]})" for pids in owners))
    for client in clients:
        lab.expect_wire(f"{client.name}: handshake and echo", client.connection,
                        "client > server  S", "server > client  S.", "client > server  .",
                        "client > server  P.", "server > client  P.")
