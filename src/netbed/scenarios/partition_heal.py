"""A network partition, healed before TCP gives up.

Not a section of the book, but the other side of 5.14: the client types a
line while the link to the server is cut, and its TCP retransmits it with
doubling gaps, exactly as into a crashed host. The link comes back before
TCP gives up, the next retransmission gets through, the server ACKs it and
echoes the line, and the connection carries on as if nothing had happened:
the client sees only a delay. The client's kernel is set to give up after
8 retransmissions (about 100 s, tcp_retries2 = 8), far beyond the partition.

Any echo server and any line-by-line client are judged: the line typed
during the partition is retransmitted (told by sequence numbers, so a client
that writes the first byte alone counts too), acknowledged and echoed after
the heal, and the client sees only a delay: it prints the echo, says
nothing on stderr and is still running, its connection ESTABLISHED.
"""

import time

from netbed.observe import WaitTimeout
from netbed.scenarios.catalogue import scenario
from netbed.scenarios.client_errors import resend_gaps, resent
from netbed.scenarios.lab import Lab

RETRIES = 8        # tcp_retries2: the client would give up only after about 100 s
CUT_FOR = 3        # heal after this many retransmissions into the partition
GAPS_S = (0.2, 0.2, 0.4, 0.8, 1.6)   # Linux's retransmission gaps on the bridge (RTO 200 ms, then doubling)
CUT_S = sum(GAPS_S[:CUT_FOR])        # 0.8 s of retransmissions before the heal
NEXT_RTO_S = GAPS_S[CUT_FOR]         # the retransmission after the heal, 0.8 s later


@scenario("partition-heal", "—", takes=("server", "client"), client_sysctls={"net.ipv4.tcp_retries2": RETRIES},
          timers_s=CUT_S + NEXT_RTO_S)
def partition_heal(lab: Lab) -> None:
    client = lab.client()
    client.send("hello")
    client.expect_echo("hello")

    lab.partition("client", "server")
    cut_at = time.time()
    client.send("across the partition")
    lab.wait_on_wire(client, lambda c: len(resent(c.segments)) >= CUT_FOR, timeout=CUT_S + 5,
                     what=f"{CUT_FOR} retransmissions into the partition (by sequence numbers)")
    healed_at = time.time()
    lab.heal()
    try:
        client.expect_echo("across the partition", timeout=NEXT_RTO_S + 5)
    except WaitTimeout:
        if client.program.exit is None:
            raise
        said = (client.program.stderr or client.program.stdout or ["nothing"])[-1]
        lab.check("the client saw only a delay: still running, no error message", False,
                  "the echo after the heal, the client running",
                  f"it gave up while TCP was still retransmitting its line: {client.program.exit}, it said {said!r}; "
                  "a delay is no failure (a read timeout shorter than TCP's own gives up on a live connection)")
        return
    client.send("after the heal")
    client.expect_echo("after the heal")

    conn = client.connection
    lab.key_connections.append(conn)
    during = [s for s in conn.segments if s.ts >= cut_at]
    line = next(s for s in during if s.sender == "client" and s.payload_len)
    again = resent(during)
    lab.check("the line is retransmitted into the partition and once more after the heal",
              sum(s.ts < healed_at for s in again) >= CUT_FOR and any(s.ts >= healed_at for s in again),
              f"{CUT_FOR}+ retransmissions before the heal, one after",
              ", ".join(f"{s.ts - cut_at:.2f}s" for s in again) + f" (healed at {healed_at - cut_at:.2f}s)")
    acked = next((s for s in during if s.sender == "server" and s.ack > line.seq), None)
    echoed = next((s for s in during if s.sender == "server" and s.payload_len), None)
    lab.check("nothing from the server until the heal, then it acknowledges and echoes the line",
              acked is not None and echoed is not None and acked.ts >= healed_at and echoed.ts >= healed_at,
              "the server's ACK and echo after the heal",
              (f"ACK at {acked.ts - cut_at:.2f}s" if acked else "no ACK")
              + (f", echo at {echoed.ts - cut_at:.2f}s" if echoed else ", no echo")
              + f" (healed at {healed_at - cut_at:.2f}s)")
    gaps = resend_gaps(during)
    lab.check("retransmission gaps double, as into a crashed host",
              len(gaps) > CUT_FOR and all(1.5 <= b / a <= 2.6 for a, b in zip(gaps[1:], gaps[2:])),
              "each gap 1.5-2.6 times the one before", ", ".join(f"{g:.2f}s" for g in gaps))
    lab.check("the client saw only a delay: still running, no error message",
              client.program.exit is None and not client.program.stderr, "running, nothing on stderr",
              f"{client.program.exit or 'running'}; stderr {client.program.stderr[-2:]}")
    ours = f"{conn.client.ip}:{conn.client.port}"
    lab.expect_equal("the connection survived the partition", "ESTABLISHED",
                     {s.local: s.state for s in lab.sockets("client")}.get(ours, "gone"))
