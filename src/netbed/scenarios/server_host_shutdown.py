"""UNP 5.16: shutdown of the server host.

An orderly shutdown sends SIGTERM to every process, then SIGKILL to those
left: the server child dies and its TCP sends a FIN, just as when the child
is killed (5.12). The client, blocked reading its terminal, does not see it;
its next line goes out, the client reads the FIN as EOF and says the server
terminated prematurely. The host is gone by then, so nothing answers the
line. Note that `docker stop` alone would signal only PID 1.

Any echo server and any line-by-line client are judged: the FIN on the
client's connection leaves within the grace period (the server dies of the
SIGTERM, not of the SIGKILL after it), every process of the host ends on
the SIGTERM (the host is down before the grace period is over), nothing
from the server answers the client's next line (it is retransmitted into
silence), and the client reports the end of file
("server terminated prematurely", or a failure status after the FIN); a
client that exits 0 silently did not notice and fails.
"""

import time

from netbed.scenarios.catalogue import scenario
from netbed.scenarios.client_errors import resent
from netbed.scenarios.lab import Lab

GRACE = 2.0


@scenario("server-host-shutdown", "5.16", takes=("server", "client"), timers_s=0.0)
def server_host_shutdown(lab: Lab) -> None:
    client = lab.client()
    client.send("hello")
    client.expect_echo("hello")

    before = lab.processes("server")
    shutdown_at = time.time()
    lab.shutdown("server", grace=GRACE)
    took = time.time() - shutdown_at  # SIGKILL for what is left once GRACE has passed
    conn = lab.wait_on_wire(client, lambda c: any(s.sender == "server" and "F" in s.letters for s in c.segments),
                            timeout=10, what="the FIN of the server's shutdown")
    fin = next(s for s in conn.segments if s.sender == "server" and "F" in s.letters)
    lab.check(f"the server's FIN leaves within the grace period ({GRACE:g} s): it dies of the SIGTERM",
              fin.ts - shutdown_at <= GRACE, f"within {GRACE:g} s of the shutdown",
              f"{fin.ts - shutdown_at:.2f} s after it"
              + ("" if fin.ts - shutdown_at <= GRACE else ": the server outlived the SIGTERM (it ignores it, or "
                 "catches it without exiting) and its connection ended under the SIGKILL"))
    status = lab.bed.status("server")
    lab.check("every process of the host is gone: each ended on the SIGTERM, before the grace period's SIGKILL",
              took < GRACE and status == "exited", f"the host down in under {GRACE:g} s",
              f"host {status} {took:.2f} s after the shutdown began"
              + ("" if took < GRACE else ": a process outlived the SIGTERM and waited for the SIGKILL")
              + "; its processes before it: " + ", ".join(f"{p.pid} ({p.command[:40]})" for p in before if p.pid != 1))

    client.send("after the shutdown")
    client.expect_error("premature", timeout=10, when="after the server host shut down")
    conn = lab.wait_on_wire(client, lambda c: len(resent(c.segments[fin.index:])) >= 1, timeout=10,
                            what="the client's line on the wire, retransmitted")
    lab.expect_wire("the server's FIN, then the client's line", conn,
                    "server > client  F.",
                    "client > server  .",
                    "client > server  P.")
    line = next(s for s in conn.segments[fin.index:] if s.sender == "client" and s.payload_len)
    answers = [s for s in conn.segments[line.index:] if s.sender == "server"]
    lab.check("nothing answers the line (the host is down): it is retransmitted into silence",
              not answers, "no segment from the server after the line",
              " ".join(s.tcpdump for s in answers[:5]) if answers
              else f"none; the line sent {1 + len(resent(conn.segments[fin.index:]))} times")
