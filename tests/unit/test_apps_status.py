"""Each kind of failure maps to its own exit status and a message naming the errno."""

import errno

import pytest

from netbed.apps import status


@pytest.mark.parametrize("code, expected", [
    (errno.ECONNRESET, 4), (errno.ETIMEDOUT, 5), (errno.EPIPE, 6), (errno.ECONNREFUSED, 7),
    (errno.EHOSTUNREACH, 8), (errno.ENETUNREACH, 8), (errno.EACCES, 1),
])
def test_errno_to_exit_status(code, expected):
    assert status.status_for_errno(code) == expected


def test_failure_message_names_the_errno_then_its_text():
    failure = status.Fatal.from_oserror("read", OSError(errno.ETIMEDOUT, "ignored"))
    assert (failure.status, failure.message) == (5, "str_cli: read error: ETIMEDOUT (Connection timed out)")
    assert failure.fields == {"call": "read", "errno": "ETIMEDOUT"}


def test_every_status_is_documented_in_help():
    documented = {int(line.split()[0]) for line in status.CLIENT_STATUS_HELP.splitlines()[1:]}
    defined = {value for name, value in vars(status).items() if name.isupper() and isinstance(value, int)}
    assert defined <= documented
