"""serv_asyncio.py -- an asyncio echo server, as a Python student writes it.

Mirrors:  the book's echo server (str_echo, UNP 5.3) with one event loop in one
          process instead of a child per client: asyncio.start_server, a
          coroutine per client doing readline / write / drain; the same role as
          the book's select() server (tcpservselect01, UNP 6.8).
Usage:    python3 serv_asyncio.py <port>
Verdict:  RIGHT as an echo server; one process, no children: no zombie, no
          SIGCHLD. A reset client ends its coroutine with an exception the
          loop logs on stderr; the server goes on.
Caught by: concurrent-server must say one process serves every connection, not
          fork-per-client; the zombie/SIGCHLD/EINTR scenarios have no child to
          judge and must say so (not judged).
"""

import asyncio
import sys


async def echo(reader, writer):
    while True:
        line = await reader.readline()
        if not line:                    # EOF: the client closed
            break
        writer.write(line)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def main(port):
    server = await asyncio.start_server(echo, "0.0.0.0", port)   # SO_REUSEADDR by default
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: serv_asyncio.py <port>")
    asyncio.run(main(int(sys.argv[1])))
