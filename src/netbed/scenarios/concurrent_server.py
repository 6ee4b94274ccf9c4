"""UNP 4.8: the concurrent server: one child per client.

Three clients connect at once and each gets its echo: the parent accepts
each connection, forks, and closes its copy; the child serving it owns it.
`ss` on the server host shows the listening socket in the parent only, and
each established connection in a different child of that parent.

Any server is judged the same way: the three clients are all echoed while
all three connections are open (on the wire), and each connection of the
three clients (`ss` on both hosts: a five-connection client has five) is
owned by its own child of the listener. A server that serves every
connection from one process (select/poll, threads, an event loop) is told
so by name, with its pid and threads.
"""

from netbed import observe
from netbed.scenarios import children
from netbed.scenarios.catalogue import scenario
from netbed.scenarios.lab import Lab

CLIENTS = 3
FORK_PER_CLIENT = "UNP 4.8 forks a child per client"


@scenario("concurrent-server", "4.8", takes=("server", "client"), timers_s=0.0)
def concurrent_server(lab: Lab) -> None:
    clients = [lab.client(name=f"client{i + 1}") for i in range(CLIENTS)]
    for i, client in enumerate(clients):
        client.send(f"I am client {i + 1}")
    echoed: dict[str, str] = {}  # client name -> its connection's close kind, or why it did not echo
    for i, client in enumerate(clients):
        waited = any(kind.startswith("no echo") for kind in echoed.values())  # the others had their time
        timeout = 1 if waited else 10
        try:
            client.expect_echo(f"I am client {i + 1}", timeout=timeout)
            echoed[client.name] = str(client.connection.close_kind)
        except observe.WaitTimeout:
            echoed[client.name] = f"no echo in {timeout} s while the others are connected"
    missing = [name for name, kind in echoed.items() if kind.startswith("no echo")]
    lab.check(f"all {CLIENTS} clients echoed while all {CLIENTS} connections are open (on the wire)",
              all(kind == "open" for kind in echoed.values()), f"{CLIENTS} open connections, each echoed",
              "; ".join(f"{name}: {kind}" for name, kind in echoed.items())
              + (" (an iterative server: it serves one client at a time)" if missing else ""))
    if missing:
        return

    port = f":{lab.programs.port}"
    listener = lab.listener()
    procs = {p.pid: p for p in lab.processes("server")}
    listening = sorted({pid for s in lab.sockets("server") if s.state == "LISTEN" and s.local.endswith(port)
                        for pid in s.pids})
    inherited = [pid for pid in listening if pid != listener and procs.get(pid) and procs[pid].ppid == listener]
    lab.check("the listening socket in the parent only", listening == [listener], f"pid {listener}",
              f"also in its children {inherited}: they do not close the listening socket after fork "
              f"(UNP 4.8: the child closes listenfd)" if inherited else f"pids {listening}")
    owned = children.settled_owners(lab, clients, listener)
    procs = {p.pid: p for p in lab.processes("server")}
    mine = {port: tuple(p for p in pids if p != listener) for port, pids in owned.items()}
    sole = {pids[0] for pids in mine.values() if len(pids) == 1}  # the connections' sole owners but the listener
    one_child_each = (bool(owned) and len(sole) == len(owned)  # every connection one owner, none shared
                      and all(procs.get(pid) and procs[pid].ppid == listener for pid in sole))
    fork_per_client = one_child_each and all(len(pids) == 1 for pids in owned.values())
    if fork_per_client:
        observed = f"{len(owned)} connections, {len(sole)} distinct children of pid {listener}"
    elif owned and all(pids == (listener,) for pids in owned.values()):
        observed = f"{children.one_process(lab, listener)}: not fork-per-client ({FORK_PER_CLIENT})"
    elif owned and all(listener in pids and len(pids) > 1 for pids in owned.values()):
        observed = (f"the parent (pid {listener}) keeps a copy of every connection its children serve: it does not "
                    "close the connected socket after fork (UNP 4.8: the parent closes connfd; else the child's "
                    "close sends no FIN)" + ("; and each child holds the connections accepted before it"
                                             if not one_child_each else ""))
    else:
        observed = "; ".join(f"port {port} owned by {list(pids)} (ppid {[procs[p].ppid for p in pids if p in procs]})"
                             for port, pids in owned.items()) + f"; the listener is pid {listener}"
    lab.check(f"each of the {CLIENTS} clients' {len(owned)} connections owned by its own child of the listener",
              fork_per_client, f"{len(owned)} connections, {len(owned)} distinct children of pid {listener}", observed)
    for client in clients:
        lab.expect_wire(f"{client.name}: handshake and echo", client.connection,
                        "client > server  S", "server > client  S.", "client > server  .",
                        "client > server  P.", "server > client  P.")
