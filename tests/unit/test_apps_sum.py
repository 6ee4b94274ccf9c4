"""sum_server and sum_client (5.18): text works anywhere; binary works only between equals.

The oracle below is written independently of netbed.apps.sumproto: it packs
and unpacks the bytes the way each side's format says, which is all a
mismatch amounts to.
"""

import socket
import struct

import pytest

ORDERS = {"big": ">", "little": "<", "network": "!", "native": "="}
CODES = {32: "i", 64: "q"}
PAIRS = [(1, 2), (-5, 3), (1000000, 2345678), (-1, -1), (2**31 - 1, 1)]


def oracle(pairs, client, server):
    """The sums a client of format CLIENT prints for PAIRS when the server uses SERVER: (order, bits)."""
    sent = b"".join(struct.pack(ORDERS[client[0]] + CODES[client[1]] * 2, *pair) for pair in pairs)
    server_record = struct.Struct(ORDERS[server[0]] + CODES[server[1]] * 2)
    replies = b""
    for offset in range(0, len(sent) - server_record.size + 1, server_record.size):
        a, b = server_record.unpack_from(sent, offset)
        total = (a + b + 2 ** (server[1] - 1)) % 2 ** server[1] - 2 ** (server[1] - 1)  # C's wrap-around
        replies += struct.pack(ORDERS[server[0]] + CODES[server[1]], total)
    result = struct.Struct(ORDERS[client[0]] + CODES[client[1]])
    return [result.unpack_from(replies, offset)[0] for offset in range(0, len(replies), result.size)]


def sum_pair(app_server, run_app, client, server, *client_args):
    server_app = app_server("--mode", "binary", "--byte-order", server[0], "--int-size", server[1],
                            name="sum_server")
    return run_app("sum_client", "127.0.0.1", "--port", server_app.port, "--mode", "binary",
                   "--byte-order", client[0], "--int-size", client[1], *client_args)


def run_lines(client, lines):
    client.send("".join(f"{a} {b}\n" for a, b in lines))
    client.close_stdin()
    return client.finish()


def test_text_sums_and_a_malformed_line(app_server, run_app):
    server = app_server("--mode", "text", name="sum_server")
    client = run_app("sum_client", "127.0.0.1", "--port", server.port)
    client.send("1 2\nabc\n-5 3\n100000000000000000000 1\n")
    client.close_stdin()
    assert client.finish() == 12
    assert client.stdout() == "3\n-2\n100000000000000000001\n"
    assert client.stderr() == "sum_client: input error: 'abc' (server says input error)\n"
    assert server.wait_event("input_error")["line"] == "abc"


@pytest.mark.parametrize("fmt", [("big", 64), ("little", 32), ("network", 32), ("native", 64)])
def test_binary_sums_between_equal_formats(app_server, run_app, fmt):
    client = sum_pair(app_server, run_app, fmt, fmt)
    assert run_lines(client, PAIRS[:4]) == 0
    assert client.stdout().split() == [str(a + b) for a, b in PAIRS[:4]]


@pytest.mark.parametrize("client_fmt, server_fmt", [
    (("little", 64), ("big", 64)),
    (("big", 32), ("little", 32)),
    (("network", 64), ("little", 64)),
])
def test_mismatched_byte_order_gives_exactly_the_predicted_wrong_sums(app_server, run_app, client_fmt, server_fmt):
    client = sum_pair(app_server, run_app, client_fmt, server_fmt)
    assert run_lines(client, PAIRS) == 0
    assert [int(line) for line in client.stdout().split()] == oracle(PAIRS, client_fmt, server_fmt)
    assert oracle(PAIRS, client_fmt, server_fmt) != [a + b for a, b in PAIRS]


def test_larger_client_integers_are_misread_as_predicted(app_server, run_app):
    """A 64-bit client's record is two 32-bit records to the server: two replies fill one client result."""
    client = sum_pair(app_server, run_app, ("little", 64), ("little", 32))
    assert run_lines(client, PAIRS) == 0
    assert [int(line) for line in client.stdout().split()] == oracle(PAIRS, ("little", 64), ("little", 32))


def test_smaller_client_integers_leave_both_sides_waiting(app_server, run_app):
    """A 32-bit client sends 8 bytes; the 64-bit server waits for 16, the client for its reply."""
    client = sum_pair(app_server, run_app, ("little", 32), ("little", 64), "--timeout", "0.3")
    assert run_lines(client, [(1, 2)]) == 11
    assert client.stderr() == "sum_client: no reply after 0.3 s (waiting for 4 bytes, have 0)\n"


def test_binary_client_rejects_bad_lines_and_goes_on(app_server, run_app):
    client = sum_pair(app_server, run_app, ("big", 32), ("big", 32))
    client.send("abc\n1 2\n4294967296 1\n")
    client.close_stdin()
    assert client.finish() == 12
    assert client.stdout() == "3\n"
    assert client.lines["stderr"] == [
        "sum_client: invalid input: 'abc' (need two integers)\n",
        "sum_client: invalid input: '4294967296 1' (out of range for 32-bit integers)\n",
    ]


def test_server_reports_a_short_record(app_server, app_sockets):
    server = app_server("--mode", "binary", "--int-size", "64", name="sum_server")
    (sock,) = app_sockets(server.port)
    sock.sendall(b"abc")
    sock.shutdown(socket.SHUT_WR)
    child = server.wait_event("accepted")["child"]
    error = server.wait_event("error", pid=child)
    assert (error["got"], error["need"]) == (3, 16)
    server.wait_event("reaped", child=child, code=1)
    assert server.wait_line("short record", stream="stderr") == "sum_server: short record: 3 of 16 bytes, then EOF\n"


def test_client_reports_a_short_reply(run_app):
    """A server that answers 3 bytes of an 8-byte result and closes."""
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        client = run_app("sum_client", "127.0.0.1", "--port", listener.getsockname()[1], "--mode", "binary")
        conn, _ = listener.accept()
        with conn:
            client.send("1 2\n")
            assert len(conn.recv(16)) == 16
            conn.sendall(b"xyz")
        assert client.finish() == 3
    assert client.stderr() == "sum_client: short reply: 3 bytes then EOF (waiting for 8 bytes)\n"


@pytest.mark.parametrize("program, args, message", [
    ("sum_client", ["127.0.0.1", "--int-size", "16"], "invalid choice: 16"),
    ("sum_client", ["127.0.0.1", "--byte-order", "middle"], "invalid choice: 'middle'"),
    ("sum_client", ["127.0.0.1", "--port", "0"], "invalid port '0'"),
    ("sum_server", ["--mode", "morse"], "invalid choice: 'morse'"),
])
def test_bad_switches_give_one_line_and_status_2(run_app, program, args, message):
    app = run_app(program, *args)
    assert app.finish() == 2
    assert len(app.lines["stderr"]) == 1 and message in app.stderr()
