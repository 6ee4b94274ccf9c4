"""UNP 5.15, 7.5: SO_KEEPALIVE notices a crashed server host.

Two clients sit idle on connections to the same server; one of them set
SO_KEEPALIVE. The server host crashes. After the idle time the keepalive
client's TCP sends probes that nothing answers, and after the last one it
gives up: the client fails with ETIMEDOUT. The other client notices nothing
in the same time: no probe, its socket still ESTABLISHED. The book's
keepalive waits two hours, then probes 9 times 75 s apart; here the client
sets TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT to seconds, and Linux, unlike
the book, tells the peer it gave up with a final RST.
"""

from netbed.scenarios.catalogue import OWN, scenario
from netbed.scenarios.lab import Lab

KEEPIDLE, KEEPINTVL, KEEPCNT = 2, 1, 3
GIVE_UP_S = KEEPIDLE + KEEPINTVL * KEEPCNT  # from the last word heard from the server to ETIMEDOUT
MARGIN_S = 0.5                              # keepalive timer slack


@scenario("keepalive-crash", "5.15, 7.5", own=OWN, timers_s=GIVE_UP_S)
def keepalive_crash(lab: Lab) -> None:
    watched = lab.client("--mode", "idle", "--keepalive", "--keepidle", str(KEEPIDLE), "--keepintvl",
                         str(KEEPINTVL), "--keepcnt", str(KEEPCNT), "--report", name="keepalive client")
    plain = lab.client("--mode", "idle", "--report", name="plain client")
    watched.expect_connected()
    plain.expect_connected()
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


def local(client) -> str:
    """The client's end of its connection as `ss` writes it."""
    conn = client.connection
    return f"{conn.client.ip}:{conn.client.port}"
