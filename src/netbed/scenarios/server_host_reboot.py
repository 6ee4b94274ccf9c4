"""UNP 5.15: crash of the server host, then reboot.

The server host crashes while the client is idle, the client types a line,
and its TCP retransmits into silence. The server reboots with the same
address and MAC but no memory of the connection, so the next retransmission
draws an RST in the same millisecond and the client's read fails with
ECONNRESET. Linux behaves as the book says.
"""

from netbed.scenarios.catalogue import scenario
from netbed.scenarios.lab import Lab


@scenario("server-host-reboot", "5.15", takes=("server", "client"),
          client_sysctls={"net.ipv4.tcp_retries2": 8}, timers_s=0.6)
def server_host_reboot(lab: Lab) -> None:
    client = lab.client()
    client.send("hello")
    client.expect_echo("hello")

    lab.crash("server")
    client.send("after the crash")
    lab.wait_on_wire(client, lambda c: c.retransmissions >= 2, timeout=10,
                     what="two retransmissions into the crashed host")

    lab.reboot("server")
    client.expect_error("ECONNRESET", timeout=20)
    lab.expect_wire("the retransmission to the rebooted host draws an RST", client.connection,
                    "client > server  P.",
                    "client > server  P.  retransmission+",
                    "server > client  R")
