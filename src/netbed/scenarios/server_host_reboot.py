"""UNP 5.15: crash of the server host, then reboot.

The server host crashes while the client is idle, the client types a line,
and its TCP retransmits into silence. The server reboots with the same
address and MAC but no memory of the connection, so the next retransmission
draws an RST in the same millisecond and the client's read fails with
ECONNRESET. Linux behaves as the book says.

Any echo server and any line-by-line client are judged from the wire and
the client's end: nothing comes from the server between the crash and the
reboot, the RST answers the client's retransmitted line (the segment just
before it, retransmission told by sequence numbers) with the sequence number
RFC 9293 requires (the RST's seq is that segment's ACK number), and the
client reports ECONNRESET ("Connection reset by peer", or a failure right
after the RST), not ETIMEDOUT nor a silent exit 0.
"""

import time

from netbed.scenarios.catalogue import scenario
from netbed.scenarios.client_errors import resent
from netbed.scenarios.lab import Lab

REPLY_S = 0.01   # the rebooted kernel answers the retransmission at once


@scenario("server-host-reboot", "5.15", takes=("server", "client"),
          client_sysctls={"net.ipv4.tcp_retries2": 8}, timers_s=0.6)
def server_host_reboot(lab: Lab) -> None:
    client = lab.client()
    client.send("hello")
    client.expect_echo("hello")

    lab.crash("server")
    crashed_at = time.time()
    client.send("after the crash")
    lab.wait_on_wire(client, lambda c: len(resent(c.segments)) >= 2, timeout=10,
                     what="two retransmissions into the crashed host (by sequence numbers)")
    rebooting_at = time.time()
    lab.reboot("server")
    client.expect_error("ECONNRESET", timeout=20, when="when the rebooted server host answers its retransmission")

    conn = lab.wait_on_wire(client, lambda c: c.first_reset == "server", timeout=5, what="the server's RST")
    lab.key_connections.append(conn)
    segs = conn.segments
    silent = [s for s in segs if s.sender == "server" and crashed_at <= s.ts <= rebooting_at]
    lab.check("nothing comes from the server between the crash and the reboot", not silent,
              "no segment from the server", f"{len(silent)} segment(s): " + " ".join(s.tcpdump for s in silent[:5])
              if silent else "none")
    reset = next(s for s in segs if s.sender == "server" and "R" in s.letters)
    before = segs[reset.index - 1] if reset.index else None
    again = {s.index for s in resent(segs)}
    lab.check("the RST answers the client's retransmitted line",
              before is not None and before.sender == "client" and before.index in again
              and reset.ts - before.ts <= REPLY_S,
              f"just before the RST: the client's retransmission, within {REPLY_S * 1000:g} ms",
              "nothing" if before is None else f"{before.describe()} then the RST "
              f"{(reset.ts - before.ts) * 1000:.2f} ms later"
              + ("" if before.index in again else " (not a retransmission)")
              + (" (by sequence numbers a retransmission; Wireshark calls it a keep-alive)"
                 if before.index in again and before.is_keepalive else ""))
    lab.check("the RST's sequence number is the ACK number of the segment it answers (RFC 9293)",
              before is not None and bool(before.flags & 0x10) and reset.raw_seq == before.raw_ack,
              f"RST seq = {before.raw_ack if before else '?'} (the segment's ACK)",
              f"RST seq {reset.raw_seq}, flags {reset.tcpdump}")
