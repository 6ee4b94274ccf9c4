"""Exit statuses and errno names shared by the clients.

Each kind of failure has its own exit status, so the orchestrator learns what
went wrong from the status alone; the message names the errno as the book's
err_sys would print its text (``read error: ECONNRESET (Connection reset by peer)``).
"""

from __future__ import annotations

import errno
import os

OK = 0
FAILED = 1            # anything not listed below
USAGE = 2             # bad command line (argparse's own status)
PREMATURE = 3         # EOF from the server while an answer was due
CONNRESET = 4         # ECONNRESET
TIMEDOUT = 5          # ETIMEDOUT (retransmissions, keepalive or TCP_USER_TIMEOUT gave up)
PIPE = 6              # EPIPE (only when SIGPIPE is ignored; else death by SIGPIPE)
REFUSED = 7           # ECONNREFUSED
UNREACH = 8           # EHOSTUNREACH or ENETUNREACH
PEER_DEAD = 9         # application heartbeat: the peer stopped answering
NO_HOST = 10          # the host name does not resolve
REPLY_TIMEOUT = 11    # sum_client --timeout: no complete reply in time
INPUT_REJECTED = 12   # sum_client: at least one input line was rejected

_BY_ERRNO = {
    errno.ECONNRESET: CONNRESET,
    errno.ETIMEDOUT: TIMEDOUT,
    errno.EPIPE: PIPE,
    errno.ECONNREFUSED: REFUSED,
    errno.EHOSTUNREACH: UNREACH,
    errno.ENETUNREACH: UNREACH,
}

CLIENT_STATUS_HELP = """\
exit status:
  0    success
  1    any other failure
  2    usage error
  3    server terminated prematurely (EOF while an answer was due)
  4    ECONNRESET
  5    ETIMEDOUT
  6    EPIPE (echo_client: only with --sigpipe ignore)
  7    ECONNREFUSED
  8    EHOSTUNREACH or ENETUNREACH
  9    heartbeat: peer dead
  10   host name does not resolve
  11   no complete reply within --timeout (sum_client)
  12   some input line was rejected (sum_client)
  141  echo_client killed by SIGPIPE (a shell's 128+13; subprocess.Popen shows -13)"""


def errno_name(code: int | None) -> str:
    """ECONNRESET for 104; a plain number for an errno Python does not name."""
    if code is None:
        return "EUNKNOWN"
    return errno.errorcode.get(code, str(code))


def status_for_errno(code: int | None) -> int:
    """The exit status that reports errno CODE."""
    if code is None:
        return FAILED
    return _BY_ERRNO.get(code, FAILED)


def describe(code: int | None) -> str:
    """``ECONNRESET (Connection reset by peer)``: the name for scripts, the text for people."""
    if code is None:
        return "EUNKNOWN"
    return f"{errno_name(code)} ({os.strerror(code)})"


class Fatal(Exception):
    """A failure that ends the program with STATUS after one MESSAGE line on stderr.

    FIELDS go into the matching ``event=error`` line (errno name, the call that failed).
    """

    def __init__(self, status: int, message: str, **fields: object):
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields

    @classmethod
    def from_oserror(cls, call: str, exc: OSError, prefix: str = "str_cli") -> "Fatal":
        """The failure of system call CALL, e.g. ``str_cli: read error: ECONNRESET (...)``."""
        return cls(
            status_for_errno(exc.errno),
            f"{prefix}: {call} error: {describe(exc.errno)}",
            call=call,
            errno=errno_name(exc.errno),
        )


def premature() -> Fatal:
    """The book's str_cli message when the server's EOF arrives while an echo is due."""
    return Fatal(PREMATURE, "str_cli: server terminated prematurely", kind="premature")
