"""UNP 5.12: termination of the server process.

The server child serving the client is killed. Its TCP sends a FIN, which
the client's TCP ACKs, leaving the client's socket in CLOSE-WAIT; the client
is blocked reading its terminal and does not notice. Its next line goes out
anyway, the server's TCP, which has no socket for it, answers with an RST,
and the client, reading the FIN first as EOF, says the server terminated
prematurely. Linux behaves as the book says.

Any server and client are judged: the process owning this client's
connection is killed (a single process serving every connection is not: the
scenario is about a fork-per-client server's child, so it is not judged);
the child must be gone while the parent still listens, the wire must show
exactly the child's FIN, the client's ACK, its next line and the RST, and the
client must report the server's end (a failure status or a message on
stderr; netbed's own client: "server terminated prematurely").
"""

from __future__ import annotations

from netbed import observe
from netbed.scenarios.catalogue import scenario
from netbed.scenarios.lab import Client, Lab, ScenarioError
from netbed.tcp import Connection

NOTICE_S = 2.0  # how long the client's socket must stay in CLOSE-WAIT, unnoticed (socat closes 0.5 s after a FIN)
SILENT = ("the client ignored the server's FIN and the RST: it exited 0 without a word "
          "(UNP 5.12: str_cli must report 'server terminated prematurely')")


@scenario("server-process-killed", "5.12", takes=("server", "client"), timers_s=0.0)
def server_process_killed(lab: Lab) -> None:
    client = lab.client()
    client.send("hello")
    client.expect_echo("hello")
    kill_serving_child(lab, client)
    if not client_waits_in_close_wait(lab, client):
        return

    client.send("another line")
    lab.wait_on_wire(client, lambda c: reset_after_fin(c) is not None or client.program.exit is not None,
                     timeout=10, what="the server's RST to the next line")
    if client.user:
        reports_the_end(lab, client, timeout=10)
    else:
        client.expect_error("premature", timeout=10)
    conn = client.connection
    lab.expect_wire("FIN from the dead child, the client's ACK, its next line, the RST", conn,
                    "server > client  F.",
                    "client > server  .",
                    "client > server  P.",
                    "server > client  R", strict=True)
    nothing_after_the_reset(lab, conn)


def kill_serving_child(lab: Lab, client: Client) -> tuple[int, int]:
    """Kill the process serving this client's connection (not judged if it is the listener); (child, listener)."""
    listener = lab.listener()
    if client_sent_fin(client.connection):
        closed_by_itself(client)
    try:
        child = lab.serving(client)
    except ScenarioError:
        if client_sent_fin(lab.wait_on_wire(client, client_sent_fin, timeout=5, what=f"{client.name}'s FIN")):
            closed_by_itself(client)
        raise
    if child == listener:
        lab.not_judged(f"one process (pid {child}) serves every connection: killing it kills the server, not a "
                       f"child (UNP {lab_section(lab)} kills the child of a fork-per-client server)")
    lab.kill("server", pid=child, signal="SIGTERM")
    alive = [p for p in lab.processes("server") if p.pid == child and not p.zombie]
    listening = listeners(lab)
    lab.check(f"the child serving {client.name} (pid {child}) is gone while the parent (pid {listener}) still listens",
              not alive and listener in listening, f"no live process {child}; {listener} listening",
              f"process {child}: {alive[0].stat if alive else 'gone'}; listening: {listening or 'nobody'}")
    return child, listener


def closed_by_itself(client: Client) -> None:
    client.lab.not_judged(f"{client.name} closed its connection by itself after its echo, before the server was "
                          "killed (its FIN came first): no connection is left for the server's death to show on; the "
                          "book's client keeps it open while it reads its terminal")


def lab_section(lab: Lab) -> str:
    return "5.13" if lab.scenario == "sigpipe" else "5.12"


def listeners(lab: Lab) -> list[int]:
    port = f":{lab.programs.port}"
    return sorted({pid for s in lab.sockets("server") if s.state == "LISTEN" and s.local.endswith(port)
                   for pid in s.pids})


def client_waits_in_close_wait(lab: Lab, client: Client) -> bool:
    """After the child's FIN the client's socket sits in CLOSE-WAIT, unnoticed; False when the client
    noticed the FIN by itself and ended (judged then, and the next line is not typed)."""
    local = f":{client.connection.client.port}"

    def state() -> tuple[str, object]:
        mine = [s.state for s in lab.sockets("client") if s.local.endswith(local) and s.state != "LISTEN"]
        return (mine[0] if mine else "no socket"), client.program.exit

    try:
        seen = lab.wait_for(state, lambda st: st[0] == "CLOSE-WAIT" or st[1] is not None, timeout=10,
                            what="the client's socket in CLOSE-WAIT")
    except observe.WaitTimeout:
        seen = state()
    conn = client.connection
    if client_sent_fin(conn) and not fin_before(conn, "server", "client"):
        closed_by_itself(client)
    if seen[1] is None and not client_sent_fin(conn):
        try:  # a client blocked reading its terminal does not notice the FIN; one that watches the socket does
            lab.wait_for(lambda: (client.program.exit, client_sent_fin(client.connection)), any, timeout=NOTICE_S,
                         what="the client to react to the FIN (the book's client does not)")
        except observe.WaitTimeout:
            pass
        seen = state()
    if seen[1] is not None or client_sent_fin(client.connection):
        noticed_the_fin(lab, client)
        return False
    lab.check(f"{client.name}'s socket is in CLOSE-WAIT after the child's FIN and stays there {NOTICE_S:g} s "
              "(the client has not noticed)", seen[0] == "CLOSE-WAIT", "CLOSE-WAIT", seen[0])
    return True


def client_sent_fin(conn: Connection) -> bool:
    return any(s.sender == "client" and "F" in s.letters for s in conn.segments)


def fin_before(conn: Connection, first: str, then: str) -> bool:
    """Whether `first` sent a FIN before `then` sent one (or `then` sent none)."""
    fins = [s.sender for s in conn.segments if "F" in s.letters]
    return first in fins and (then not in fins or fins.index(first) < fins.index(then))


def noticed_the_fin(lab: Lab, client: Client) -> None:
    """The client ended on the server's FIN before its next line (a select-based client, a relay such as socat)."""
    try:
        end = client.program.wait(timeout=10)
    except observe.WaitTimeout:
        lab.not_judged(f"{client.name} closed its end when the server's FIN came, before its next line was typed, "
                       "and went on running without a word: it watches the socket, as a relay such as socat does; "
                       f"UNP {lab_section(lab)} judges a client blocked reading its terminal (str_cli), whose next "
                       "line draws the RST")
    said = [line for line in client.program.stderr if line.strip()]
    lab.moment(client.name, f"ended {end} on the server's FIN{f': {said[-1]}' if said else ''}")
    if end.ok and not said:
        lab.not_judged(f"{client.name} ended on the server's FIN before its next line was typed ({end}, nothing on "
                       "stderr): it watches the socket and treats the FIN as the end of the session, as a relay "
                       f"such as socat does; UNP {lab_section(lab)} judges a client blocked reading its terminal "
                       "(str_cli), whose next line draws the RST")
    lab.note(client.name, f"reported the server's end as soon as its FIN arrived ({end}), as the select-based "
                          "str_cli of 6.4 does: there is no next line to draw an RST")


def reports_the_end(lab: Lab, client: Client, timeout: float) -> observe.Exit | None:
    """A user's client reports the server's termination: a failure status or a message on stderr."""
    try:
        end = client.program.wait(timeout=timeout)
    except observe.WaitTimeout:
        lab.check(f"{client.name} reports the server's termination", False, "it ends, with a failure status or a "
                  "message on stderr", f"still running {timeout:g} s after the RST, having said "
                  f"{client.program.stderr[-1:] or 'nothing'}: it ignores the EOF and the RST")
        return None
    said = [line for line in client.program.stderr if line.strip()]
    lab.moment(client.name, f"ended {end}{f': {said[-1]}' if said else ''}")
    lab.check(f"{client.name} reports the server's termination", not end.ok or bool(said),
              "a failure status or a message on stderr",
              f"{end}; stderr {said[-1:]}" if said or not end.ok else SILENT)
    return end


def reset_after_fin(conn: Connection):
    """The server's RST after its FIN, or None."""
    fin = next((s for s in conn.segments if s.sender == "server" and "F" in s.letters), None)
    if fin is None:
        return None
    return next((s for s in conn.segments[fin.index:] if s.sender == "server" and "R" in s.letters), None)


def nothing_after_the_reset(lab: Lab, conn: Connection) -> None:
    rst = reset_after_fin(conn)
    after = conn.segments[rst.index + 1:] if rst else []
    lab.check("nothing follows the RST on the wire", rst is not None and not after, "the RST is the last segment",
              "no RST" if rst is None else " ".join(f"{s.sender}:{s.letters}" for s in after) or "nothing")
