"""A network partition, healed before TCP gives up.

Not a section of the book, but the other side of 5.14: the client types a
line while the link to the server is cut, and its TCP retransmits it with
doubling gaps, exactly as into a crashed host. The link comes back before
TCP gives up, the next retransmission gets through, the server ACKs it and
echoes the line, and the connection carries on as if nothing had happened:
the client sees only a delay. The client's kernel is set to give up after
8 retransmissions (about 100 s, tcp_retries2 = 8), far beyond the partition.
"""

from netbed.scenarios.catalogue import OWN, scenario
from netbed.scenarios.lab import Lab

RETRIES = 8        # tcp_retries2: the client would give up only after about 100 s
CUT_FOR = 3        # heal after this many retransmissions into the partition
GAPS_S = (0.2, 0.2, 0.4, 0.8, 1.6)   # Linux's retransmission gaps on the bridge (RTO 200 ms, then doubling)
CUT_S = sum(GAPS_S[:CUT_FOR])        # 0.8 s of retransmissions before the heal
NEXT_RTO_S = GAPS_S[CUT_FOR]         # the retransmission after the heal, 0.8 s later


@scenario("partition-heal", "—", own=OWN, client_sysctls={"net.ipv4.tcp_retries2": RETRIES},
          timers_s=CUT_S + NEXT_RTO_S)
def partition_heal(lab: Lab) -> None:
    client = lab.client()
    client.send("hello")
    client.expect_echo("hello")

    lab.partition("client", "server")
    client.send("across the partition")
    lab.wait_on_wire(client, lambda c: c.retransmissions >= CUT_FOR, timeout=CUT_S + 5,
                     what=f"{CUT_FOR} retransmissions into the partition")
    lab.heal()
    client.expect_echo("across the partition", timeout=NEXT_RTO_S + 5)
    client.send("after the heal")
    client.expect_echo("after the heal")

    conn = client.connection
    lab.expect_wire("the line is retransmitted until the link heals, then echoed; the next line goes at once", conn,
                    "client > server  P.",
                    f"client > server  P.  retransmission {CUT_FOR + 1}+",
                    "server > client  .?",
                    "server > client  P.",
                    "client > server  P.  new",
                    "server > client  P.")
    gaps = conn.retransmission_gaps("client")
    lab.check("retransmission gaps double, as into a crashed host",
              len(gaps) > CUT_FOR and all(1.5 <= b / a <= 2.6 for a, b in zip(gaps[1:], gaps[2:])),
              "each gap 1.5-2.6 times the one before", ", ".join(f"{g:.2f}s" for g in gaps))
    ours = f"{conn.client.ip}:{conn.client.port}"
    lab.expect_equal("the connection survived the partition", "ESTABLISHED",
                     {s.local: s.state for s in lab.sockets("client")}.get(ours, "gone"))
