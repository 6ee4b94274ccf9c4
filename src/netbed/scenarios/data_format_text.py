"""UNP 5.18: passing text strings between client and server.

The client sends each line the user types, "11 22", as text; the server
reads two numbers from it, adds them and sends back the sum, "33", also as
text. Because only ASCII characters cross the network, it does not matter
that the two hosts might store integers differently: the answers are right,
negative numbers included, and a line without two numbers gets "input
error" back. Linux as in the book.

A user's server is judged as the book's sum server (str_echo08): the answer
it sends to each line, as the wire carries it (an echo server is not
judged). A user's client is judged as the book's text client (str_cli, which
sends each line as typed): it must send the lines as text and show each
answer.
"""

from __future__ import annotations

from netbed import observe
from netbed.scenarios.catalogue import scenario
from netbed.scenarios.lab import Client, Lab, ScenarioError, sent
from netbed.tcp import Connection

INPUT_ERROR = "input error"
REQUESTS = [("11 22", "33"), ("-11 -44", "-55"), ("one two", INPUT_ERROR), ("2147483647 1", "2147483648")]
REJECTED = 12  # sum_client's exit status when some line was rejected
ANSWER_S = 10.0


@scenario("data-format-text", "5.18", takes=("server", "client"), server=("--mode", "text"),
          server_program="sum_server")
def data_format_text(lab: Lab) -> None:
    users_client = bool(lab.programs.client_cmd)
    client = lab.client() if users_client else lab.client_program("sum_client", "--mode", "text", "--report")
    answers: list[str] = []
    for line, _ in REQUESTS:
        client.send(line)
        try:
            conn = lab.wait_for(lambda: latest(lab, lab.programs.port),
                                lambda c: c is not None and (len(replies(c)) > len(answers) or not_text(c, REQUESTS)
                                                             or client.program.exit is not None),
                                timeout=ANSWER_S, what=f"the server's answer to {line!r}")
        except observe.WaitTimeout:
            conn = latest(lab, lab.programs.port)
            lab.check("the server answers each line", False, "one answer line per line sent",
                      f"no answer to {line!r} within {ANSWER_S:g} s (the server sent "
                      f"{sent(conn, 'server') if conn else b''!r} so far): it waits for more than a line, as a "
                      "binary sum server waits for a whole structure (str_echo09), or never answers")
            return
        if users_client and not_text(conn, REQUESTS):
            lab.not_judged(f"the client sent {sent(conn, 'client')[:32]!r} for the line {REQUESTS[0][0]!r}, not the "
                           "line as text: 5.18's text client sends each line as typed (the book's str_cli)")
        if len(replies(conn)) <= len(answers):
            break  # the client ended: judged below
        answers = replies(conn)
        if lab.programs.server_cmd and len(answers) == 1 and answers[0] == line:
            lab.not_judged(f"the server echoes {line!r} instead of answering its sum: 5.18 needs the book's sum "
                           "server (str_echo08/09)")
    client.end_input()
    end = client.wait(timeout=10)
    conn = latest(lab, lab.programs.port)
    if conn is None:  # the loop above found it there
        raise ScenarioError(f"no connection to port {lab.programs.port} in the capture")

    expected = [answer for _, answer in REQUESTS]
    wrong = [why_wrong(line, want, got) for (line, want), got in zip(REQUESTS, answers + [None] * len(REQUESTS))
             if got != want]
    lab.check("the server answers each line with its sum, negative numbers included, and 'input error' for a line "
              "without two numbers", not wrong, repr(expected), "; ".join(wrong) or repr(answers))
    if users_client:
        shows_each_answer(lab, client, expected)
    else:
        lab.expect_equal("the client prints each sum", [a for a in expected if a != INPUT_ERROR], client.program.stdout)
        lab.expect_equal("the malformed line gets the server's input error",
                         [f"sum_client: input error: {line!r} (server says input error)"
                          for line, answer in REQUESTS if answer == INPUT_ERROR],
                         [said for said in client.program.stderr if not said.startswith("event=")])
        lab.expect_equal("the client ends with the status for a rejected line", f"exit status {REJECTED}",
                         f"exit status {end.code}")
    lab.expect_wire("one request, one reply, for each line", conn,
                    *["client > server  P.", "server > client  P."] * len(REQUESTS))
    lab.expect_equal("the wire carries the lines and the answers as text",
                     [s for line, answer in REQUESTS for s in (("client", f"{line}\n"), ("server", f"{answer}\n"))],
                     [(s.sender, (s.payload() or b"").decode(errors="replace"))
                      for s in conn.segments if s.payload_len])


def latest(lab: Lab, port: int) -> Connection | None:
    """The last connection from the client host to this port on the server, as captured so far."""
    client_ip = lab.bed.host("client").ip
    mine = [c for c in lab.connections() if c.client.ip == client_ip and c.server.port == port]
    return mine[-1] if mine else None


def replies(conn: Connection) -> list[str]:
    """The server's complete answer lines so far."""
    text = sent(conn, "server").decode(errors="replace")
    return text.split("\n")[:-1]


def not_text(conn: Connection, requests) -> bool:
    """The client's first bytes are not the first line as typed."""
    data, first = sent(conn, "client"), f"{requests[0][0]}\n".encode()
    return bool(data) and not (data.startswith(first) or first.startswith(data))


def why_wrong(line: str, want: str, got: str | None) -> str:
    """What a wrong answer says about the server (the book's str_echo08: sscanf("%ld%ld") == 2, a long sum)."""
    if got is None:
        return f"no answer to {line!r}"
    if want == INPUT_ERROR:
        return (f"answered {got!r} to {line!r}, not {INPUT_ERROR!r}: the server does not check that the line holds "
                "two numbers (str_echo08 tests that sscanf found 2)")
    a, b = map(int, line.split())
    try:
        number = int(got)
    except ValueError:
        return f"answered {got!r} to {line!r}, not {want!r}"
    if number == (a + b + 2 ** 31) % 2 ** 32 - 2 ** 31:
        return (f"answered {got!r} to {line!r}, not {want!r}: the sum overflowed a 32-bit int (str_echo08 reads and "
                "adds longs)")
    if number == abs(a) + abs(b):
        return f"answered {got!r} to {line!r}, not {want!r}: the server drops the minus signs (read signed numbers)"
    return f"answered {got!r} to {line!r}, not {want!r}"


def shows_each_answer(lab: Lab, client: Client, expected: list[str]) -> None:
    """A user's client shows every answer, in order, on its terminal (stdout or stderr)."""
    shown = [line.strip() for line in client.program.stdout + client.program.stderr]
    it = iter(shown)
    missing = [a for a in expected if not any(a in line for line in it)]
    lab.check(f"{client.name} shows each answer, 'input error' included", not missing, repr(expected),
              f"printed {shown[-8:]}" + (f"; missing {missing}" if missing else ""))
