"""UNP 5.15: a hung server: keepalive cannot tell, an application heartbeat can.

Two clients are connected to the server; one set SO_KEEPALIVE, the other
sends its own heartbeat line every second. The server host's processes hang
(paused), but its kernel runs on: it ACKs every keepalive probe, so keepalive
never fires however long the hang lasts, and it ACKs the heartbeats too, yet
no echo comes back, so after three unanswered heartbeats the heartbeat client
declares the server dead. When the processes resume, the keepalive client's
connection was never in danger and its next line is echoed. This is why the
book says keepalive detects a crashed or unreachable host, not a dead
application; the keepalive timers are seconds here, not two hours.

The user's server is judged: it must accept both clients (one that serves
one client at a time never echoes the second's heartbeats, and fails) and
echo (the first line and the heartbeats before the pause, the line after
it: its processes resume where they were). The clients are netbed's, because the lesson needs one that
sets SO_KEEPALIVE with seconds-long timers and one that sends an application
heartbeat, which the book's client does neither.
"""

import time

from netbed.scenarios.catalogue import scenario
from netbed.scenarios.keepalive_crash import accepted
from netbed.scenarios.lab import Lab

KEEPIDLE, KEEPINTVL, KEEPCNT = 1, 1, 3
HEARTBEAT, MISSES = 1, 3
KEEPALIVE_GIVE_UP_S = KEEPIDLE + KEEPINTVL * KEEPCNT   # were the probes unanswered
HEARTBEAT_GIVE_UP_S = HEARTBEAT * (MISSES + 1)


@scenario("heartbeat-pause", "5.15", takes=("server",),
          own="it needs a client that sets SO_KEEPALIVE and seconds-long TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, "
              "and one that sends an application heartbeat; yours is judged by server-host-crash",
          timers_s=max(KEEPALIVE_GIVE_UP_S, HEARTBEAT_GIVE_UP_S))
def heartbeat_pause(lab: Lab) -> None:
    keepalive = lab.client("--mode", "select", "--keepalive", "--keepidle", str(KEEPIDLE), "--keepintvl",
                           str(KEEPINTVL), "--keepcnt", str(KEEPCNT), name="keepalive client")
    keepalive.send("hello")
    keepalive.expect_echo("hello")
    heartbeat = lab.client("--mode", "idle", "--heartbeat", str(HEARTBEAT), "--heartbeat-misses", str(MISSES),
                           "--report", name="heartbeat client")
    heartbeat.expect_connected()
    if lab.programs.server_cmd and not accepted(lab, keepalive, heartbeat):
        return  # no echo will come to the heartbeat client: the check says why
    heartbeat.program.expect_output(r"^event=heartbeat_reply ", timeout=HEARTBEAT + 5, stream="stderr")

    paused_at = time.time()
    lab.pause("server")
    heartbeat.expect_error("heartbeat", timeout=HEARTBEAT_GIVE_UP_S + 5)
    conn = lab.wait_on_wire(keepalive, lambda c: answered(c, paused_at)[-1:] > [paused_at + KEEPALIVE_GIVE_UP_S],
                            timeout=KEEPALIVE_GIVE_UP_S + KEEPIDLE + 5,
                            what=f"a keepalive probe answered more than {KEEPALIVE_GIVE_UP_S} s into the pause")
    replies = answered(conn, paused_at)
    sent = [t for t in probes(conn, paused_at) if t <= replies[-1]]
    lab.check(f"the paused kernel answers every probe, longer than keepalive needs to give up "
              f"({KEEPALIVE_GIVE_UP_S} s)", len(replies) == len(sent) > KEEPCNT,
              f"all probes answered, more than {KEEPCNT}", f"{len(replies)} of {len(sent)} probes answered, at "
              + ", ".join(f"{t - paused_at:.1f}" for t in replies) + " s into the pause")
    lab.expect_wire("keepalive probes, each ACKed by the paused kernel", conn,
                    *["client > server  .  keepalive", "server > client  .  keepalive-ack"] * (KEEPCNT + 1))
    lab.expect_equal("the keepalive client is still running", None, keepalive.program.exit)
    lab.expect_wire("heartbeats ACKed by the paused kernel but never echoed; the client gives up and closes",
                    heartbeat.connection,
                    *["client > server  P.", "server > client  .  nodata"] * MISSES,
                    "client > server  F.")

    lab.unpause("server")
    keepalive.send("after the pause")
    keepalive.expect_echo("after the pause")
    states = {s.local: s.state for s in lab.sockets("client")}
    ours = keepalive.connection.client
    lab.expect_equal("the keepalive client's connection lived through the hang", "ESTABLISHED",
                     states.get(f"{ours.ip}:{ours.port}", "gone"))


def probes(conn, since: float) -> list[float]:
    """When keepalive probes were sent after `since` (capture time)."""
    return [s.ts for s in conn.segments if s.is_keepalive and s.ts >= since]


def answered(conn, since: float) -> list[float]:
    """When the keepalive probes sent after `since` were answered (capture time)."""
    segs = conn.segments
    return [reply.ts for probe, reply in zip(segs, segs[1:])
            if probe.ts >= since and probe.is_keepalive and reply.sender == "server"]
