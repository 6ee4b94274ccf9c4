"""UNP 5.15, 7.5: SO_KEEPALIVE notices a crashed server host.

Two clients sit idle on connections to the same server; one of them set
SO_KEEPALIVE. The server host crashes. After the idle time the keepalive
client's TCP sends probes that nothing answers, and after the last one it
gives up: the client fails with ETIMEDOUT. The other client notices nothing
in the same time: no probe, its socket still ESTABLISHED. The book's
keepalive waits two hours, then probes 9 times 75 s apart; here the client
sets TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT to seconds, and Linux, unlike
the book, tells the peer it gave up with a final RST.

The user's server is judged: it must accept both connections (one that
serves one client at a time leaves the second in the listen queue and
fails); the clients are netbed's, because the lesson
needs one that sets SO_KEEPALIVE with seconds-long timers, which the book's
client does not (its failure after a crash is judged by server-host-crash).
"""

from netbed.scenarios.catalogue import scenario
from netbed.observe import WaitTimeout
from netbed.scenarios.lab import Lab, ScenarioError

KEEPIDLE, KEEPINTVL, KEEPCNT = 2, 1, 3
GIVE_UP_S = KEEPIDLE + KEEPINTVL * KEEPCNT  # from the last word heard from the server to ETIMEDOUT
MARGIN_S = 0.5                              # keepalive timer slack


OWN_CLIENT = ("keepalive needs a client that sets SO_KEEPALIVE and seconds-long TCP_KEEPIDLE, TCP_KEEPINTVL, "
              "TCP_KEEPCNT; yours is judged by server-host-crash")


@scenario("keepalive-crash", "5.15, 7.5", takes=("server",), own=OWN_CLIENT, timers_s=GIVE_UP_S)
def keepalive_crash(lab: Lab) -> None:
    watched = lab.client("--mode", "idle", "--keepalive", "--keepidle", str(KEEPIDLE), "--keepintvl",
                         str(KEEPINTVL), "--keepcnt", str(KEEPCNT), "--report", name="keepalive client")
    plain = lab.client("--mode", "idle", "--report", name="plain client")
    watched.expect_connected()
    plain.expect_connected()
    if lab.programs.server_cmd:
        accepted(lab, watched, plain)
    timers = {s.local: s.timer for s in lab.sockets("client")}
    lab.check("the kernel runs a keepalive timer on the keepalive client's socket only",
              timers[local(watched)].startswith("keepalive") and not timers[local(plain)].startswith("keepalive"),
              "keepalive timer / none", f"{timers[local(watched)] or 'none'} / {timers[local(plain)] or 'none'}")

    lab.crash("server")
    watched.expect_error("ETIMEDOUT", timeout=GIVE_UP_S + 5)
    plain_state = {s.local: s.state for s in lab.sockets("client")}.get(local(plain), "gone")
    lab.expect_equal("meanwhile the plain client's socket is still ESTABLISHED", "ESTABLISHED", plain_state)
    lab.expect_equal("meanwhile the plain client is still running", None, plain.program.exit)

    conn = lab.wait_on_wire(watched, lambda c: c.first_reset == "client", timeout=5, what="the client's final RST")
    lab.expect_wire(f"{KEEPCNT} unanswered keepalive probes, then the client's RST", conn,
                    f"client > server  .  keepalive {KEEPCNT}",
                    "client > server  R.", strict=True)
    heard = [s.ts for s in conn.segments if s.sender == "server"][-1]
    probes = [f"{s.ts - heard:.2f}" for s in conn.segments if s.is_keepalive]
    gave_up = next(s.ts for s in conn.segments if "R" in s.letters) - heard
    lab.check(f"the client gives up {GIVE_UP_S} s (idle {KEEPIDLE} + {KEEPCNT} x {KEEPINTVL}) after the server's "
              "last segment", GIVE_UP_S <= gave_up <= GIVE_UP_S + MARGIN_S,
              f"{GIVE_UP_S}-{GIVE_UP_S + MARGIN_S} s", f"probes at {', '.join(probes)} s, RST at {gave_up:.2f} s")
    quiet = plain.connection
    lab.expect_wire("the plain client's connection: the handshake", quiet,
                    "client > server  S", "server > client  S.", "client > server  .", strict=True)
    lab.check("and then nothing: no probe", quiet.keepalive_probes == 0 and len(quiet.segments) == 3,
              "no segment after the handshake", " ".join(quiet.tcpdump_flags))


def accepted(lab: Lab, *clients) -> bool:
    """The user's server accepted these clients' connections: a process on its host owns each of them.

    A connection the kernel completed but no process owns waits in the listen
    queue: with another client's owned, the server serves one client at a time.
    """
    owners = {}
    for client in clients:
        try:
            owners[client.name] = lab.wait_for(lambda: _owner(lab, client), lambda pid: pid is not None, timeout=5,
                                               what=f"a server process owning {client.name}'s connection")
        except WaitTimeout:  # never accepted: the check says so
            owners[client.name] = None
    waiting = [name for name, pid in owners.items() if pid is None]
    why = ("" if not waiting else
           f"; {', '.join(waiting)} connected (the kernel completed the handshake) but never accepted: "
           + ("the server does not accept a second client while the first is connected (not concurrent, UNP 4.8)"
              if len(waiting) < len(owners) else "the server accepts no connection"))
    return lab.check("the server accepted the connections (a process on its host owns each)", not waiting,
                     "an owner for each", ", ".join(f"{k}: pid {v or 'none'}" for k, v in owners.items()) + why)


def _owner(lab: Lab, client) -> int | None:
    try:
        return lab.serving(client)
    except ScenarioError:  # no owner yet (still in the accept queue)
        return None


def local(client) -> str:
    """The client's end of its connection as `ss` writes it."""
    conn = client.connection
    return f"{conn.client.ip}:{conn.client.port}"
