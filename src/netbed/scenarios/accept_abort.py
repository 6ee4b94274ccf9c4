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
"""

from netbed.scenarios.catalogue import OWN, scenario
from netbed.scenarios.lab import Lab

ACCEPT_DELAY = 3.0   # long enough for the client to connect and abort while the server sleeps


@scenario("accept-abort", "5.11", own=OWN, server=("--accept-delay", str(ACCEPT_DELAY)), timers_s=ACCEPT_DELAY)
def accept_abort(lab: Lab) -> None:
    lab.wait_server_event("accept_delay")
    client = lab.client("--linger0", "--report")
    client.expect_connected()
    queued = server_side(lab)
    lab.check("before accept: the connection is ESTABLISHED in the listen queue, owned by no process",
              queued["LISTEN"].recv_q == 1 and "ESTABLISHED" in queued and not queued["ESTABLISHED"].pids,
              "listen queue 1; ESTABLISHED, no pid", describe(queued))

    client.end_input()
    conn = lab.wait_on_wire(client, lambda c: c.first_reset is not None, timeout=5, what="the client's RST")
    lab.expect_wire("the handshake, then the client's RST", conn,
                    "client > server  S",
                    "server > client  S.",
                    "client > server  .",
                    "client > server  R.", strict=True)
    aborted = server_side(lab)
    lab.check("after the RST: the connection is closed but still in the listen queue",
              aborted["LISTEN"].recv_q == 1 and "ESTABLISHED" not in aborted, "listen queue 1; no ESTABLISHED",
              describe(aborted))

    accepted = lab.wait_server_event("accepted", timeout=ACCEPT_DELAY + 5)[0]
    reset_at = next(s.ts for s in conn.segments if "R" in s.letters)
    lab.check("Linux accept returns the aborted connection, after the RST", accepted["t"] > reset_at
              and accepted["peer"] == str(conn.client), f"accepted, peer {conn.client}",
              f"accepted {accepted['t'] - reset_at:.2f} s after the RST, peer {accepted['peer']}")
    lab.wait_server_event("error", call="read")
    errors = {e["call"]: e["errno"] for e in lab.server_events() if e["event"] == "error"}
    lab.expect_equal("getpeername fails with ENOTCONN, the child's first read with ECONNRESET",
                     {"getpeername": "ENOTCONN", "read": "ECONNRESET"}, errors)


def server_side(lab: Lab) -> dict:
    """The server host's sockets on the server's port, by state."""
    return {s.state: s for s in lab.sockets("server") if s.local.endswith(f":{lab.programs.port}")}


def describe(socks: dict) -> str:
    return "; ".join(f"{state} recv-q {s.recv_q} pids {list(s.pids)}" for state, s in socks.items())
