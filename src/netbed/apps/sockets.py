"""Client sockets: connect with the book's error messages, set options, read them back.

Options are read back with getsockopt and reported, so a test proves they were
really set rather than trusting the command line.
"""

from __future__ import annotations

import socket
import struct

from netbed.apps.status import NO_HOST, Fatal

_LINGER = struct.Struct("ii")  # struct linger {int l_onoff; int l_linger;}


def tcp_connect(host: str, port: int, configure=None) -> socket.socket:
    """A TCP socket connected to HOST:PORT (IPv4), or Fatal with the errno's status.

    CONFIGURE(sock) runs before connect, so options such as SO_KEEPALIVE and
    TCP_USER_TIMEOUT also cover the handshake.
    """
    try:
        addresses = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Fatal(NO_HOST, f"tcp_connect error for {host}: {exc.strerror}", call="getaddrinfo") from None
    failure = None
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            if configure:
                configure(sock)
        except OSError as exc:
            sock.close()
            raise Fatal.from_oserror("setsockopt", exc, prefix="tcp_connect") from None
        try:
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            failure = exc
    assert failure is not None, "getaddrinfo gives at least one address or raises"
    raise Fatal.from_oserror("connect", failure, prefix="tcp_connect")


def set_keepalive(sock: socket.socket, idle: int | None, interval: int | None, count: int | None) -> None:
    """SO_KEEPALIVE on; idle/interval/count replace the host's sysctl defaults when given."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in ((socket.TCP_KEEPIDLE, idle), (socket.TCP_KEEPINTVL, interval), (socket.TCP_KEEPCNT, count)):
        if value is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


def set_user_timeout(sock: socket.socket, milliseconds: int) -> None:
    """TCP_USER_TIMEOUT: give up (ETIMEDOUT) when sent data stays unacknowledged this long."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, milliseconds)


def set_linger0(sock: socket.socket) -> None:
    """SO_LINGER on with a zero timeout: close() discards the connection with an RST."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER.pack(1, 0))


def read_options(sock: socket.socket) -> dict:
    """The options as the kernel holds them (so_linger is "off" or its timeout in seconds)."""
    onoff, linger = _LINGER.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER.size))
    return {
        "so_keepalive": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        "tcp_keepidle": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
        "tcp_keepintvl": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        "tcp_keepcnt": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
        "tcp_user_timeout": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
        "so_linger": linger if onoff else "off",
    }


def address(pair) -> str:
    """``10.0.0.3:40000`` for an (ip, port) pair."""
    return f"{pair[0]}:{pair[1]}"
