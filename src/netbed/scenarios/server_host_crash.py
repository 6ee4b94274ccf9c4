"""UNP 5.14: crash of the server host.

The server host loses power while the client is idle; the client then types
a line. Nothing answers: no FIN, no RST, not even an ACK, so the client's TCP
retransmits the line with gaps that roughly double, then gives up, and the
client's read fails with ETIMEDOUT. The book's Berkeley TCP tries for about 9
minutes; here the client's kernel is tuned (net.ipv4.tcp_retries2 = 5) so it
gives up after about 13 s of retransmissions, the same story in seconds.
"""

from netbed.scenarios.catalogue import scenario
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
    client.send("after the crash")
    client.expect_error("ETIMEDOUT", timeout=GIVE_UP_S + 10)

    conn = client.connection
    lab.expect_wire("the line is retransmitted into silence", conn,
                    "client > server  P.",
                    f"client > server  P.  retransmission {RETRIES}+")
    gaps = conn.retransmission_gaps("client")
    ratios = [later / earlier for earlier, later in zip(gaps, gaps[1:]) if earlier > 0]
    lab.check("retransmission gaps roughly double", len(ratios) >= 3 and all(1.5 <= r <= 2.6 for r in ratios[1:]),
              "each gap 1.5-2.6 times the one before", ", ".join(f"{g:.2f}s" for g in gaps))
    line = [s for s in conn.segments if s.sender == "client" and s.payload_len][-1]
    first_try = next(s for s in conn.segments if s.sender == "client" and s.seq == line.seq)
    answers = [s for s in conn.segments[first_try.index:] if s.sender == "server"]
    lab.check("the crashed host sends nothing: no FIN, no RST, no ACK", not answers,
              "no segment from the server after the line", f"{len(answers)} segments")
