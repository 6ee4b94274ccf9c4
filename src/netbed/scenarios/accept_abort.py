"""UNP 5.11: connection abort before accept returns.

The server sleeps before calling accept. Meanwhile a client completes the
three-way handshake, so the connection waits in the listening socket's queue
(`ss` shows it ESTABLISHED, owned by no process), and then aborts it: it sets
SO_LINGER to 0 and closes, and its TCP sends an RST before the server has
called accept. What accept does next is up to the implementation: in
Berkeley-derived kernels the kernel disposes of the aborted connection and
the server never sees it; POSIX says accept fails with ECONNABORTED (SVR4
gave EPROTO), and the server should just call accept again. Linux does
neither: the closed connection stays counted in the listen queue, accept
returns it as if it were alive, getpeername on it fails with ENOTCONN, and
the child's first read fails with ECONNRESET.

A user's server host is frozen (its processes stop; its kernel still
completes the handshake and takes the RST) while netbed's client connects and
aborts, then thawed: whatever its accept loop does, and however many
processes accept, the RST has arrived before its accept. It passes when it
survives that: the same process still listens and the next client gets its
echo. A server that exits on the aborted connection (e.g. on getpeername's
ENOTCONN) fails, quoting its last words.
"""

from netbed.scenarios.catalogue import scenario
from netbed.scenarios.lab import Lab, ScenarioError, sent

ACCEPT_DELAY = 3.0   # long enough for the client to connect and abort while the server sleeps
ABORTING_CLIENT = ("the aborting client must close with SO_LINGER set to a zero timeout so its TCP sends an RST "
                   "(netbed's echo_client --linger0); a user's client closes normally (FIN)")
BUG = ("a connection can be aborted between the handshake and accept; accept's caller must treat "
       "ECONNABORTED/ENOTCONN/ECONNRESET on it as that connection's error, not the server's (UNP 5.11)")


@scenario("accept-abort", "5.11", takes=("server",), own=ABORTING_CLIENT, server=("--accept-delay", str(ACCEPT_DELAY)),
          timers_s=ACCEPT_DELAY)
def accept_abort(lab: Lab) -> None:
    if lab.programs.server_cmd:
        users_server(lab)
        return
    lab.wait_server_event("accept_delay")
    client = lab.client_program("echo_client", "--linger0", "--report")
    client.expect_connected()
    conn = abort_in_queue(lab, client)

    accepted = lab.wait_server_event("accepted", timeout=ACCEPT_DELAY + 5)[0]
    reset_at = next(s.ts for s in conn.segments if "R" in s.letters)
    lab.check("Linux accept returns the aborted connection, after the RST", accepted["t"] > reset_at
              and accepted["peer"] == str(conn.client), f"accepted, peer {conn.client}",
              f"accepted {accepted['t'] - reset_at:.2f} s after the RST, peer {accepted['peer']}")
    lab.wait_server_event("error", call="read")
    errors = {e["call"]: e["errno"] for e in lab.server_events() if e["event"] == "error"}
    lab.expect_equal("getpeername fails with ENOTCONN, the child's first read with ECONNRESET",
                     {"getpeername": "ENOTCONN", "read": "ECONNRESET"}, errors)
    survives(lab, lab.listener())


def users_server(lab: Lab) -> None:
    """Freeze the user's server, let netbed's client connect and abort, thaw the server, judge its survival.

    Freezing (the cgroup freezer, as `docker pause`) rather than SIGSTOP: it holds every process of the
    server, and no parent (a shell, nsenter) sees its child stop and stops with it.
    """
    listener = lab.listener()
    lab.pause("server")
    client = lab.client_program("echo_client", "--linger0", "--report", name="aborting client")
    client.expect_connected()
    abort_in_queue(lab, client)
    lab.unpause("server")
    # The server's accept takes the aborted connection out of the queue (or it dies trying).
    server = lab.server
    if server is None:
        raise ScenarioError("the user's server was not started on the server host's terminal")
    lab.wait_for(lambda: (listening(lab), server.exit),
                 lambda seen: seen[1] is not None or (seen[0] is not None and seen[0].recv_q == 0),
                 timeout=10, what="the server to accept the aborted connection (its listen queue empty)")
    survives(lab, listener)


def abort_in_queue(lab: Lab, client):
    """The client's connection waits in the listen queue, the client aborts it (RST); the captured connection."""
    queued = server_side(lab)
    lab.check("before accept: the connection is ESTABLISHED in the listen queue, owned by no process",
              "LISTEN" in queued and queued["LISTEN"].recv_q == 1 and "ESTABLISHED" in queued
              and not queued["ESTABLISHED"].pids, "listen queue 1; ESTABLISHED, no pid", describe(queued))

    client.end_input()
    conn = lab.wait_on_wire(client, lambda c: c.first_reset is not None, timeout=5, what="the client's RST")
    lab.expect_wire("the handshake, then the client's RST", conn,
                    "client > server  S",
                    "server > client  S.",
                    "client > server  .",
                    "client > server  R.", strict=True)
    aborted = server_side(lab)
    lab.check("after the RST: the connection is closed but still in the listen queue",
              "LISTEN" in aborted and aborted["LISTEN"].recv_q == 1 and "ESTABLISHED" not in aborted,
              "listen queue 1; no ESTABLISHED", describe(aborted))
    return conn


def survives(lab: Lab, listener: int) -> None:
    """After the aborted connection, the same process still listens and the next client gets its echo."""
    sock = listening(lab)
    ended = lab.server.exit if lab.server else None
    if sock is None or ended is not None:
        said = lab.server.stderr[-1] if lab.server and lab.server.stderr else ""
        lab.check("the server survives a connection reset before accept", False,
                  f"process {listener} still listening on port {lab.programs.port}",
                  f"the server exited when a connection was reset before accept "
                  f"({ended or 'nothing listens any more'}{f'; its last words: {said!r}' if said else ''}): {BUG}")
        return
    lab.check("the server survives a connection reset before accept: the same process still listens",
              listener in sock.pids, f"process {listener} listening on port {lab.programs.port}",
              f"listening: pids {list(sock.pids)}")
    client = lab.client(name="next client")
    client.send("after the abort")
    client.expect_echo("after the abort")
    conn = lab.wait_on_wire(client, lambda c: b"after the abort" in sent(c, "server"), timeout=5,
                            what="the echo on the wire")
    lab.check("the next client is served: the server sends its line back", b"after the abort" in sent(conn, "server"),
              "'after the abort' from the server", repr(sent(conn, "server")))


def listening(lab: Lab):
    """The server's LISTEN socket, or None when nothing listens on its port any more."""
    return server_side(lab).get("LISTEN")


def server_side(lab: Lab) -> dict:
    """The server host's sockets on the server's port, by state (also while the host is frozen)."""
    return {s.state: s for s in lab.sockets("server") if s.local.endswith(f":{lab.programs.port}")}


def describe(socks: dict) -> str:
    return "; ".join(f"{state} recv-q {s.recv_q} pids {list(s.pids)}" for state, s in socks.items())
