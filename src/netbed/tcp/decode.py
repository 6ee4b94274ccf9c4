"""Packet records into TCP segments: the reader's hot loop.

Each record is decoded in place with precompiled ``struct.Struct`` objects,
one tuple per segment and no object per packet; the common frame (Ethernet,
IPv4 without options, TCP) takes a single unpack. _speedups.c mirrors this
loop in C.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator

from .formats import PcapError, ReadStats
from .layers import _AF_INET6, _RAW_LINKS, _U16, _ethernet, _find_tcp, _ppp

__all__ = ["TcpTuple"]

# A decoded TCP segment as the hot path passes it on: a plain tuple, no object per packet:
# (ts_ns, key, seq, ack, flags, window, payload_len, options, frame_no, data_offset, caplen, link)
# key is the raw bytes src address + dst address + src port + dst port (12 bytes for IPv4,
# 36 for IPv6): one slice of the packet that serves as the connection's dictionary key.
TcpTuple = tuple

_TCP = struct.Struct("!4xIIBBH")  # seq, ack, offset/ns, flags, window
_ETH_IP4_TCP = struct.Struct("!12xHBxH2xHxB2x8x4xIIBBH")  # ethertype, IPv4 fields as _IP4, TCP as _TCP


# --- decoding -----------------------------------------------------------------------------


def _decode(
    records: Iterable[tuple], stats: ReadStats, close: Callable[[], None], options: bool = True, first_frame: int = 1
) -> Iterator[TcpTuple]:
    """Yield one TcpTuple per TCP segment; count and skip everything else; close the source at the end.

    The hot loop of the whole package: locals only, one tuple per segment.
    options=False leaves the option bytes out (b""): a summary never looks at them.
    """
    u16 = _U16.unpack_from
    tcp = _TCP.unpack_from
    fast = _ETH_IP4_TCP.unpack_from
    raw_links = _RAW_LINKS
    frames = first_frame - 1
    n_tcp = 0
    try:
        for ts, link, buf, off, caplen, wire, foff in records:
            frames += 1
            wire = wire if wire > caplen else caplen  # a capture may claim less on the wire than it holds
            if link == 1 and caplen >= 54:
                # Fast path for the common frame, Ethernet + IPv4 without options + TCP: one unpack.
                etype, vihl, total, frag, proto, seq, ack, hoff, flags, win = fast(buf, off)
                if etype == 0x0800 and vihl == 0x45 and proto == 6 and not frag & 0x3FFF:
                    hl = (hoff >> 4) << 2
                    room = wire - 14  # an IP length beyond the frame is not believed, as in _find_tcp
                    seglen = (total if 0 < total <= room else room) - 20
                    if 20 <= hl <= seglen:
                        n_tcp += 1
                        if hoff & 1:
                            flags |= 0x100
                        yield (
                            ts,
                            buf[off + 26 : off + 38],
                            seq,
                            ack,
                            flags,
                            win,
                            seglen - hl,
                            buf[off + 54 : min(off + 34 + hl, off + caplen)] if hl > 20 and options else b"",
                            frames,
                            foff,
                            caplen,
                            link,
                        )
                        continue
            end = off + caplen
            if link == 1:  # Ethernet
                if caplen < 14:
                    stats.cut += 1
                    continue
                etype, p = _ethernet(buf, off, end)
            elif link == 113:  # Linux cooked v1
                if caplen < 16:
                    stats.cut += 1
                    continue
                etype = u16(buf, off + 14)[0]
                p = off + 16
            elif link == 276:  # Linux cooked v2
                if caplen < 20:
                    stats.cut += 1
                    continue
                etype = u16(buf, off)[0]
                p = off + 20
            elif link in raw_links:
                if caplen < 1:
                    stats.cut += 1
                    continue
                v = buf[off] >> 4
                etype = 0x0800 if v == 4 else 0x86DD if v == 6 else 0
                p = off
            elif link == 0 or link == 108:  # BSD loopback: address family, host or network order
                if caplen < 4:
                    stats.cut += 1
                    continue
                fam = int.from_bytes(buf[off : off + 4], "big" if link == 108 else "little")
                if link == 0 and fam > 0xFFFF:
                    fam = int.from_bytes(buf[off : off + 4], "big")
                etype = 0x0800 if fam == 2 else 0x86DD if fam in _AF_INET6 else 0
                p = off + 4
            elif link == 9 or link == 50:  # PPP, PPP in HDLC-like framing
                inner = _ppp(buf, off, end)
                if inner is None:
                    stats.not_tcp += 1
                    continue
                etype, p = inner
            elif link == 242:  # IP over InfiniBand as Linux captures it: two 20-byte addresses, type, reserved
                if caplen < 44:
                    stats.cut += 1
                    continue
                etype = u16(buf, off + 40)[0]
                p = off + 44
            else:
                stats.unknown_link += 1
                continue
            found = _find_tcp(buf, p, end, off + wire, etype, stats)
            if found is None:
                continue
            v6, p, t, seglen = found
            seq, ack, hoff, flags, win = tcp(buf, t)
            hl = (hoff >> 4) << 2
            if hl < 20 or hl > seglen:
                stats.bogus += 1
                continue
            if hoff & 1:
                flags |= 0x100
            n_tcp += 1
            if v6:
                key = buf[p + 8 : p + 40] + buf[t : t + 4]
            else:
                key = buf[p + 12 : t + 4] if t == p + 20 else buf[p + 12 : p + 20] + buf[t : t + 4]
            yield (
                ts,
                key,
                seq,
                ack,
                flags,
                win,
                seglen - hl,
                buf[t + 20 : min(t + hl, end)] if hl > 20 and options else b"",
                frames,
                foff,
                caplen,
                link,
            )
    except struct.error as e:  # a length check missed a case: still a malformed capture, never a traceback
        raise PcapError(f"corrupt capture: {e}") from None
    finally:
        stats.frames += frames - first_frame + 1
        stats.tcp += n_tcp
        close()

