"""UNP 5.18: passing text strings between client and server.

The client sends each line the user types, "11 22", as text; the server
reads two numbers from it, adds them and sends back the sum, "33", also as
text. Because only ASCII characters cross the network, it does not matter
that the two hosts might store integers differently: the answers are right,
negative numbers included, and a line without two numbers gets "input
error" back. Linux as in the book.
"""

from netbed.scenarios.catalogue import OWN, scenario
from netbed.scenarios.lab import Lab

INPUT_ERROR = "input error"
REQUESTS = [("11 22", "33"), ("-11 -44", "-55"), ("one two", INPUT_ERROR), ("2147483647 1", "2147483648")]
REJECTED = 12  # sum_client's exit status when some line was rejected


@scenario("data-format-text", "5.18", own=OWN, server=("--mode", "text"), server_program="sum_server")
def data_format_text(lab: Lab) -> None:
    client = lab.client_program("sum_client", "--mode", "text", "--report")
    client.expect_connected()
    for line, _ in REQUESTS:
        client.send(line)
    client.end_input()
    end = client.wait(timeout=10)

    lab.expect_equal("the client prints each sum", [answer for _, answer in REQUESTS if answer != INPUT_ERROR],
                     client.program.stdout)
    lab.expect_equal("the malformed line gets the server's input error",
                     [f"sum_client: input error: {line!r} (server says input error)"
                      for line, answer in REQUESTS if answer == INPUT_ERROR],
                     [said for said in client.program.stderr if not said.startswith("event=")])
    lab.expect_equal("the client ends with the status for a rejected line", f"exit status {REJECTED}",
                     f"exit status {end.code}")
    conn = client.connection
    lab.expect_wire("one request, one reply, for each line", conn,
                    *["client > server  P.", "server > client  P."] * len(REQUESTS))
    lab.expect_equal("the wire carries the lines and the sums as text",
                     [s for line, answer in REQUESTS for s in (("client", f"{line}\n"), ("server", f"{answer}\n"))],
                     [(s.sender, s.payload().decode()) for s in conn.segments if s.payload_len])
