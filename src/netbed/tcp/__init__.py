"""netbed.tcp: pure TCP analysis, bytes in, facts out.

    conns = analyze_file("run.pcap", names={"10.0.0.2": "server"})
    conn = conns[0]
    conn.flags, conn.retransmissions, conn.close_kind, conn.states["client"]
    expect(conn).sequence("client > server  F.", "server > client  .", ...)
    print(render_ladder(conn))

Modules: pcap (the standard-library reader's entry points; formats, layers
and decode do its work), segments (flags, marks, Segment), states (the RFC
9293 replay), connection (analysis, Connection), scan (one pass over a
capture, connections handed on as they end, by the C speedups where built),
render (summaries as text and JSON, streamed),
expect (packetdrill-like expectations), ladder (text, SVG, follow),
scapy_view (segments as scapy packets). Nothing here knows about Docker.
"""

from .connection import LINGER_NS, Analyzer, CloseKind, Connection, to_json
from .expect import (
    Expect,
    ExpectationError,
    Gaps,
    Match,
    Step,
    expect,
    find,
    first_reset,
    keepalive_probes,
    parse_step,
    retransmission_gaps,
    retransmissions,
    time_between,
)
from .ladder import follow, render_ladder, render_ladder_svg, segment_label
from .pcap import Frame, LinkType, PcapError, ReadStats, read_frames, read_tcp
from .scan import analyze, analyze_file, connections, speedups_built
from .segments import (
    Endpoint,
    Mark,
    Options,
    Segment,
    flag_letters,
    parse_flags,
    tcpdump_flags,
)
from .states import State


def to_scapy(conn: Connection):  # noqa: ANN201 - scapy's PacketList, imported lazily
    """All segments of a connection as a scapy PacketList (dissected from the capture file)."""
    from .scapy_view import connection_packets

    return connection_packets(conn)


__all__ = [
    "Analyzer",
    "CloseKind",
    "Connection",
    "Endpoint",
    "Expect",
    "ExpectationError",
    "Frame",
    "Gaps",
    "LINGER_NS",
    "LinkType",
    "Mark",
    "Match",
    "Options",
    "PcapError",
    "ReadStats",
    "Segment",
    "State",
    "Step",
    "analyze",
    "analyze_file",
    "connections",
    "expect",
    "find",
    "first_reset",
    "flag_letters",
    "follow",
    "keepalive_probes",
    "parse_flags",
    "parse_step",
    "read_frames",
    "read_tcp",
    "render_ladder",
    "render_ladder_svg",
    "retransmission_gaps",
    "retransmissions",
    "segment_label",
    "speedups_built",
    "tcpdump_flags",
    "time_between",
    "to_json",
    "to_scapy",
]
