"""Connections: segments grouped by 4-tuple, with Wireshark's analysis and replayed states.

One pass over the segments, constant work and bounded state per segment.
The per-direction sequence analysis follows Wireshark's
``tcp_analyze_sequence_number()`` (epan/dissectors/packet-tcp.c, default
preferences) so that netbed's counts of retransmissions, keep-alives and
zero-window probes are the ones tshark reports; the unit tests compare the
two on crafted captures. Its quirks are kept on purpose: sequence numbers are
compared as absolute values, and an expected sequence number of 0 means "not
known yet", as in Wireshark. One difference is deliberate: Wireshark's
keep-alive is any segment of length 0 or 1 with seq = next - 1, netbed's also
needs seq acknowledged by the peer (a probe re-sends an acknowledged byte), so
a lone byte never acknowledged and sent again is a retransmission (UNP 5.13's
client writing to a crashed host), and an empty segment there is no probe.
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from enum import StrEnum

from .pcap import ReadStats, TcpTuple, reverse_key, split_key
from .segments import ACK, FIN, RST, SYN, Endpoint, Mark, Segment, flag_letters, parse_options, tcpdump_flags
from .states import (
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN_WAIT_1,
    LISTEN,
    SYN_SENT,
    Side,
    State,
    on_receive,
    on_send,
)

__all__ = ["CloseKind", "Connection", "Analyzer", "LINGER_NS"]

_M = 0xFFFFFFFF
_HALF = 0x80000000
_SFR = SYN | FIN | RST
_FAST_RTX_NS = 20_000_000  # Wireshark: a fast retransmission comes within 20 ms of the last dup ACK
_OOO_NS = 3_000_000  # Wireshark: out-of-order threshold when the handshake's RTT is unknown

_RTX = Mark.RETRANSMISSION.value
_FAST = Mark.FAST_RETRANSMISSION.value
_SPUR = Mark.SPURIOUS_RETRANSMISSION.value
_OOO = Mark.OUT_OF_ORDER.value
_KA = Mark.KEEP_ALIVE.value
_KA_ACK = Mark.KEEP_ALIVE_ACK.value
_ZW = Mark.ZERO_WINDOW.value
_ZWP = Mark.ZERO_WINDOW_PROBE.value
_ZWP_ACK = Mark.ZERO_WINDOW_PROBE_ACK.value
_DUP = Mark.DUPLICATE_ACK.value
_WUPD = Mark.WINDOW_UPDATE.value
_LOST = Mark.LOST_SEGMENT.value
_UNSEEN = Mark.ACKED_UNSEEN.value
_ANY_RTX = _RTX | _FAST | _SPUR
_EST = ESTABLISHED
_OVER = (State.TIME_WAIT, State.CLOSED)
_NEVER = -(1 << 63)
_LIVE = "the analyzer's table holds live connections only"

LINGER_NS = 10_000_000_000
"""A connection that has closed (an RST, or both sides in TIME-WAIT or CLOSED) and then heard nothing for
this long (capture time) is over: it is handed on and forgotten, and a later segment on its 4-tuple begins
a new connection. Long enough for a lost last ACK's retransmitted FIN and the RSTs that answer stragglers;
short enough that a busy capture does not hold many finished connections."""

SWEEP_NS = 1_000_000_000
"""How often (capture time) the closed connections are looked at for the linger."""

STATE_CODES = (
    State.LISTEN,
    State.SYN_SENT,
    State.SYN_RECEIVED,
    State.ESTABLISHED,
    State.FIN_WAIT_1,
    State.FIN_WAIT_2,
    State.CLOSE_WAIT,
    State.CLOSING,
    State.LAST_ACK,
    State.TIME_WAIT,
    State.CLOSED,
)
"""States as the C speedups number them."""
_CODE = {s: i for i, s in enumerate(STATE_CODES)}
_PLAIN = {s: str(s.value) for s in State}  # an enum's .value costs a descriptor call
_PLAIN_CODE = tuple(_PLAIN[s] for s in STATE_CODES)
_MARK_REC = struct.Struct("=IHxx")  # the C side's records: segment index and marks,
_CHANGE_REC = struct.Struct("=IBBxx")  # index, direction and new state,
_GAP_REC = struct.Struct("=IBxxxq")  # index, direction and nanoseconds since the previous send


class CloseKind(StrEnum):
    """How a connection ended, as the segments show it (values are what to_json writes)."""

    OPEN = "open"  # neither FIN nor RST captured
    CLIENT_FIRST = "client-first"  # both FINs; the client's first, the server's after it
    SERVER_FIRST = "server-first"
    SIMULTANEOUS = "simultaneous"  # each side sent its FIN before it saw the other's
    HALF_CLOSED_BY_CLIENT = "half-closed-by-client"  # only the client's FIN
    HALF_CLOSED_BY_SERVER = "half-closed-by-server"
    RESET_BY_CLIENT = "reset-by-client"  # an RST ended it; the first RST was the client's (an RST
    # after both FINs were sent and acknowledged ended nothing: it answers a late segment, as a
    # closed port does, and the close stays the FINs' kind)
    RESET_BY_SERVER = "reset-by-server"
    REFUSED = "refused"  # the SYN drew an RST: nothing listened


class _Flow:
    """Per-direction analysis state: Wireshark's tcp_flow_t fields, plus netbed's own."""

    __slots__ = (
        "base",
        "base_set",
        "nextseq",
        "nextseqtime",
        "lastack",
        "lastacktime",
        "window",
        "dupacks",
        "maxseqtobeacked",
        "lastmarks",
        "acked",
        "side",
        "rtx_seq",
        "rtx_time",
        "rtx",
        "ka",
        "zwp",
        "fin_idx",
    )

    def __init__(self, state: State) -> None:
        self.base = 0
        self.base_set = False
        self.nextseq = 0  # absolute; 0 = unknown (Wireshark's convention)
        self.nextseqtime = 0
        self.lastack = 0
        self.lastacktime = 0
        self.window = -1  # Wireshark starts at G_MAXUINT32: never equal to a real window
        self.dupacks = 0  # -1: Wireshark's "an ACKed unseen segment was reported" marker
        self.maxseqtobeacked = 0
        self.lastmarks = 0
        self.acked = -1  # netbed's own: the highest ACK the peer sent for this direction's data; -1 = none yet
        self.side = Side(state)
        self.rtx_seq = -1  # the sequence number of the last retransmission, for gaps
        self.rtx_time = 0
        self.rtx = 0
        self.ka = 0
        self.zwp = 0
        self.fin_idx = -1


class _Done:
    """What a finished connection keeps of a direction's analysis (the rest of _Flow is let go)."""

    __slots__ = ("base", "rtx", "ka", "zwp", "fin_idx")

    def __init__(self, base: int, rtx: int, ka: int, zwp: int, fin_idx: int) -> None:
        self.base = base
        self.rtx = rtx
        self.ka = ka
        self.zwp = zwp
        self.fin_idx = fin_idx


_Flows = tuple[_Flow, _Flow] | tuple[_Done, _Done]
"""A connection's two directions (by direction, 0: as its first segment went): live analysis state, or what is kept."""
_Ctx = tuple[str | None, Mapping[str, str], bool, str, bool, bool, bool]
"""What a compacted connection keeps beside _packed: source, names, keep, role_reason, roles_guessed, whether
its head is _HEAD_WIDE, and whether its flags are packed a byte a segment."""


class Connection:
    """One TCP connection: who is client and server, what each sent, and what the analysis found.

    Built by :class:`Analyzer` one segment at a time. Summaries (flags,
    counts, states, close kind) are always kept; the segments themselves only
    when the analyzer was asked to keep them.

    Public: id (order of first appearance, as tshark's tcp.stream), client and
    server (Endpoint), roles_guessed and role_reason, packets, first_ts,
    duration, flags, tcpdump_flags, senders, retransmissions,
    keepalive_probes, zero_window_probes, resets, first_reset, close_kind,
    states, state_changes, initial_rtt, retransmission_gaps(), count(),
    segments (with keep_segments).

    Two kinds, one interface: the analysis builds each connection with every
    field in a slot of its own (the subclass _Full); analyze(), which holds
    them all, keeps a compact one instead (_compact: the fields packed in one
    bytes object, unpacked when read), a fifth of the size.
    """

    __slots__ = ("_packed", "_ctx")
    # The rest of a connection's state is in _Full's slots while it is analysed, and packed in _packed
    # (one bytes) once analyze() has compacted it: the properties at the end of the class unpack it.
    _packed: bytes | None  # None: a live (_Full) connection, with every field in a slot
    _ctx: _Ctx | None  # with _packed: the fields a compacted connection does not pack (see _compact)

    def __new__(cls, *args: object, **kwargs: object) -> Connection:
        return object.__new__(_Full if cls is Connection and args else cls)  # copy and pickle: as it was

    # --- roles and names --------------------------------------------------------------------

    def role_of(self, direction: int) -> str:
        """'client' or 'server' for a direction (0: as the first captured segment went)."""
        return "client" if direction == self._client_dir else "server"

    def _flow(self, role: str) -> _Flow | _Done:
        return self._flows[self._client_dir if role == "client" else self._client_dir ^ 1]

    def side(self, who: str) -> str:
        """The role ('client' / 'server') for a role, a host name from the address map, an ip or ip:port.

        The words client and server always mean the roles, whatever the map says.
        """
        if who in ("client", "server"):
            return who
        if who == self.client.name or who == self.client.ip or who == str(self.client):
            return "client"
        if who == self.server.name or who == self.server.ip or who == str(self.server):
            return "server"
        raise ValueError(
            f"{who!r} is neither end of {self.label()} (use client, server, {self.client.name}, {self.server.name})"
        )

    def endpoint(self, who: str) -> Endpoint:
        return self.client if self.side(who) == "client" else self.server

    def label(self) -> str:
        """'client 10.0.0.3:40000 > server 10.0.0.2:9877'."""
        return f"{self.client.name} {self.client} > {self.server.name} {self.server}"

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.label()} {self.packets} segments, {self.close_kind.value}>"

    # --- summaries ----------------------------------------------------------------------------

    @property
    def first_ts(self) -> float:
        return self.first_ns / 1e9

    @property
    def duration(self) -> float:
        return (self.last_ns - self.first_ns) / 1e9

    @property
    def syn_seen(self) -> bool:
        """The capture starts with the client's SYN (so the roles and the client's ISN are known)."""
        return self._initial[0] is CLOSED

    @property
    def flags(self) -> list[str]:
        """Each segment's flags as letters: 'S', 'SA', 'A', 'PA', 'FA', 'R', 'RA' ..."""
        return [flag_letters(f) for f in self._fl]

    @property
    def tcpdump_flags(self) -> list[str]:
        """Each segment's flags in tcpdump's notation: 'S', 'S.', '.', 'P.', 'F.', 'R' ..."""
        return [tcpdump_flags(f) for f in self._fl]

    @property
    def senders(self) -> list[str]:
        """Each segment's sender role, in order."""
        cd = self._client_dir
        return ["client" if f >> 9 == cd else "server" for f in self._fl]

    def _count(self, mask: int, side: str | None) -> int:
        if side is None:
            return sum(1 for m in self._marks.values() if m & mask)
        want = self._client_dir if self.side(side) == "client" else self._client_dir ^ 1
        fl = self._fl
        return sum(1 for i, m in self._marks.items() if m & mask and fl[i] >> 9 == want)

    @property
    def retransmissions(self) -> int:
        """Segments that Wireshark's filter tcp.analysis.retransmission matches (fast and spurious too)."""
        if self._packed is not None:  # compacted: straight from the packed counts
            h = self._fixed()
            return h[13] + h[14]
        return self._flows[0].rtx + self._flows[1].rtx

    @property
    def keepalive_probes(self) -> int:
        """Segments Wireshark marks tcp.analysis.keep_alive, but for those whose seq the peer never acknowledged."""
        if self._packed is not None:
            h = self._fixed()
            return h[15] + h[16]
        return self._flows[0].ka + self._flows[1].ka

    @property
    def zero_window_probes(self) -> int:
        if self._packed is not None:
            h = self._fixed()
            return h[17] + h[18]
        return self._flows[0].zwp + self._flows[1].zwp

    def count(self, mark: Mark, side: str | None = None) -> int:
        """Segments carrying any of the given marks, from one side or both."""
        return self._count(int(mark), side)

    @property
    def resets(self) -> list[str]:
        """The sender of each RST, in order."""
        return [self.role_of(d) for d in self._rsts]

    @property
    def first_reset(self) -> str | None:
        """'client' or 'server': who sent the first RST; None without one."""
        return self.role_of(self._rsts[0]) if self._rsts else None

    @property
    def initial_rtt(self) -> float | None:
        """From the (last) SYN to the first ACK without SYN, as Wireshark's tcp.analysis.initial_rtt."""
        return self._first_rtt / 1e9 if self._first_rtt else None

    @property
    def close_kind(self) -> CloseKind:
        """How the connection ended; an RST wins over FINs, since it is what ended it, unless
        both FINs were acknowledged before it."""
        if self._rsts and not self._closed_before(self._first_rst_idx):
            by = self.role_of(self._rsts[0])
            if by == "server" and not self._synack and self._initial[0] == State.CLOSED:
                return CloseKind.REFUSED
            return CloseKind.RESET_BY_CLIENT if by == "client" else CloseKind.RESET_BY_SERVER
        cfin = self._flow("client").fin_idx
        sfin = self._flow("server").fin_idx
        if cfin >= 0 and sfin >= 0:
            if self._crossed:
                return CloseKind.SIMULTANEOUS
            return CloseKind.CLIENT_FIRST if cfin < sfin else CloseKind.SERVER_FIRST
        if cfin >= 0:
            return CloseKind.HALF_CLOSED_BY_CLIENT
        if sfin >= 0:
            return CloseKind.HALF_CLOSED_BY_SERVER
        return CloseKind.OPEN

    def _closed_before(self, index: int) -> bool:
        """Both sides had closed by FINs (TIME-WAIT or CLOSED) before segment ``index``.

        Seen on a loaded host: its ACK of the peer's FIN, overtaken on the way out by its own
        FIN (a veth queues per CPU), reaches the peer in TIME-WAIT, which answers it with an
        ACK, which the closed socket answers with an RST.
        """
        last: dict[int, State] = {}
        for idx, d, state in self._change_list():
            if idx >= index:
                break
            last[d] = state
        return len(last) == 2 and all(s in (State.TIME_WAIT, State.CLOSED) for s in last.values())

    @property
    def states(self) -> dict[str, list[str]]:
        """The RFC 9293 states each side passed through, starting with the assumed one."""
        client = [_PLAIN[self._initial[0]]]
        server = [_PLAIN[self._initial[1]]]
        cd = self._client_dir
        changes = self._changes
        if isinstance(changes, bytes):  # a finished connection's, packed
            for _idx, d, code in _CHANGE_REC.iter_unpack(changes):
                (client if d == cd else server).append(_PLAIN_CODE[code])
        else:
            for _idx, d, state in changes:
                (client if d == cd else server).append(_PLAIN[state])
        out = {"client": client, "server": server}
        if self._rsts and self.close_kind is CloseKind.REFUSED:  # nothing listened: the SYN met a closed port
            out["server"] = [str(State.CLOSED)]
        return out

    @property
    def state_changes(self) -> list[tuple[int, str, str]]:
        """(segment index, 'client'/'server', new state) in order."""
        return [(idx, self.role_of(d), str(state)) for idx, d, state in self._change_list()]

    def initial_state(self, role: str) -> str:
        return str(self._initial[0 if role == "client" else 1])

    def retransmission_gaps(self, side: str | None = None) -> list[float]:
        """Seconds before each retransmission since the previous send of the same data.

        For a segment retransmitted again and again (a crashed peer) these are
        the RTO backoff intervals: first since the original, then since the
        previous retransmission.
        """
        want = None if side is None else (self._client_dir if self.side(side) == "client" else self._client_dir ^ 1)
        return [g / 1e9 for _i, d, g in self._gaps if want is None or d == want]

    # --- segments ---------------------------------------------------------------------------

    @property
    def has_segments(self) -> bool:
        return self._keep

    @property
    def segments(self) -> list[Segment]:
        """Every segment as a Segment (built on first use; needs keep_segments).

        Unless they were kept in memory, they are read again from the capture
        file, from this connection's first record to its last.
        """
        if not self._keep:
            raise ValueError(f"connection {self.id} was analysed without its segments: analyse with keep_segments=True")
        if self._raw is None:
            return list(self.iter_segments())
        n = len(self._raw)
        if len(self._segments) < n:
            make, raw = self._maker(), self._raw
            self._segments.extend(make(i, raw[i]) for i in range(len(self._segments), n))
        return self._segments

    def iter_segments(self) -> Iterator[Segment]:
        """The segments one by one: read again from the file (and not held) unless they were kept in memory."""
        if self._raw is not None or not self._keep:
            yield from self.segments
            return
        from .scan import reread

        make = self._maker()
        for i, t in enumerate(reread(self)):
            yield make(i, t)

    def segment(self, index: int) -> Segment:
        return self.segments[index]

    def _segment(self, i: int) -> Segment:
        return self.make_segment(i, self._raw[i])

    def make_segment(self, i: int, t: TcpTuple) -> Segment:
        """The Segment for the reader tuple t at index i (follow mode builds them without keeping any)."""
        return self._maker()(i, t)

    def _maker(self) -> Callable[[int, TcpTuple], Segment]:
        """make_segment with the connection's fields fetched once (a compacted connection unpacks them)."""
        fl, flows, marks, first_ns = self._fl, self._flows, self._marks, self.first_ns
        client, server = self.client, self.server
        ends = {"client": (client, server), "server": (server, client)}
        cd = self._client_dir

        def make(i: int, t: TcpTuple) -> Segment:
            ts, _key, seq, ack, flags, win, seglen, opts, frame, foff, caplen, link = t
            d = fl[i] >> 9
            fwd, rev = flows[d], flows[d ^ 1]
            sender = "client" if d == cd else "server"
            src, dst = ends[sender]
            return Segment(
                index=i,
                frame=frame,
                ts=ts / 1e9,
                time=(ts - first_ns) / 1e9,
                sender=sender,
                src=src,
                dst=dst,
                flags=flags,
                seq=(seq - fwd.base) & _M,
                ack=(ack - rev.base) & _M if flags & ACK else 0,
                raw_seq=seq,
                raw_ack=ack,
                window=win,
                payload_len=seglen,
                options=parse_options(opts),
                marks=Mark(marks.get(i, 0)),
                _conn=self,
                _where=(foff, caplen, link),
            )

        return make

    def changes_at(self, index: int) -> list[tuple[str, str]]:
        """[(role, new state)] caused by the segment at index."""
        return [(self.role_of(d), str(s)) for i, d, s in self._change_list() if i == index]

    def _change_list(self) -> list[tuple[int, int, State]]:
        """(segment index, direction, new state) in order; a finished connection keeps them packed."""
        changes = self._changes
        if isinstance(changes, bytes):
            return [(i, d, STATE_CODES[c]) for i, d, c in _CHANGE_REC.iter_unpack(changes)]
        return changes


    # --- compact: what analyze() keeps of each connection -------------------------------------

    def _compact(self, shared: dict | None = None) -> Connection:
        """This finished connection as a Connection of a fifth of the memory: its state packed in one bytes.

        Only for a connection whose segments are not held in memory (read
        again from the file, or not kept). The properties below unpack what
        is asked for, each time (nothing unpacked is kept). shared: a dict
        the connections of one capture share their common fields through.
        """
        f0, f1 = self._flows
        counts = (f0.rtx, f1.rtx, f0.ka, f1.ka, f0.zwp, f1.zwp)
        if max(counts) > 0xFFFFFFFF:
            return self
        fields = (
            self.id,
            self.packets,
            self.first_ns,
            self.last_ns,
            self.first_frame,
            self._first_off,
            self._last_off,
            self._first_rtt,
            self._first_rst_idx,
            f0.fin_idx,
            f1.fin_idx,
        )
        head = _HEAD if max(fields[:2] + fields[4:7]) <= 0xFFFFFFFF and max(fields[8:]) < 1 << 31 else _HEAD_WIDE
        fl = self._fl.tobytes()
        low, high = fl[_LOW::2], fl[_LOW ^ 1 :: 2]
        narrow = not low.translate(None, _BELOW_CWR) and not high.translate(None, _EVEN)  # a byte a segment
        if narrow:
            fl = (int.from_bytes(low, "little") | int.from_bytes(high.translate(_DIR_BIT), "little")).to_bytes(
                len(low), "little"
            )
        ctx = (self.source, self._names, self._keep, self.role_reason, self.roles_guessed, head is _HEAD_WIDE, narrow)
        if shared is not None:  # one tuple for all alike (the names: the same dict)
            ctx = shared.setdefault((ctx[0], id(ctx[1]), *ctx[2:]), ctx)
        changes = self._changes
        if not isinstance(changes, bytes):
            changes = b"".join(_CHANGE_REC.pack(i, d, _CODE[st]) for i, d, st in changes)
        ch = array("H", changes)
        del ch[3::4]  # each record's two bytes of padding
        changes = ch.tobytes()
        marks = b"".join(_MARK_REC.pack(i, m) for i, m in self._marks.items()) if self._marks else b""
        gaps = b"".join(_GAP_REC.pack(*g) for g in self._gaps) if self._gaps else b""
        rsts = bytes(self._rsts)
        key = self._key
        try:
            fixed = head.pack(
                *fields,
                f0.base,
                f1.base,
                *counts,
                self._client_dir | self._synack << 1 | self._crossed << 2,
                _CODE[self._initial[0]],
                _CODE[self._initial[1]],
                len(key),
                len(marks),
                len(changes),
                len(gaps),
                len(rsts),
            )
        except struct.error:  # a time past 2262 (fuzzed files; the Python engine does not saturate): left whole
            return self
        c = object.__new__(Connection)
        c._ctx = ctx
        c._packed = fixed + key + fl + marks + changes + gaps + rsts
        return c

    def _part(self, k: int) -> bytes:
        """The k-th variable part of _packed: 0 key, 1 flags, 2 marks, 3 changes, 4 gaps, 5 rsts."""
        packed, ctx = self._packed, self._ctx
        assert packed is not None and ctx is not None, "only a compacted connection is packed"
        head = _HEADS[ctx[5]]
        h = head.unpack_from(packed)
        sizes = (h[22], h[1] if ctx[6] else 2 * h[1], *h[23:])
        start = head.size + sum(sizes[:k])
        return packed[start : start + sizes[k]]

    def _head(self, k: int) -> int:
        packed, ctx = self._packed, self._ctx
        assert packed is not None and ctx is not None, "only a compacted connection is packed"
        return _HEADS[ctx[5]].unpack_from(packed)[k]

    def _fixed(self) -> tuple[int, ...]:
        """A compacted connection's fixed part, unpacked (see _HEADS)."""
        packed, ctx = self._packed, self._ctx
        assert packed is not None and ctx is not None, "only a compacted connection is packed"
        return _HEADS[ctx[5]].unpack_from(packed)

    id = property(lambda self: self._head(0))
    packets = property(lambda self: self._head(1))
    source = property(lambda self: self._ctx[0])
    _names = property(lambda self: self._ctx[1])
    _keep = property(lambda self: self._ctx[2])
    role_reason = property(lambda self: self._ctx[3])
    roles_guessed = property(lambda self: self._ctx[4])
    first_ns = property(lambda self: self._head(2))
    last_ns = property(lambda self: self._head(3))
    first_frame = property(lambda self: self._head(4))
    _first_off = property(lambda self: self._head(5))
    _last_off = property(lambda self: self._head(6))
    _first_rtt = property(lambda self: self._head(7))
    _first_rst_idx = property(lambda self: self._head(8))
    _client_dir = property(lambda self: self._head(19) & 1)
    _synack = property(lambda self: bool(self._head(19) & 2))
    _crossed = property(lambda self: bool(self._head(19) & 4))
    _key = property(lambda self: self._part(0))

    @property
    def _changes(self) -> list[tuple[int, int, State]] | bytes:  # bytes here; a live _Full's is a list
        packed = array("H", self._part(3))
        records = array("H", bytes(8 * (len(packed) // 3)))  # as _CHANGE_REC: the padding back
        for k in range(3):
            records[k::4] = packed[k::3]
        return records.tobytes()

    _raw = property(lambda self: None)  # compacted: the segments are read again from the file
    _pairs = property(lambda self: None)  # over: no live analysis
    _cand = property(lambda self: True)

    @property
    def _flows(self) -> _Flows:  # _Done here; a live _Full's are _Flow
        h = self._fixed()
        return _Done(h[11], h[13], h[15], h[17], h[9]), _Done(h[12], h[14], h[16], h[18], h[10])

    @property
    def _initial(self) -> tuple[State, State]:
        h = self._fixed()
        return STATE_CODES[h[20]], STATE_CODES[h[21]]

    @property
    def _fl(self) -> array:
        fl = array("H")
        data: bytes | bytearray = self._part(1)
        if self._ctx is not None and self._ctx[6]:  # a byte a segment: flags, the direction in the top bit
            wide = bytearray(2 * len(data))
            wide[_LOW::2] = data.translate(_NO_DIR_BIT)
            wide[_LOW ^ 1 :: 2] = data.translate(_DIR_BYTE)
            data = wide
        fl.frombytes(data)
        return fl

    @property
    def _marks(self) -> dict[int, int]:
        return dict(_MARK_REC.iter_unpack(self._part(2)))

    @property
    def _gaps(self) -> list[tuple[int, int, int]]:
        return list(_GAP_REC.iter_unpack(self._part(4)))

    @property
    def _rsts(self) -> list[int]:
        return list(self._part(5))

    @property
    def _segments(self) -> list[Segment]:
        return []

    @property
    def client(self) -> Endpoint:
        """The client's end (address, port, name)."""
        return self._ends()[0]

    @property
    def server(self) -> Endpoint:
        """The server's end (address, port, name)."""
        return self._ends()[1]

    def _ends(self) -> tuple[Endpoint, Endpoint]:
        src, sport, dst, dport = split_key(self._key)
        return _endpoints(((src, sport), (dst, dport)), self._client_dir, self._names)


def _endpoints(
    ends: tuple[tuple[str, int], tuple[str, int]], client_dir: int, names: Mapping[str, str]
) -> tuple[Endpoint, Endpoint]:
    """(client, server) Endpoints, named from the address map (the roles where both map to one name)."""
    cip, cport = ends[client_dir]
    sip, sport = ends[client_dir ^ 1]
    cname = names.get(cip, "client")
    sname = names.get(sip, "server")
    if cname == sname:
        cname, sname = "client", "server"
    return Endpoint(cip, cport, cname, "client"), Endpoint(sip, sport, sname, "server")


_HEAD_WIDE = struct.Struct("=11q8I4B4I")
_HEAD = struct.Struct("=2I2q3Iq3i8I4B4I")  # the same where ids, counts and offsets fit in 32 bits
_HEADS = (_HEAD, _HEAD_WIDE)  # by a compacted connection's _ctx[5]
"""A compacted connection's fixed part (Connection._compact): id, packets, first and last ns, first frame,
first and last offset, initial RTT, first RST's index, each direction's FIN index, base, retransmissions,
keep-alives and zero-window probes, the client's direction (and synack, crossed), the initial states, and the
sizes of the variable parts that follow: key, flags (2 bytes a packet, or 1 where no segment has CWR or
NS: the direction in its top bit), marks, changes (as _CHANGE_REC without its padding), gaps, RST senders."""
_LOW = 0 if sys.byteorder == "little" else 1  # where the low byte of an array("H") item is
_BELOW_CWR = bytes(range(0x80))  # low bytes without CWR (0x80): deleted, what is left has it
_EVEN = bytes(range(0, 256, 2))  # high bytes without NS (0x100): deleted, what is left has it
_DIR_BIT = bytes(0x80 if b & 2 else 0 for b in range(256))  # high byte (direction << 1) -> the top bit
_NO_DIR_BIT = bytes(b & 0x7F for b in range(256))  # a byte a segment -> the flags
_DIR_BYTE = bytes(2 if b & 0x80 else 0 for b in range(256))  # a byte a segment -> the high byte


class _Full(Connection):
    """A connection with every field at hand: built by Analyzer (or the C speedups' factory) and analysed.

    Its slots shadow Connection's unpacking properties; the methods here fill them (__init__, and _load
    from the C speedups) and let go of the live analysis state once it is over (_finish). analyze() keeps
    a Connection._compact() of it instead, once it is over.
    """

    __slots__ = (
        "id",
        "roles_guessed",
        "role_reason",
        "source",
        "packets",
        "_keep",
        "_names",
        "client",
        "server",
        "first_ns",
        "last_ns",
        "_flows",
        "_client_dir",
        "_fl",
        "_marks",
        "_raw",
        "_changes",
        "_initial",
        "_gaps",
        "_rsts",
        "_first_rst_idx",
        "_synack",
        "_crossed",
        "_mru_syn",
        "_first_rtt",
        "_segments",
        "_settled",
        "_pairs",
        "_based",
        "_key",
        "first_frame",
        "_first_off",
        "_last_off",
        "_cand",
    )
    id: int
    roles_guessed: bool
    role_reason: str
    source: str | None
    packets: int
    _keep: bool
    _names: Mapping[str, str]
    client: Endpoint
    server: Endpoint
    first_ns: int
    last_ns: int
    _flows: _Flows  # _Done once over (_finish, _load)
    _client_dir: int
    _fl: array
    _marks: dict[int, int]
    _raw: list[TcpTuple] | None  # None: the segments are read again from the file when asked for
    _changes: list[tuple[int, int, State]] | bytes  # packed as _CHANGE_REC records once over
    _initial: tuple[State, State]
    _gaps: list[tuple[int, int, int]]  # (segment index, direction, ns since previous send)
    _rsts: list[int]  # direction of each RST
    _first_rst_idx: int
    _synack: bool
    _crossed: bool
    _mru_syn: int
    _first_rtt: int
    _segments: list[Segment]
    _settled: bool  # both sides ESTABLISHED: only SYN, FIN or RST can move a state
    _pairs: tuple[tuple[_Flow, _Flow], tuple[_Flow, _Flow]] | None  # by direction: (sender's, receiver's); None: over
    _based: bool  # both directions' initial sequence numbers known
    _key: bytes
    first_frame: int
    _first_off: int
    _last_off: int
    _cand: bool  # closed: waiting out the linger in the analyzer's candidates

    def __init__(
        self, cid: int, t: TcpTuple, names: Mapping[str, str], keep: bool, source: str | None, live: bool = True
    ) -> None:
        """From the connection's first segment; live=False leaves the analysis state to the C speedups."""
        ts, key, seq, ack, flags = t[:5]
        src, sport, dst, dport = split_key(key)
        self.id = cid
        self._packed = self._ctx = None
        self._names = names
        self._key = key
        self.first_frame = t[8] if len(t) > 8 else 0
        self._first_off = self._last_off = t[9] if len(t) > 9 else 0
        self._cand = False
        self.source = source
        self.packets = 0
        self.first_ns = ts
        self.last_ns = ts
        if flags & (SYN | ACK) == SYN:
            client_dir, reason, guessed = 0, "the client sent the SYN", False
        elif flags & SYN:
            client_dir, reason, guessed = 1, "SYN not captured; the server sent the SYN-ACK", False
        elif sport != dport:
            client_dir = 1 if sport < dport else 0
            reason, guessed = "SYN not captured; the server is guessed as the lower port", True
        else:
            client_dir, reason, guessed = 0, "SYN not captured; the client is guessed as the first sender", True
        self._client_dir = client_dir
        self.roles_guessed = guessed
        self.role_reason = reason
        self.client, self.server = _endpoints(((src, sport), (dst, dport)), client_dir, names)
        if flags & SYN:
            cstate, sstate = (CLOSED, LISTEN) if not flags & ACK else (SYN_SENT, LISTEN)
        else:
            cstate = sstate = ESTABLISHED
        self._initial = (cstate, sstate)
        self._based = False
        if live:
            states = [cstate, sstate] if client_dir == 0 else [sstate, cstate]
            self._flows = (_Flow(states[0]), _Flow(states[1]))
            self._pairs = ((self._flows[0], self._flows[1]), (self._flows[1], self._flows[0]))
            if flags & SYN and flags & ACK:  # the client's SYN went by unseen: its SYN-ACK acknowledges it
                self._flows[client_dir].side.syn_next = ack
        self._fl = array("H")  # per segment: flags | direction << 9
        self._marks = {}
        self._keep = keep
        self._raw = []
        self._changes = []
        self._gaps = []
        self._rsts = []
        self._first_rst_idx = -1
        self._synack = False
        self._crossed = False
        self._mru_syn = 0
        self._first_rtt = 0
        self._segments = []
        self._settled = False

    def _finish(self) -> None:
        """Let go of the live analysis state once the connection is over: keep only what the summaries read."""
        f0, f1 = self._flows
        self._flows = (
            _Done(f0.base, f0.rtx, f0.ka, f0.zwp, f0.fin_idx),
            _Done(f1.base, f1.rtx, f1.ka, f1.zwp, f1.fin_idx),
        )
        self._pairs = None
        changes = self._changes
        assert not isinstance(changes, bytes), "a connection is finished once"
        self._changes = b"".join(_CHANGE_REC.pack(i, d, _CODE[st]) for i, d, st in changes)

    def _load(self, summary: tuple, raw: list[TcpTuple] | None) -> None:
        """Take the analysis of this connection from the C speedups (see _speedups.c: conn_emit)."""
        (
            self.packets,
            self.last_ns,
            self.first_frame,
            self._first_off,
            self._last_off,
            flows,
            fl,
            marks,
            changes,
            gaps,
            rsts,
            self._first_rst_idx,
            synack,
            crossed,
            self._first_rtt,
        ) = summary
        c0, c1 = flows
        self._flows = (_Done(c0[0], c0[1], c0[2], c0[3], c0[4]), _Done(c1[0], c1[1], c1[2], c1[3], c1[4]))
        self._pairs = None
        self._fl = array("H")
        self._fl.frombytes(fl)
        self._marks = dict(_MARK_REC.iter_unpack(marks))
        self._changes = changes
        self._gaps = list(_GAP_REC.iter_unpack(gaps))
        self._rsts = list(rsts)
        self._synack = bool(synack)
        self._crossed = bool(crossed)
        if raw is not None:
            self._raw = raw


class Analyzer:
    """Groups segments into connections as they stream by.

    A SYN whose sequence number differs from the one its side started with
    begins a new connection on the same 4-tuple (port reuse), as in Wireshark.
    A connection that has closed and stayed silent for LINGER_NS is over: it
    leaves the table, and goes to on_done if given (and then is not kept in
    ``connections``, so memory does not grow with the capture), else stays
    in ``connections``.

    keep_segments: True keeps each connection's segments available, read
    again from the file when there is one (source), else held in memory; a
    callable decides per connection, holding the chosen ones in memory.
    """

    __slots__ = (
        "names",
        "keep",
        "source",
        "connections",
        "stats",
        "on_done",
        "_table",
        "_next_id",
        "_now",
        "_next_sweep",
        "_cands",
        "_replaced",
    )

    def __init__(
        self,
        names: Mapping[str, str] | None = None,
        keep_segments: bool | Callable[[Connection], bool] = True,
        source: str | os.PathLike | None = None,
        stats: ReadStats | None = None,
        on_done: Callable[[Connection], None] | None = None,
    ) -> None:
        self.names = dict(names or {})
        self.keep = keep_segments
        self.source = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
        self.connections: list[Connection] = []
        self.stats = stats if stats is not None else ReadStats()
        self.on_done = on_done
        self._table: dict[bytes, tuple[_Full, int]] = {}  # live connections only: over ones leave it
        self._next_id = 0
        self._now = _NEVER  # the latest capture time seen
        self._next_sweep = _NEVER
        self._cands: list[_Full] = []  # closed connections, waiting out the linger
        self._replaced: list[_Full] = []  # open connections whose 4-tuple a new SYN took over: over at the end

    def _new(self, t: TcpTuple) -> _Full:
        keep = self.keep
        conn = _Full(self._next_id, t, self.names, False, self.source)
        self._next_id += 1
        if callable(keep):
            conn._keep = bool(keep(conn))
        else:
            conn._keep = bool(keep)
            if conn._keep and self.source is not None:
                conn._raw = None  # read again from the file when asked for
        if self.on_done is None:
            self.connections.append(conn)
        before = self._table.get(t[1])
        if before is not None and not before[0]._cand:  # port reuse: the old one is no longer in the table
            self._replaced.append(before[0])
        self._table[t[1]] = (conn, 0)
        self._table[reverse_key(t[1])] = (conn, 1)
        return conn

    def _sweep(self, everything: bool = False) -> None:
        """Hand on, in order of id, the closed connections silent for longer than LINGER_NS (or all of them)."""
        now = self._now
        over = [c for c in self._cands if everything or now - c.last_ns > LINGER_NS]
        if not over:
            return
        self._cands = [] if everything else [c for c in self._cands if not now - c.last_ns > LINGER_NS]
        over.sort(key=_by_id)
        table = self._table
        for conn in over:
            for key in (conn._key, reverse_key(conn._key)):
                hit = table.get(key)
                if hit is not None and hit[0] is conn:
                    del table[key]
            conn._finish()
            if self.on_done is not None:
                self.on_done(conn)

    def close(self) -> None:
        """The capture has ended: every connection still held is over (handed to on_done, if given)."""
        held = {id(c) for c in self._cands}
        seen = set()
        for conn in self._replaced:
            if id(conn) not in held and id(conn) not in seen:
                seen.add(id(conn))
                self._cands.append(conn)
        self._replaced = []
        for conn, _d in self._table.values():
            if id(conn) not in held and id(conn) not in seen:
                seen.add(id(conn))
                self._cands.append(conn)
        self._sweep(everything=True)

    def add(self, t: TcpTuple) -> tuple[Connection, int]:
        """Take one segment; return its connection and its index there (the follow path)."""
        self.feed((t,))
        conn = self._table[t[1]][0]
        return conn, conn.packets - 1

    def feed(self, segments: Iterable[TcpTuple]) -> list[Connection]:
        """Take every segment of an iterable, in capture order.

        The hot loop of the package, kept in one function on purpose (a call
        per segment costs a tenth of the budget): find the connection, run
        Wireshark's sequence analysis rule by rule in its order, then
        netbed's own bookkeeping and the state machine.
        """
        get = self._table.get
        new = self._new
        now = self._now
        for t in segments:
            ts, key, seq, ack, flags, win, seglen, _o, _f, foff, _c, _l = t
            if ts > now:
                now = self._now = ts
            if now >= self._next_sweep:
                if self._cands:
                    self._sweep()
                self._next_sweep = now + SWEEP_NS
            hit = get(key)
            if hit is None:
                conn = new(t)
                d = 0
            else:
                conn, d = hit
                if flags & 0x12 == 0x02:  # a SYN with another ISN: a new connection on the same ports
                    flow = conn._flows[d]
                    assert isinstance(flow, _Flow), _LIVE
                    if flow.base_set and seq != flow.base:
                        conn = new(t)
                        d = 0
            idx = conn.packets
            conn.packets = idx + 1
            conn.last_ns = ts
            conn._last_off = foff
            conn._fl.append(flags | d << 9)
            if conn._keep and conn._raw is not None:
                conn._raw.append(t)
            pairs = conn._pairs
            assert pairs is not None, _LIVE
            fwd, rev = pairs[d]
            if not conn._based:
                if not fwd.base_set:
                    fwd.base = seq if flags & SYN else (seq - 1) & _M
                    fwd.base_set = True
                if not rev.base_set and flags & ACK:
                    rev.base = (ack - 1) & _M
                    rev.base_set = True
                conn._based = rev.base_set and fwd.base_set

            # Wireshark's tcp_analyze_sequence_number(), rule by rule, in its order.
            marks = 0
            nextseq = fwd.nextseq
            sfr = flags & _SFR
            if seglen == 1 and seq == nextseq and rev.window == 0:
                marks = _ZWP
            else:
                if win == 0 and not sfr:
                    marks = _ZW
                if nextseq and not flags & RST and 0 < ((seq - nextseq) & _M) < _HALF:
                    marks |= _LOST
                if seglen <= 1 and not sfr:
                    # Wireshark's keep-alive (seq = next - 1), and netbed's condition on top: the peer has
                    # acknowledged seq (a probe re-sends an acknowledged byte). A byte never acknowledged,
                    # sent again, is a retransmission (below); an empty segment there is no probe at all.
                    if seq == ((nextseq - 1) & _M) and (fwd.acked < 0 or ((fwd.acked - seq - 1) & _M) < _HALF):
                        marks |= _KA
                    if not seglen and seq == nextseq and ack == fwd.lastack:
                        if win and win != fwd.window:
                            marks |= _WUPD
                        if win and win == fwd.window and rev.lastmarks & _KA:
                            marks |= _KA_ACK
                        elif win == 0 and fwd.window == 0 and rev.lastmarks & _ZWP:
                            marks |= _ZWP_ACK
                        elif win and win == fwd.window:
                            fwd.dupacks = 1 if fwd.dupacks == -1 else fwd.dupacks + 1
                            marks |= _DUP
            if ack != fwd.lastack:
                fwd.dupacks = 0
            if flags & ACK and (rev.acked < 0 or 0 < ((ack - rev.acked) & _M) < _HALF):
                rev.acked = ack
            if flags & ACK and rev.maxseqtobeacked and 0 < ((ack - rev.maxseqtobeacked) & _M) < _HALF:
                if ((rev.maxseqtobeacked - rev.nextseq) & _M) >= _HALF:
                    rev.maxseqtobeacked = rev.nextseq  # catch up: flagged once per gap
                    marks |= _UNSEEN
                else:  # nothing to catch up: flag once, however many pure ACKs repeat it
                    if rev.dupacks == 0:
                        marks |= _UNSEEN
                    rev.dupacks = -1
            if seglen or flags & (SYN | FIN):
                if not marks & _KA:
                    not_advanced = nextseq and ((seq - nextseq) & _M) >= _HALF
                    if seglen > 1 and ((nextseq - 1) & _M) == seq:
                        not_advanced = False
                    end = (seq + seglen + 1) & _M if flags & (SYN | FIN) else (seq + seglen) & _M
                    if seglen and rev.lastack and ((rev.lastack - seq - seglen) & _M) < _HALF:
                        marks |= _SPUR
                    elif (
                        not_advanced
                        and rev.dupacks >= 2
                        and rev.lastack == seq
                        and 0 <= ts - rev.lastacktime < _FAST_RTX_NS
                    ):
                        marks |= _FAST
                    elif not_advanced and 0 <= ts - fwd.nextseqtime < (conn._first_rtt or _OOO_NS) and nextseq != end:
                        marks |= _OOO
                    elif not_advanced:
                        marks |= _RTX
                    if marks & _ANY_RTX:  # netbed's own: the gap since this data was last sent
                        fwd.rtx += 1
                        conn._gaps.append((idx, d, ts - (fwd.rtx_time if seq == fwd.rtx_seq else fwd.nextseqtime)))
                        fwd.rtx_seq = seq
                        fwd.rtx_time = ts
                else:
                    end = (seq + seglen + 1) & _M if flags & (SYN | FIN) else (seq + seglen) & _M
            else:
                end = seq
            if not marks & _ZWP:
                if not nextseq or 0 < ((end - nextseq) & _M) < _HALF:
                    fwd.nextseq = end
                    fwd.nextseqtime = ts
                if not fwd.maxseqtobeacked or seq == fwd.maxseqtobeacked:
                    fwd.maxseqtobeacked = fwd.nextseq
            fwd.window = win
            fwd.lastack = ack
            fwd.lastacktime = ts
            fwd.lastmarks = marks

            # Wireshark computes the handshake's RTT after the analysis of the segment.
            if flags & SYN:
                if flags & ACK:
                    conn._synack = True
                else:
                    conn._mru_syn = ts
            elif not conn._first_rtt and flags & ACK and conn._mru_syn:
                conn._first_rtt = ts - conn._mru_syn

            # netbed's own bookkeeping, and the state machine
            if marks:
                conn._marks[idx] = marks
                if marks & _KA:
                    fwd.ka += 1
                elif marks & _ZWP:
                    fwd.zwp += 1
            if sfr or not conn._settled:
                changes = conn._changes
                assert not isinstance(changes, bytes), _LIVE
                s_side = fwd.side
                r_side = rev.side
                crossed = False
                if sfr:
                    if flags & RST:
                        if not conn._rsts:
                            conn._first_rst_idx = idx
                        conn._rsts.append(d)
                    if flags & FIN and fwd.fin_idx < 0:
                        fwd.fin_idx = idx
                        if rev.fin_idx >= 0:
                            fin_next = r_side.fin_next
                            crossed = conn._crossed = not (
                                flags & ACK and fin_next is not None and ((ack - fin_next) & _M) < _HALF
                            )
                if crossed and s_side.state is CLOSE_WAIT:
                    # This FIN does not acknowledge the peer's, captured earlier: it left before that
                    # FIN arrived. Replay the simultaneous close: FIN-WAIT-1, then CLOSING.
                    _undo(changes, d, CLOSE_WAIT)
                    s_side.state = _EST
                    on_send(s_side, flags, seq, seglen)
                    changes.append((idx, d, FIN_WAIT_1))
                    s_side.state = CLOSING
                    changes.append((idx, d, CLOSING))
                    new_state = None
                else:  # only SYN, FIN and RST move the sender
                    new_state = on_send(s_side, flags, seq, seglen) if sfr else None
                if new_state is not None:
                    changes.append((idx, d, new_state))
                new_state = on_receive(r_side, flags, seq, ack)
                if new_state is not None:
                    changes.append((idx, d ^ 1, new_state))
                conn._settled = s_side.state is _EST and r_side.state is _EST
                if not conn._cand and (conn._rsts or (s_side.state in _OVER and r_side.state in _OVER)):
                    conn._cand = True
                    self._cands.append(conn)
        return self.connections


def _by_id(conn: Connection) -> int:
    return conn.id


def _undo(changes: list[tuple[int, int, State]], d: int, state: State) -> None:
    """Drop the last recorded change of direction d into state."""
    for k in range(len(changes) - 1, -1, -1):
        if changes[k][1] == d and changes[k][2] is state:
            del changes[k]
            return


def to_json(connections: Iterable[Connection]) -> list[dict]:
    """Plain data for reports and the CLI: one dict per connection."""
    return [summary(c) for c in connections]


def summary(c: Connection, per_segment: bool = True) -> dict:
    """One connection as plain data; per_segment=False leaves the flags and senders lists empty."""
    return {
        "id": c.id,
        "client": str(c.client),
        "server": str(c.server),
        "client_name": c.client.name,
        "server_name": c.server.name,
        "roles": c.role_reason,
        "roles_guessed": c.roles_guessed,
        "start": c.first_ts,
        "duration": c.duration,
        "packets": c.packets,
        "flags": c.flags if per_segment else [],
        "senders": c.senders if per_segment else [],
        "retransmissions": c.retransmissions,
        "retransmission_gaps": c.retransmission_gaps(),
        "keepalive_probes": c.keepalive_probes,
        "zero_window_probes": c.zero_window_probes,
        "resets": c.resets,
        "close": c.close_kind.value,
        "states": c.states,
        "initial_rtt": c.initial_rtt,
    }
