"""UNP 5.15: a keepalive probe to the rebooted server host draws an RST.

The client sits idle on a connection with SO_KEEPALIVE set. The server host
crashes, so the first probe goes unanswered; then it reboots with the same
address but no memory of the connection, and the next probe draws an RST in
the same millisecond. The client learns that the server is gone without
sending a byte: its read fails with ECONNRESET. As in the book, except that
the probes come seconds apart (the client tunes TCP_KEEPIDLE and
TCP_KEEPINTVL) instead of after two hours of idleness.

The user's server is judged (it must accept the connection; after the
reboot it is gone, as is its memory of it); the client is netbed's, because
the lesson needs one that sets SO_KEEPALIVE with seconds-long timers (the
book's client is judged after a reboot by server-host-reboot).
"""

from netbed.scenarios.catalogue import scenario
from netbed.scenarios.keepalive_crash import accepted
from netbed.scenarios.lab import Lab

KEEPIDLE, KEEPINTVL, KEEPCNT = 2, 1, 8   # enough probes to outlast the reboot
REPLY_S = 0.01                           # the rebooted kernel's RST comes at once


@scenario("keepalive-reboot", "5.15", takes=("server",),
          own="keepalive needs a client that sets SO_KEEPALIVE and seconds-long TCP_KEEPIDLE, TCP_KEEPINTVL, "
              "TCP_KEEPCNT; yours is judged by server-host-reboot",
          timers_s=KEEPIDLE + KEEPINTVL)
def keepalive_reboot(lab: Lab) -> None:
    client = lab.client("--mode", "idle", "--keepalive", "--keepidle", str(KEEPIDLE), "--keepintvl",
                        str(KEEPINTVL), "--keepcnt", str(KEEPCNT), "--report")
    client.expect_connected()
    if lab.programs.server_cmd:
        accepted(lab, client)

    lab.crash("server")
    lab.wait_on_wire(client, lambda c: c.keepalive_probes >= 1, timeout=KEEPIDLE + 2,
                     what="a keepalive probe into the crashed host")
    lab.reboot("server")
    client.expect_error("ECONNRESET", timeout=KEEPINTVL * KEEPCNT + 5)

    conn = lab.wait_on_wire(client, lambda c: c.first_reset == "server", timeout=5, what="the server's RST")
    lab.expect_wire("probes into the crashed host go unanswered; the next one draws an RST", conn,
                    "client > server  .  keepalive+",
                    "server > client  R", strict=True)
    probe, reset = conn.segments[-2:]
    lab.check("the RST answers the probe at once", reset.ts - probe.ts <= REPLY_S,
              f"within {REPLY_S * 1000:g} ms", f"{(reset.ts - probe.ts) * 1000:.2f} ms")
