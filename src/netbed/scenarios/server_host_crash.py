"""UNP 5.14: crash of the server host.

The server host loses power while the client is idle; the client then types
a line. Nothing answers: no FIN, no RST, not even an ACK, so the client's TCP
retransmits the line with gaps that roughly double, then gives up, and the
client's read fails with ETIMEDOUT. The book's Berkeley TCP tries for about 9
minutes; here the client's kernel is tuned (net.ipv4.tcp_retries2 = 5) so it
gives up after about 13 s of retransmissions, the same story in seconds.

Any echo server and any line-by-line client are judged: the retransmissions
are counted by sequence numbers (a client that writes its line's first byte
alone, as the book's 5.13 client, retransmits that byte: no keep-alive), and
the client must report ETIMEDOUT: a message naming it ("Connection timed
out"), or, if it says nothing, a failure status when its TCP gave up. A
message naming another errno, a silent exit 0, or no end at all fails; a
client that prints no echo (buffered stdout) is not judged.
"""

import time

from netbed.scenarios.catalogue import scenario
from netbed.scenarios.client_errors import resend_gaps, resent
from netbed.scenarios.lab import Lab

RETRIES = 5
GIVE_UP_S = round(0.2 * (2 ** (RETRIES + 1) - 1), 1)  # RTO 200 ms doubling: 12.6 s


@scenario("server-host-crash", "5.14", takes=("server", "client"),
          client_sysctls={"net.ipv4.tcp_retries2": RETRIES}, timers_s=GIVE_UP_S)
def server_host_crash(lab: Lab) -> None:
    client = lab.client()
    client.send("hello")
    client.expect_echo("hello")

    lab.crash("server")
    crashed_at = time.time()
    client.send("after the crash")
    client.expect_error("ETIMEDOUT", timeout=GIVE_UP_S + 10, when="after a crash of the server host")

    conn = client.connection
    lab.key_connections.append(conn)
    after = [s for s in conn.segments if s.ts >= crashed_at]
    again = resent(after)
    lab.check(f"the line is retransmitted into silence, {RETRIES} times or more (by sequence numbers)",
              len(again) >= RETRIES, f"{RETRIES}+ retransmissions of the line's first byte",
              f"{len(again)} retransmission(s) of seq " + ", ".join(sorted({str(s.seq) for s in again}))
              + (f"; Wireshark calls {sum(s.is_keepalive for s in again)} of them keep-alives"
                 if any(s.is_keepalive for s in again) else ""))
    gaps = resend_gaps(after)
    ratios = [later / earlier for earlier, later in zip(gaps, gaps[1:]) if earlier > 0]
    lab.check("retransmission gaps roughly double", len(ratios) >= 3 and all(1.5 <= r <= 2.6 for r in ratios[1:]),
              "each gap 1.5-2.6 times the one before", ", ".join(f"{g:.2f}s" for g in gaps) or "no retransmission")
    first_try = next((s for s in after if s.sender == "client" and s.payload_len), None)
    answers = [s for s in after if s.sender == "server" and first_try and s.index > first_try.index]
    lab.check("the crashed host sends nothing: no FIN, no RST, no ACK", first_try is not None and not answers,
              "no segment from the server after the line",
              "the line never left" if first_try is None else
              f"{len(answers)} segment(s): " + " ".join(s.tcpdump for s in answers[:5]) if answers else "none")
