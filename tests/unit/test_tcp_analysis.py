"""netbed.tcp analysis: connections, roles, flags, marks, states and close kinds on crafted captures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tcp_craft  # noqa: E402
from tcp_craft import AWKWARD, NAMES, Conversation, write_pcap  # noqa: E402

from netbed.tcp import (  # noqa: E402
    Analyzer,
    CloseKind,
    Mark,
    analyze_file,
    flag_letters,
    parse_flags,
    read_tcp,
    tcpdump_flags,
    to_json,
    to_scapy,
)


def conns_of(tmp_path: Path, name: str, names=None, **kw):
    return analyze_file(write_pcap(tmp_path / f"{name}.pcap", AWKWARD[name]()), names, **kw)


def one(tmp_path: Path, name: str, names=None, **kw):
    [conn] = conns_of(tmp_path, name, names, **kw)
    return conn


# --- flags ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags,letters,tcpdump",
    [
        (0x02, "S", "S"),
        (0x12, "SA", "S."),
        (0x10, "A", "."),
        (0x18, "PA", "P."),
        (0x11, "FA", "F."),
        (0x19, "FPA", "FP."),
        (0x04, "R", "R"),
        (0x14, "RA", "R."),
        (0x00, "", "none"),
        (0xC2, "SEC", "SEW"),
    ],
)
def test_flag_notations(flags, letters, tcpdump):
    assert flag_letters(flags) == letters
    assert tcpdump_flags(flags) == tcpdump
    if flags:
        assert parse_flags(letters) == parse_flags(tcpdump) == flags


def test_parse_flags_rejects_unknown_letters():
    with pytest.raises(ValueError, match="unknown TCP flag 'X'"):
        parse_flags("PX")


# --- connections and roles ----------------------------------------------------------------------------


def test_normal_echo_connection(tmp_path):
    conn = one(tmp_path, "four_segment_close", NAMES)
    assert (conn.client.name, conn.server.name) == ("cli", "srv")
    assert (conn.client.ip, conn.client.port, conn.server.port) == ("10.0.0.3", 40000, 9877)
    assert not conn.roles_guessed and conn.syn_seen
    assert conn.flags == ["S", "SA", "A", "PA", "A", "PA", "A", "FA", "A", "FA", "A"]
    assert conn.tcpdump_flags[:4] == ["S", "S.", ".", "P."]
    assert conn.senders[:3] == ["client", "server", "client"]
    assert conn.close_kind is CloseKind.CLIENT_FIRST
    assert conn.states == {
        "client": ["CLOSED", "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"],
        "server": ["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"],
    }
    assert conn.retransmissions == conn.keepalive_probes == 0 and conn.resets == []
    assert conn.initial_rtt == pytest.approx(0.0002, abs=1e-6)
    seg = conn.segments[3]
    assert (seg.seq, seg.ack, seg.payload_len, seg.letters, seg.sender, seg.receiver) == (
        1,
        1,
        6,
        "PA",
        "client",
        "server",
    )
    assert conn.segments[1].options.mss == 1460 and conn.segments[1].options.wscale == 7
    assert conn.segments[1].options.sack_permitted


def test_server_first_close_and_ack_riding_on_fin(tmp_path):
    packets = tcp_craft.four_segment_close("server")
    [conn] = analyze_file(write_pcap(tmp_path / "s.pcap", packets))
    assert conn.close_kind is CloseKind.SERVER_FIRST
    assert conn.states["server"][-3:] == ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    assert conn.states["client"][-3:] == ["CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    conn = one(tmp_path, "fin_ack_combined")
    assert conn.flags[-3:] == ["FA", "FA", "A"]
    assert conn.states["client"][-2:] == ["FIN-WAIT-1", "TIME-WAIT"]  # FIN-WAIT-2 skipped: the ACK rode on the FIN
    assert conn.states["server"][-3:] == ["CLOSE-WAIT", "LAST-ACK", "CLOSED"]


def test_fin_with_data(tmp_path):
    conn = one(tmp_path, "fin_with_data")
    fin = conn.segments[3]
    assert (fin.letters, fin.payload_len, fin.seq, fin.seq_end) == ("FPA", 4, 1, 6)
    assert conn.close_kind is CloseKind.CLIENT_FIRST
    assert conn.states["client"][-1] == "TIME-WAIT" and conn.states["server"][-1] == "CLOSED"


def test_simultaneous_open_and_close(tmp_path):
    conn = one(tmp_path, "simultaneous_open")
    assert conn.states["client"][:4] == ["CLOSED", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED"]
    conn = one(tmp_path, "simultaneous_close")
    assert conn.close_kind is CloseKind.SIMULTANEOUS
    for side in ("client", "server"):
        assert conn.states[side][-3:] == ["FIN-WAIT-1", "CLOSING", "TIME-WAIT"]


def test_resets(tmp_path):
    conn = one(tmp_path, "rst_with_ack")
    assert conn.close_kind is CloseKind.RESET_BY_SERVER and conn.first_reset == "server"
    assert conn.flags[-1] == "R" and conn.states["client"][-1] == "CLOSED"
    conn = one(tmp_path, "rst_without_ack")
    assert conn.resets == ["client", "client"] and conn.flags[-3:] == ["RA", "PA", "R"]
    assert conn.close_kind is CloseKind.RESET_BY_CLIENT
    conn = one(tmp_path, "refused")
    assert conn.close_kind is CloseKind.REFUSED
    assert conn.states == {"client": ["CLOSED", "SYN-SENT", "CLOSED"], "server": ["CLOSED"]}


def test_reset_after_both_fins_were_acknowledged_does_not_decide_the_close(tmp_path):
    """Captured on a loaded host: the server's ACK of the client's FIN, overtaken by its own FIN,
    reaches the client in TIME-WAIT, whose ACK the closed server answers with an RST."""
    c = Conversation()
    c.handshake()
    c.send("client", "FA")
    fin_seq = c.snd["server"]
    c.send("server", "FA")
    c.send("client", "A")
    c.send("server", "A", seq=fin_seq, ack=c.rcv["server"])  # the late ACK, sent before the FIN
    c.send("client", "A")
    c.send("server", "R", seq=fin_seq + 1, ack=0)
    [conn] = analyze_file(write_pcap(tmp_path / "late.pcap", c.packets))
    assert conn.close_kind is CloseKind.CLIENT_FIRST
    assert conn.resets == ["server"] and conn.first_reset == "server"
    assert conn.states["client"][-2:] == ["TIME-WAIT", "CLOSED"]

    c = Conversation()  # the same RST before the server's FIN was acknowledged: it is what ended it
    c.handshake()
    c.send("client", "FA")
    fin_seq = c.snd["server"]
    c.send("server", "FA", lost=True)
    c.send("server", "R", seq=fin_seq + 1, ack=0)
    [conn] = analyze_file(write_pcap(tmp_path / "rst.pcap", c.packets))
    assert conn.close_kind is CloseKind.RESET_BY_SERVER


def test_half_closed_and_open(tmp_path):
    c = Conversation()
    c.handshake()
    c.echo()
    c.send("client", "FA")
    c.send("server", "A")
    [conn] = analyze_file(write_pcap(tmp_path / "h.pcap", c.packets))
    assert conn.close_kind is CloseKind.HALF_CLOSED_BY_CLIENT
    assert conn.states["client"][-1] == "FIN-WAIT-2" and conn.states["server"][-1] == "CLOSE-WAIT"
    c = Conversation()
    c.handshake()
    [conn] = analyze_file(write_pcap(tmp_path / "o.pcap", c.packets))
    assert conn.close_kind is CloseKind.OPEN


def test_retransmissions_and_backoff_gaps(tmp_path):
    conn = one(tmp_path, "crash_then_reboot")
    assert conn.retransmissions == 5
    assert conn.retransmission_gaps() == pytest.approx([0.2, 0.2, 0.4, 0.8, 1.6], abs=1e-5)
    assert conn.retransmission_gaps("client") == conn.retransmission_gaps()
    assert conn.retransmission_gaps("server") == []
    assert conn.close_kind is CloseKind.RESET_BY_SERVER
    assert [s.frame for s in conn.segments if s.is_retransmission] == [9, 10, 11, 12, 13]


def test_syn_retransmitted(tmp_path):
    conn = one(tmp_path, "syn_retransmitted")
    assert conn.flags[:4] == ["S", "S", "S", "SA"]
    assert conn.retransmissions == 2
    assert conn.retransmission_gaps() == pytest.approx([1.0, 2.0], abs=1e-6)
    assert conn.states["client"][:3] == ["CLOSED", "SYN-SENT", "ESTABLISHED"]


def test_fast_spurious_out_of_order_and_lost(tmp_path):
    conn = one(tmp_path, "out_of_order_duplicate_lost")
    marks = [s.marks for s in conn.segments]
    assert Mark.OUT_OF_ORDER in marks[5]
    assert Mark.SPURIOUS_RETRANSMISSION in marks[7]
    assert Mark.LOST_SEGMENT in marks[4]  # frame 5 overtook frame 6
    assert [m & Mark.DUPLICATE_ACK for m in marks[10:13]] == [Mark.DUPLICATE_ACK] * 3
    assert Mark.FAST_RETRANSMISSION in marks[13]
    assert conn.retransmissions == 2  # spurious + fast, as tcp.analysis.retransmission counts
    assert conn.count(Mark.FAST_RETRANSMISSION) == 1


def test_sack_blocks_are_read(tmp_path):
    conn = one(tmp_path, "sack")
    dup = [s for s in conn.segments if s.options.sack]
    assert len(dup) == 3
    assert dup[-1].describe().endswith("<sack 1001:4001> len 0 [dup ACK]")
    assert conn.count(Mark.DUPLICATE_ACK) == 3 and conn.retransmissions == 1
    assert conn.count(Mark.FAST_RETRANSMISSION) == 1


def test_sequence_numbers_across_the_wrap(tmp_path):
    conn = one(tmp_path, "wraparound")
    assert conn.segments[0].raw_seq == 2**32 - 3
    data = [s for s in conn.segments if s.sender == "client" and s.payload_len]
    assert [s.seq for s in data] == [1, 17, 17]
    assert data[-1].is_retransmission and conn.retransmissions == 1
    assert conn.close_kind is CloseKind.CLIENT_FIRST and conn.states["client"][-1] == "TIME-WAIT"


def test_connection_without_its_syn(tmp_path):
    conn = one(tmp_path, "no_syn")
    assert conn.roles_guessed and "lower port" in conn.role_reason
    assert (conn.client.port, conn.server.port) == (45000, 7)
    assert conn.senders[0] == "server"
    assert conn.segments[0].seq == 1 and conn.segments[1].ack == 6
    assert conn.states["client"][0] == "ESTABLISHED"
    assert conn.close_kind is CloseKind.CLIENT_FIRST


def test_synack_first_gives_roles_without_guessing(tmp_path):
    packets = AWKWARD["four_segment_close"]()[1:]
    [conn] = analyze_file(write_pcap(tmp_path / "sa.pcap", packets))
    assert not conn.roles_guessed and conn.client.port == 40000
    assert conn.states["client"][:2] == ["SYN-SENT", "ESTABLISHED"]
    assert conn.states["server"][:3] == ["LISTEN", "SYN-RECEIVED", "ESTABLISHED"]


def test_keepalive_probes_and_replies(tmp_path):
    conn = one(tmp_path, "keepalives")
    assert conn.keepalive_probes == 5
    assert conn.count(Mark.KEEP_ALIVE_ACK) == 2
    probes = [s for s in conn.segments if s.is_keepalive]
    assert [s.payload_len for s in probes] == [0, 1, 0, 0, 0]
    assert all(s.seq == 6 for s in probes)  # snd_nxt - 1
    assert conn.close_kind is CloseKind.RESET_BY_CLIENT


def test_two_writes_to_a_crashed_host_are_retransmissions_not_keepalives(tmp_path):
    """UNP 5.13's client sends its line's first byte alone; the server host has crashed. The byte is
    never acknowledged, so its copies are retransmissions with the backoff's doubling gaps, though
    each has length 1 and seq = next - 1 (Wireshark calls them keep-alives)."""
    conn = one(tmp_path, "two_writes_then_crash")
    first, *copies = [s for s in conn.segments if s.payload_len == 1]
    assert first.marks == Mark.NONE  # the original: new data
    assert len(copies) == 6 and all(s.seq == first.seq == 7 for s in copies)
    assert [s.marks for s in copies] == [Mark.RETRANSMISSION] * 6
    assert conn.retransmissions == 6 and conn.keepalive_probes == 0
    assert conn.retransmission_gaps("client") == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 6.4], abs=1e-5)
    assert conn.count(Mark.KEEP_ALIVE | Mark.KEEP_ALIVE_ACK) == 0

    conn = one(tmp_path, "two_writes_then_reboot")  # the rebooted host answers a retransmission with an RST
    assert conn.retransmissions == 4 and conn.keepalive_probes == 0
    assert conn.close_kind is CloseKind.RESET_BY_SERVER and conn.segments[-2].is_retransmission


def test_two_writes_to_a_live_server_are_plain_data(tmp_path):
    c = Conversation()
    c.handshake()
    c.echo()
    c.send("client", "PA", b"a", dt=1.0)
    c.send("server", "A", dt=0.04)  # a delayed ACK
    c.send("client", "PA", b"nother line\n", dt=1.0)
    c.send("server", "A", dt=0.0001)
    c.send("server", "PA", b"another line\n", dt=0.0001)
    c.send("client", "A", dt=0.0001)
    [conn] = analyze_file(write_pcap(tmp_path / "live.pcap", c.packets))
    assert all(s.marks == Mark.NONE for s in conn.segments)


def test_a_real_keepalive_re_sends_an_acknowledged_byte(tmp_path):
    """seq = snd_una - 1 after the peer acknowledged everything: a keep-alive, empty (as Linux sends
    it) or with one garbage byte (as some stacks do), and the peer's answer a keep-alive ACK; so is
    a 1-byte copy of data the peer had acknowledged."""
    c = Conversation()
    c.handshake()
    c.echo()
    for garbage in (b"", b"\0"):
        c.send("client", "A", garbage, seq=c.snd["client"] - 1, dt=7200.0)
        c.send("server", "A", dt=0.0001)
    c.send("client", "PA", b"x", dt=1.0)
    c.send("server", "A", dt=0.0001)
    c.send("client", "PA", b"x", seq=c.snd["client"] - 1, dt=0.5)  # its byte already acknowledged
    c.send("server", "A", dt=0.0001)
    [conn] = analyze_file(write_pcap(tmp_path / "ka.pcap", c.packets))
    segs = conn.segments
    assert [(s.payload_len, s.marks) for s in segs[7:13]] == [
        (0, Mark.KEEP_ALIVE),
        (0, Mark.KEEP_ALIVE_ACK),
        (1, Mark.KEEP_ALIVE),
        (0, Mark.KEEP_ALIVE_ACK),
        (1, Mark.NONE),
        (0, Mark.NONE),
    ]
    assert segs[13].marks == Mark.KEEP_ALIVE and segs[14].marks == Mark.KEEP_ALIVE_ACK
    assert conn.keepalive_probes == 3 and conn.retransmissions == 0


def test_where_netbed_and_wireshark_differ_on_keepalives(tmp_path):
    """The one deliberate difference from Wireshark (whose keep-alive is any segment of length <= 1 with
    seq = next - 1): netbed also wants seq acknowledged by the peer. Never acknowledged, a 1-byte segment
    is a retransmission and an empty one no probe; the rule, not the length, decides. The late ACK of the
    sigchld-multiple flake (the server's ACK of the client's FIN, captured after the server's own FIN)
    stays a keep-alive where the client had acknowledged that FIN, as a probe from FIN-WAIT-2 would look,
    and is nothing where it had not."""
    c = Conversation()
    c.handshake()
    c.echo()
    c.send("client", "PA", b"a", dt=1.0, lost=True)
    c.send("client", "PA", b"a", seq=c.snd["client"] - 1, dt=0.2)  # Wireshark: keep-alive
    c.send("client", "A", seq=c.snd["client"] - 1, dt=0.2)  # Wireshark: keep-alive
    [conn] = analyze_file(write_pcap(tmp_path / "differ.pcap", c.packets))
    assert [s.marks for s in conn.segments[-3:]] == [Mark.NONE, Mark.RETRANSMISSION, Mark.NONE]
    assert conn.keepalive_probes == 0 and conn.retransmissions == 1

    flake, reordered = conns_of(tmp_path, "late_ack_after_fin")
    late = [s for s in flake.segments if s.sender == "server" and s.flags == 0x10][-1]
    assert late.seq == 7 and late.marks == Mark.KEEP_ALIVE and flake.keepalive_probes == 1
    late = [s for s in reordered.segments if s.sender == "server" and s.flags == 0x10][-1]
    assert late.seq == 7 and late.marks == Mark.NONE and reordered.keepalive_probes == 0
    assert flake.close_kind is reordered.close_kind is CloseKind.CLIENT_FIRST


def test_zero_window_probes(tmp_path):
    conn = one(tmp_path, "zero_window")
    assert conn.zero_window_probes == 3
    assert conn.count(Mark.ZERO_WINDOW_PROBE_ACK) == 3
    assert conn.retransmissions == 0


def test_port_reuse_makes_two_connections(tmp_path):
    first, second = conns_of(tmp_path, "port_reuse")
    assert (first.id, second.id) == (0, 1)
    assert str(first.client) == str(second.client)
    assert first.close_kind is CloseKind.CLIENT_FIRST and second.close_kind is CloseKind.SERVER_FIRST
    assert first.packets == second.packets == 11


def test_names_map_and_sides(tmp_path):
    conn = one(tmp_path, "four_segment_close", {"10.0.0.3": "cli", "10.0.0.2": "srv"})
    assert conn.side("cli") == "client" and conn.side("srv") == "server"
    assert conn.side("10.0.0.2") == "server" and conn.side("10.0.0.3:40000") == "client"
    with pytest.raises(ValueError, match="neither end"):
        conn.side("db")
    same = one(tmp_path, "four_segment_close", {"10.0.0.3": "host", "10.0.0.2": "host"})
    assert (same.client.name, same.server.name) == ("client", "server")


def test_summaries_without_segments(tmp_path):
    kept = one(tmp_path, "crash_then_reboot")
    lean = one(tmp_path, "crash_then_reboot", keep_segments=False)
    assert not lean.has_segments
    for attr in ("flags", "senders", "retransmissions", "keepalive_probes", "resets", "close_kind", "states"):
        assert getattr(lean, attr) == getattr(kept, attr), attr
    with pytest.raises(ValueError, match="keep_segments=True"):
        lean.segments  # noqa: B018
    chosen = analyze_file(write_pcap(tmp_path / "p.pcap", AWKWARD["port_reuse"]()), keep_segments=lambda c: c.id == 1)
    assert [c.has_segments for c in chosen] == [False, True]


def test_streaming_add_equals_bulk_feed(tmp_path):
    path = write_pcap(tmp_path / "m.pcap", tcp_craft.messy(7))
    bulk = analyze_file(path)
    a = Analyzer(source=path)
    for t in read_tcp(path):
        a.add(t)
    assert to_json(a.connections) == to_json(bulk)


def test_to_json(tmp_path):
    data = to_json(conns_of(tmp_path, "crash_then_reboot", NAMES))
    json.dumps(data)
    [d] = data
    assert d["client"] == "10.0.0.3:40000" and d["server"] == "10.0.0.2:9877"
    assert d["client_name"] == "cli"
    assert d["flags"] == ["S", "SA", "A", "PA", "A", "PA", "A"] + ["PA"] * 6 + ["R"]
    assert d["retransmissions"] == 5 and d["keepalive_probes"] == 0
    assert d["resets"] == ["server"] and d["close"] == "reset-by-server"
    assert d["states"]["client"] == ["CLOSED", "SYN-SENT", "ESTABLISHED", "CLOSED"]


def test_segments_as_scapy_packets(tmp_path):
    from scapy.layers.inet import TCP

    conn = one(tmp_path, "four_segment_close")
    pkts = to_scapy(conn)
    assert len(pkts) == 11
    assert pkts[3][TCP].flags == "PA" and bytes(pkts[3][TCP].payload) == b"hello\n"
    assert conn.segments[3].payload() == b"hello\n"
    assert float(pkts[0].time) == pytest.approx(conn.segments[0].ts)


def test_scapy_packet_without_the_file(tmp_path):
    from scapy.layers.inet import TCP

    path = write_pcap(tmp_path / "x.pcap", AWKWARD["sack"]())
    [conn] = analyze_file(path.read_bytes())
    seg = next(s for s in conn.segments if s.options.sack)
    pkt = seg.to_scapy()
    assert pkt[TCP].ack == seg.raw_ack and ("SAck", seg.options.sack[0]) in pkt[TCP].options
