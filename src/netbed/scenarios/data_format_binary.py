"""UNP 5.18: passing binary structures between client and server.

The client packs the two numbers of each line into a structure of two
integers and the server answers with a structure holding their sum. Between
hosts that agree on the format this works; when they differ it breaks, and
struct predicts exactly how: with the other byte order "1 2" still gives 3
by luck but "-22 -77" gives -16777314, as in the book; a 64-bit client
talking to a 32-bit server has each of its numbers read as two; a 32-bit
client talking to a 64-bit server sends half of what the server waits for,
so both sides wait for ever (here the client gives up after a timeout). Our
hosts are all x86-64 Linux: the "architectures" are the programs' byte order
and integer size switches.
"""

import struct

from netbed.scenarios.catalogue import OWN, scenario
from netbed.scenarios.lab import Lab

SERVER = ("big", 32)                 # a 32-bit big-endian host, as the book's SPARC
WIDE_SERVER, WIDE_PORT = ("big", 64), 9878
CLIENTS = {"the same format": ("big", 32),
           "the other byte order": ("little", 32),
           "64-bit integers": ("big", 64)}
LINES = ["1 2", "-22 -77"]
WAIT_S = 2.0                         # the 32-bit client's --timeout against the 64-bit server
NO_REPLY = 11                        # sum_client's exit status for that timeout
ORDER, CODE = {"big": ">", "little": "<"}, {32: "i", 64: "q"}


def switches(fmt: tuple[str, int]) -> tuple[str, ...]:
    return ("--mode", "binary", "--byte-order", fmt[0], "--int-size", str(fmt[1]))


@scenario("data-format-binary", "5.18", own=OWN, server=switches(SERVER), server_program="sum_server", timers_s=WAIT_S)
def data_format_binary(lab: Lab) -> None:
    for name, fmt in CLIENTS.items():
        client = lab.client_program("sum_client", *switches(fmt), "--report", name=f"client with {name}")
        client.expect_connected()
        for line in LINES:
            client.send(line)
        client.end_input()
        end = client.wait(timeout=10)
        predicted = [oracle(line, fmt, SERVER) for line in LINES]
        lab.expect_equal(f"{name}: the client prints the sums struct predicts",
                         [str(printed) for _, _, printed in predicted], client.program.stdout)
        lab.expect_equal(f"{name}: the client ends normally", "exit status 0", f"exit status {end.code}")
        lab.expect_wire(f"{name}: one {len(predicted[0][0])}-byte structure per line, then the reply",
                        client.connection,
                        *[step for request, _, _ in predicted
                          for step in (f"client > server  P.  len={len(request)}", "server > client  P.+")])
        lab.expect_equal(f"{name}: the structures on the wire, as struct predicts (requests / replies)",
                         [b"".join(p[0] for p in predicted).hex(" "), b"".join(p[1] for p in predicted).hex(" ")],
                         [carried(client.connection, "client"), carried(client.connection, "server")])

    wide = lab.program("server", ["python3", "-m", "netbed.apps.sum_server", "--port", str(WIDE_PORT),
                                  *switches(WIDE_SERVER)], name="64-bit server")
    wide.expect_output(r"^event=listening ", timeout=10)
    narrow = lab.client_program("sum_client", *switches(SERVER), "--timeout", str(WAIT_S), "--report",
                                port=WIDE_PORT, name="32-bit client to a 64-bit server")
    narrow.expect_connected()
    narrow.send(LINES[0])
    end = narrow.wait(timeout=WAIT_S + 10)
    lab.check("32-bit client to a 64-bit server: no reply comes, the client gives up",
              end.code == NO_REPLY and oracle(LINES[0], SERVER, WIDE_SERVER)[2] is None and not narrow.program.stdout,
              f"exit status {NO_REPLY}, nothing printed", f"exit status {end.code}; {narrow.program.stderr[-1:]}")
    lab.expect_wire("8 bytes sent and ACKed, no reply before the client gives up", narrow.connection,
                    "client > server  P.  len=8",
                    "server > client  .",
                    f"client > server  F.  after={WAIT_S:g}s")
    short = wide.expect_output(r"^event=error .*call=readn", timeout=10)
    lab.check("the 64-bit server was still waiting for the rest of its structure",
              "got=8 need=16" in short, "8 of 16 bytes, then EOF", short)


def oracle(line: str, client: tuple[str, int], server: tuple[str, int]) -> tuple[bytes, bytes, int | None]:
    """The request the client sends for "a b", the server's replies, and what the client prints (None: nothing).

    The server reads the request as its own structures, adds each pair as C
    does (wrapping around), and packs the sums its way; the client reads the
    first reply as its own structure.
    """
    request = struct.pack(ORDER[client[0]] + CODE[client[1]] * 2, *map(int, line.split()))
    pair, total = ORDER[server[0]] + CODE[server[1]] * 2, ORDER[server[0]] + CODE[server[1]]
    half = 1 << (server[1] - 1)
    reply = b"".join(struct.pack(total, (a + b + half) % (2 * half) - half)
                     for a, b in struct.iter_unpack(pair, request[:len(request) // struct.calcsize(pair)
                                                                  * struct.calcsize(pair)]))
    result = ORDER[client[0]] + CODE[client[1]]
    printed = struct.unpack_from(result, reply)[0] if len(reply) >= struct.calcsize(result) else None
    return request, reply, printed


def carried(conn, sender: str) -> str:
    """The bytes one side sent on the connection, in hex."""
    return b"".join(s.payload() for s in conn.segments if s.sender == sender and s.payload_len
                    and not s.is_retransmission).hex(" ")
