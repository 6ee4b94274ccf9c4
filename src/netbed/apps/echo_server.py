"""The book's echo server (tcpserv01-04): a forked child echoes each client's bytes.

Run: python3 -m netbed.apps.echo_server [--port 9877] [--sigchld ...] [--accept ...]
The defaults are tcpserv04, the book's final version (waitpid loop, guarded
accept); the switches give the earlier, flawed versions the chapter studies.
"""

from __future__ import annotations

import sys

from netbed.apps import forkserver
from netbed.apps.args import Parser

MAXLINE = 4096


def str_echo(conn, emit) -> None:
    """The book's str_echo: write back whatever arrives, until EOF."""
    while True:
        data = forkserver.read(conn, MAXLINE)
        if not data:
            return
        forkserver.write(conn, data)
        emit("echoed", bytes=len(data))


def main(argv=None) -> int:
    parser = Parser(
        "echo_server",
        "Fork-per-client TCP echo server (UNP tcpserv01-04). Each child echoes its\n"
        "client's bytes until EOF, then exits. Defaults: tcpserv04 (waitpid, guarded).",
        epilog=forkserver.help_epilog("  echoed bytes=                              a child echoed a chunk"),
    )
    forkserver.add_arguments(parser)
    return forkserver.ForkServer(parser.parse_args(argv), str_echo, "echo_server").run()


if __name__ == "__main__":
    sys.exit(main())
