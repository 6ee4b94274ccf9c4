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

A user's server is judged as the book's binary sum server (str_echo09, sum.h)
on these x86-64 hosts: netbed's client in the native format (two 64-bit
little-endian longs) must get the right sums, and the other formats break it
as struct predicts; a wrong sum is matched against the formats a server could
have read, so the message names the mismatch (size or byte order). An echo
server is not judged. A user's client (str_cli09) must get the right sums
from netbed's server in the native format.
"""

import struct

from netbed import observe
from netbed.apps import status
from netbed.scenarios.catalogue import scenario
from netbed.scenarios.data_format_text import latest
from netbed.scenarios.lab import Lab, sent

SERVER = ("big", 32)                 # a 32-bit big-endian host, as the book's SPARC
WIDE_SERVER, WIDE_PORT = ("big", 64), 9878
CLIENTS = {"the same format": ("big", 32),
           "the other byte order": ("little", 32),
           "64-bit integers": ("big", 64)}
LINES = ["1 2", "-22 -77"]
WAIT_S = 2.0                         # the 32-bit client's --timeout against the 64-bit server
NO_REPLY = status.REPLY_TIMEOUT       # sum_client's exit status for that timeout
ORDER, CODE = {"big": ">", "little": "<"}, {32: "i", 64: "q"}


def switches(fmt: tuple[str, int]) -> tuple[str, ...]:
    return ("--mode", "binary", "--byte-order", fmt[0], "--int-size", str(fmt[1]))


@scenario("data-format-binary", "5.18", takes=("server", "client"), server=switches(SERVER),
          server_program="sum_server", timers_s=WAIT_S)
def data_format_binary(lab: Lab) -> None:
    if lab.programs.server_cmd:
        users_server(lab)
    if lab.programs.client_cmd:
        users_client(lab)
    if not lab.programs.user:
        own_programs(lab)


def own_programs(lab: Lab) -> None:
    """netbed's server (32-bit big-endian) and netbed's clients of each format, and a 64-bit server."""
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


NATIVE = ("little", 64)              # struct args of two longs, as a C compiler lays it out on these x86-64 hosts
NATIVE_PORT = 9879                   # netbed's native-format server, for a user's client
OTHERS = {"the other byte order": ("big", 64)}
NARROW = ("little", 32)


def users_server(lab: Lab) -> None:
    """The user's server answers netbed's native-format client right; the other formats break it as predicted."""
    native = lab.client_program("sum_client", *switches(NATIVE), "--timeout", str(WAIT_S), "--report",
                                name="client in the native format")
    native.expect_connected()
    for line in LINES:
        native.send(line)
    native.end_input()
    end = native.wait(timeout=WAIT_S * len(LINES) + 10)
    conn = native.connection
    request = oracle(LINES[0], NATIVE, NATIVE)[0]
    if sent(conn, "server").startswith(request):
        lab.not_judged(f"the server echoes the {len(request)}-byte structure of {LINES[0]!r} instead of answering "
                       "its sum: 5.18 needs the book's sum server (str_echo08/09)")
    printed = native.program.stdout
    want = [str(oracle(line, NATIVE, NATIVE)[2]) for line in LINES]
    if not printed and end.code == NO_REPLY and answers_text(lab):
        lab.not_judged("the server answers text lines (\"1 2\" -> \"3\") and nothing to a binary structure: it is "
                       "a text sum server (str_echo08); data-format-binary needs the book's binary one (str_echo09)")
    lab.check("the server answers netbed's client in the native format (two 64-bit little-endian longs) with the "
              "right sums", printed == want and end.code == 0, f"{want}, exit status 0",
              f"{printed}, {end}" + ("" if printed == want else f": {why_wrong(printed, end.code, NATIVE, 'server')}"))
    if printed != want:
        return

    for name, fmt in OTHERS.items():
        client = lab.client_program("sum_client", *switches(fmt), "--timeout", str(WAIT_S), "--report",
                                    name=f"client with {name}")
        client.expect_connected()
        for line in LINES:
            client.send(line)
        client.end_input()
        client.wait(timeout=WAIT_S * len(LINES) + 10)
        lab.expect_equal(f"{name}: the client prints the sums struct predicts (UNP 5.18's breakage)",
                         [str(oracle(line, fmt, NATIVE)[2]) for line in LINES], client.program.stdout)
    narrow = lab.client_program("sum_client", *switches(NARROW), "--timeout", str(WAIT_S), "--report",
                                name="client with 32-bit integers")
    narrow.expect_connected()
    narrow.send(LINES[0])
    end = narrow.wait(timeout=WAIT_S + 10)
    lab.check("32-bit client: no reply comes (the server waits for the rest of its 16 bytes), the client gives up",
              end.code == NO_REPLY and not narrow.program.stdout, f"exit status {NO_REPLY}, nothing printed",
              f"{end}; printed {narrow.program.stdout}")
    lab.expect_wire("32-bit client: 8 bytes sent and ACKed, no reply before the client gives up", narrow.connection,
                    "client > server  P.  len=8",
                    "server > client  .",
                    f"client > server  F.  after={WAIT_S:g}s")


def answers_text(lab: Lab) -> bool:
    """Whether the server answers a text line with its sum (a text sum server given to the binary scenario)."""
    probe = lab.client_program("sum_client", "--mode", "text", "--timeout", str(WAIT_S), "--report",
                               name="text probe")
    probe.send("1 2")
    probe.end_input()
    probe.wait(timeout=WAIT_S + 10)
    return probe.program.stdout[:1] == ["3"]


def users_client(lab: Lab) -> None:
    """The user's client gets the right sums from netbed's server in the native format."""
    lab.server_program(*switches(NATIVE), port=NATIVE_PORT, name="netbed's server in the native format",
                       program="sum_server")
    client = lab.client(port=NATIVE_PORT)
    client.send(LINES[0])
    conn = lab.wait_for(lambda: latest(lab, NATIVE_PORT),
                        lambda c: c is not None and (len(sent(c, "client")) >= 16 or b"\n" in sent(c, "client")
                                                     or client.program.exit is not None),
                        timeout=10, what=f"the client's request for {LINES[0]!r}")
    data = sent(conn, "client")
    if data.startswith(LINES[0].encode()):
        lab.not_judged(f"the client sends the line as text ({data[:16]!r}) instead of a binary structure: 5.18 needs "
                       "the book's binary sum client (str_cli09)")
    for line in LINES[1:]:
        client.send(line)
    client.end_input()
    want = [str(oracle(line, NATIVE, NATIVE)[2]) for line in LINES]
    try:
        end = client.program.wait(timeout=10)
    except observe.WaitTimeout:
        lab.check(f"{client.name} gets the right sums from netbed's server in the native format", False, repr(want),
                  f"no answer: the client sent {len(data)} bytes for {LINES[0]!r} where the book's struct args is "
                  f"{len(oracle(LINES[0], NATIVE, NATIVE)[0])} bytes here (two 64-bit longs)")
        return
    lab.moment(client.name, f"ended {end}")
    printed = [line.strip() for line in client.program.stdout if line.strip()]
    lab.check(f"{client.name} gets the right sums from netbed's server in the native format (two 64-bit "
              "little-endian longs)", printed == want, repr(want),
              repr(printed) + ("" if printed == want else f": {why_wrong(printed, end.code, NATIVE, 'client')}"))


def why_wrong(printed: list[str], code: int | None, against: tuple[str, int], who: str) -> str:
    """Which format the wrong sums come from: a size or a byte-order mismatch, named."""
    if not printed:
        return (f"no sum: the {who} waits for more bytes than the other side sends for one line (the book's struct "
                f"args is two {against[1]}-bit longs, 16 bytes here), or answers nothing")
    for order in ("little", "big"):
        for size in (64, 32):
            fmt = (order, size)
            if fmt == against:
                continue
            if who == "server":
                predicted = [str(oracle(line, against, fmt)[2]) for line in LINES]
            else:
                predicted = [str(oracle(line, fmt, against)[2]) for line in LINES]
            if predicted == printed:
                return mismatch(fmt, against, who)
    return f"sums no single format predicts (exit status {code})"


def mismatch(fmt: tuple[str, int], against: tuple[str, int], who: str) -> str:
    other = "client" if who == "server" else "server"
    parts = []
    if fmt[1] != against[1]:
        parts.append(f"the {who} reads and writes {fmt[1]}-bit integers where the {other} uses {against[1]}-bit "
                     f"longs: a size mismatch (e.g. int where the {other} sends long)")
    if fmt[0] != against[0]:
        parts.append(f"the {who} uses {fmt[0]}-endian byte order where the {other} uses {against[0]}-endian")
    return "; ".join(parts) + " (UNP 5.18: binary structures as a protocol)"
