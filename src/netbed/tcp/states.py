"""The RFC 9293 connection state machine, replayed over captured segments.

Each captured segment is taken as sent by one side and received by the
other, so each side's state moves as RFC 9293 section 3.10 moves it on a
send or on the arrival of an acceptable segment. A capture on the path sees
what was sent, not what arrived: a segment dropped at a crashed host still
moves that host's inferred state. States are therefore *inferred*; they are
what the two stacks went through if every captured segment arrived.

Timers are not on the wire: TIME-WAIT is the last state an active closer is
seen in, and a side whose connection was aborted without an RST stays where
it was.
"""

from __future__ import annotations

from enum import StrEnum

from .segments import ACK, FIN, RST, SYN

__all__ = ["State", "Side", "on_send", "on_receive"]

_M = 0xFFFFFFFF


class State(StrEnum):
    """RFC 9293 state names; members compare equal to the plain strings ("TIME-WAIT")."""

    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"
    CLOSED = "CLOSED"


# Module constants: attribute access on an Enum class is slow, and this runs per segment.
LISTEN, SYN_SENT, SYN_RECEIVED, ESTABLISHED = State.LISTEN, State.SYN_SENT, State.SYN_RECEIVED, State.ESTABLISHED
FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT, CLOSING = State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT, State.CLOSING
LAST_ACK, TIME_WAIT, CLOSED = State.LAST_ACK, State.TIME_WAIT, State.CLOSED


def _ge(a: int, b: int) -> bool:
    """a >= b in sequence space (RFC 1982 arithmetic modulo 2**32)."""
    return ((a - b) & _M) < 0x80000000


class Side:
    """One side's replayed state and the two sequence numbers the replay needs."""

    __slots__ = ("state", "syn_next", "fin_next")

    def __init__(self, state: State) -> None:
        self.state = state
        self.syn_next: int | None = None  # our ISN + 1: an ACK of at least this acknowledges our SYN
        self.fin_next: int | None = None  # our FIN's sequence number + 1


def on_send(side: Side, flags: int, seq: int, seglen: int) -> State | None:
    """Move ``side`` for a segment it sent; return the new state if it changed.

    seglen is the payload length; SYN and FIN sequence numbers are absolute.
    """
    st = side.state
    new = st
    if flags & RST:
        new = CLOSED
    else:
        if flags & SYN:
            side.syn_next = (seq + 1) & _M
            if not flags & ACK:
                if st in (CLOSED, LISTEN):
                    new = SYN_SENT
            elif st in (LISTEN, CLOSED):
                new = SYN_RECEIVED  # its SYN arrived unseen
        if flags & FIN:
            fin_next = (seq + seglen + (1 if flags & SYN else 0) + 1) & _M
            if side.fin_next is None or _ge(fin_next, side.fin_next):
                side.fin_next = fin_next
            if new in (ESTABLISHED, SYN_RECEIVED):
                new = FIN_WAIT_1
            elif new == CLOSE_WAIT:
                new = LAST_ACK
    if new is st:
        return None
    side.state = new
    return new


def on_receive(side: Side, flags: int, seq: int, ack: int) -> State | None:
    """Move ``side`` for a segment it received; return the new state if it changed.

    Following RFC 9293 3.10.7: RST first, then SYN, then the ACK field, then FIN.
    Every RST is taken as acceptable except in SYN-SENT (where it must
    acknowledge our SYN) and LISTEN (where it is ignored).
    """
    st = side.state
    new = st
    if flags & RST:
        if st == LISTEN or st == CLOSED:
            return None
        if st == SYN_SENT and not (flags & ACK and side.syn_next is not None and ack == side.syn_next):
            return None
        side.state = CLOSED
        return CLOSED
    if flags & SYN:
        if not flags & ACK:
            if st in (LISTEN, SYN_SENT):
                new = SYN_RECEIVED
        elif st in (SYN_SENT, SYN_RECEIVED) and side.syn_next is not None and _ge(ack, side.syn_next):
            new = ESTABLISHED
    elif flags & ACK:
        if new == SYN_RECEIVED and side.syn_next is not None and _ge(ack, side.syn_next):
            new = ESTABLISHED
    if flags & ACK and side.fin_next is not None and _ge(ack, side.fin_next):
        if new == FIN_WAIT_1:
            new = FIN_WAIT_2
        elif new == CLOSING:
            new = TIME_WAIT
        elif new == LAST_ACK:
            new = CLOSED
    if flags & FIN:
        if new in (ESTABLISHED, SYN_RECEIVED):
            new = CLOSE_WAIT
        elif new == FIN_WAIT_1:
            new = CLOSING
        elif new == FIN_WAIT_2:
            new = TIME_WAIT
    if new is st:
        return None
    side.state = new
    return new
