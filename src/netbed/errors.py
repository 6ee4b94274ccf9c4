"""The one error type front ends catch: its message is a single line saying what is wrong and what to do."""


class NetbedError(Exception):
    """A failure the user can act on; the CLI prints its message alone, without a traceback."""


class Cancelled(NetbedError):
    """The work was called off (Ctrl-C, SIGTERM) before it ended: not a failure of what it was doing."""
