"""netbed.tcp.pcap: every capture format and link type the bed can meet, and bad input."""

from __future__ import annotations

import struct
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from tcp_craft import T0, TUNNELS, Conversation, frame, write_pcap, write_pcapng  # noqa: E402

from netbed.tcp import Mark, PcapError, ReadStats, analyze_file, read_frames, read_tcp  # noqa: E402


def _echo(ipv6: bool = False) -> Conversation:
    c = Conversation(
        ipv6=ipv6,
        client=("fd00::3", 40000) if ipv6 else ("10.0.0.3", 40000),
        server=("fd00::2", 9877) if ipv6 else ("10.0.0.2", 9877),
    )
    c.handshake()
    c.echo(b"hello\n")
    c.close("client")
    return c


EXPECTED_FLAGS = ["S", "SA", "A", "PA", "A", "PA", "A", "FA", "A", "FA", "A"]


@pytest.mark.parametrize("link", ["ether", "sll", "sll2", "raw"])
@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_every_byte_order_resolution_and_link(tmp_path, link, endian, nano):
    c = _echo()
    path = write_pcap(tmp_path / "x.pcap", c.packets, link=link, endian=endian, nano=nano)
    [conn] = analyze_file(path)
    assert conn.flags == EXPECTED_FLAGS
    assert str(conn.client) == "10.0.0.3:40000" and str(conn.server) == "10.0.0.2:9877"
    assert conn.first_ts == pytest.approx(float(c.packets[0].time), abs=1e-6)
    assert conn.segments[3].payload_len == 6


@pytest.mark.parametrize("link", ["ppp", "ppp-hdlc", "ipoib"])
@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
def test_point_to_point_and_infiniband_links(tmp_path, link, ipv6):
    c = _echo(ipv6=ipv6)
    [conn] = analyze_file(write_pcap(tmp_path / "x.pcap", c.packets, link=link))
    assert conn.flags == EXPECTED_FLAGS
    assert conn.segments[3].payload() == b"hello\n"  # scapy dissects the same link type down to it


@pytest.mark.parametrize("link", ["ether", "sll", "sll2", "raw"])
@pytest.mark.parametrize("endian,tsresol", [("<", 6), (">", 6), ("<", 9), (">", 9), ("<", 3)])
def test_pcapng_every_byte_order_resolution_and_link(tmp_path, link, endian, tsresol):
    c = _echo()
    path = write_pcapng(tmp_path / "x.pcapng", c.packets, link=link, endian=endian, tsresol=tsresol)
    [conn] = analyze_file(path)
    assert conn.flags == EXPECTED_FLAGS
    tol = 10.0**-tsresol
    for seg, pkt in zip(conn.segments, c.packets):
        assert seg.ts == pytest.approx(float(pkt.time), abs=tol + 1e-7)


def test_nanosecond_timestamps_are_exact(tmp_path):
    from scapy.utils import EDecimal

    c = Conversation(t0=T0)
    c.send("client", "S").time = EDecimal("1700000000.000000123")
    path = write_pcap(tmp_path / "ns.pcap", c.packets, nano=True)
    [t] = list(read_tcp(path))
    assert t[0] == int(T0) * 1_000_000_000 + 123


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_ipv6(tmp_path, fmt):
    c = _echo(ipv6=True)
    write = write_pcap if fmt == "pcap" else write_pcapng
    [conn] = analyze_file(write(tmp_path / "v6", c.packets))
    assert conn.flags == EXPECTED_FLAGS
    assert str(conn.client) == "[fd00::3]:40000"
    assert conn.states["client"][-1] == "TIME-WAIT"


def test_multiple_pcapng_sections_and_interfaces(tmp_path):
    c = _echo()
    a = write_pcapng(tmp_path / "a.pcapng", c.packets[:5], endian="<", tsresol=6)
    b = write_pcapng(tmp_path / "b.pcapng", c.packets[5:], endian=">", tsresol=9)
    joined = tmp_path / "ab.pcapng"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    [conn] = analyze_file(joined)
    assert conn.flags == EXPECTED_FLAGS


def test_frames_view_and_stats(tmp_path):
    c = _echo()
    path = write_pcap(tmp_path / "x.pcap", c.packets)
    frames = list(read_frames(path))
    assert [f.number for f in frames] == list(range(1, 12))
    assert frames[0].link == 1 and frames[0].data[:6] == bytes.fromhex("02420a000002")
    stats = ReadStats()
    assert len(list(read_tcp(path, stats=stats))) == 11
    assert stats.frames == 11 and stats.tcp == 11 and stats.not_tcp == 0


def test_capture_without_tcp_gives_no_connections(tmp_path):
    from scapy.layers.inet import ICMP, IP, UDP
    from scapy.layers.l2 import ARP, Ether
    from scapy.utils import wrpcap

    pkts = [
        Ether() / IP(src="10.0.0.3", dst="10.0.0.2") / UDP(sport=5, dport=53),
        Ether() / ARP(),
        Ether() / IP(src="10.0.0.3", dst="10.0.0.2") / ICMP(),
    ]
    wrpcap(str(tmp_path / "u.pcap"), pkts)
    stats = ReadStats()
    assert analyze_file(tmp_path / "u.pcap", stats=stats) == []
    assert stats.frames == 3 and stats.not_tcp == 3


def test_ip_fragments_are_counted_not_decoded(tmp_path):
    from scapy.layers.inet import IP, TCP, fragment
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    from scapy.utils import wrpcap

    big = IP(src="10.0.0.3", dst="10.0.0.2") / TCP(sport=1, dport=2, flags="PA") / Raw(b"x" * 3000)
    wrpcap(str(tmp_path / "f.pcap"), [Ether() / f for f in fragment(big, 1000)])
    stats = ReadStats()
    assert analyze_file(tmp_path / "f.pcap", stats=stats) == []
    assert stats.fragments == stats.frames == 4


def test_an_ip_length_the_frame_contradicts_gives_way_to_the_frame(tmp_path):
    from tcp_craft import ip_lengths_that_lie

    [conn] = analyze_file(write_pcap(tmp_path / "x.pcap", ip_lengths_that_lie()))
    assert [s.payload_len for s in conn.segments[3:8]] == [6, 0, 6, 0, 0]
    assert [s.marks for s in conn.segments[6:8]] == [Mark.NONE, Mark.DUPLICATE_ACK]


def test_a_header_cut_before_the_protocol_is_known_is_not_a_cut_tcp_header(tmp_path):
    """-s 20 on Ethernet keeps 6 bytes of IP: nothing says those frames were TCP, so no snap length error."""
    c = _echo()
    data = bytearray(write_pcap(tmp_path / "x.pcap", c.packets).read_bytes()[:24])
    for pkt in c.packets:
        raw = bytes(frame(pkt, "ether"))
        data += struct.pack("<IIII", 1, 0, 20, len(raw)) + raw[:20]
    stats = ReadStats()
    assert analyze_file(bytes(data), stats=stats) == []
    assert stats.cut == 11 and stats.tcp_cut == 0


@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("how", TUNNELS)
def test_tcp_inside_shims_and_tunnels_is_the_inner_connection(tmp_path, how, ipv6):
    c = _echo(ipv6=ipv6)
    [conn] = analyze_file(write_pcap(tmp_path / f"{how}.pcap", c.packets, link=how))
    assert conn.flags == EXPECTED_FLAGS
    assert str(conn.client) == ("[fd00::3]:40000" if ipv6 else "10.0.0.3:40000")
    assert conn.segments[3].payload_len == 6
    assert conn.segments[3].payload() == b"hello\n"  # scapy dissects the same frame down to it


@pytest.mark.parametrize("how", TUNNELS)
def test_a_tunnel_cut_anywhere_is_counted_never_misread(tmp_path, how):
    """Every snap length of a tunnelled SYN: the frame is counted as cut until the inner TCP header is whole."""
    c = Conversation()
    c.send("client", "S")
    raw = bytes(frame(c.packets[0], how))
    for n in range(len(raw) + 1):
        data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
        data += struct.pack("<IIII", 1, 0, n, len(raw)) + raw[:n]
        stats = ReadStats()
        tcp = list(read_tcp(data, stats=stats))
        assert stats.frames == 1
        if n < len(raw):  # the SYN has no options: its last 20 bytes are the TCP header
            assert tcp == [] and stats.cut + stats.not_tcp == 1
        else:
            [(_ts, _key, seq, *_rest)] = tcp
            assert seq == 1000


def test_udp_on_a_tunnel_port_that_is_not_a_tunnel_is_not_tcp(tmp_path):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import GRE, Ether
    from scapy.packet import Raw
    from scapy.utils import wrpcap

    pkts = [
        Ether() / IP() / UDP(sport=40000, dport=4789) / Raw(b"\0" * 4),  # too short for VXLAN + Ethernet
        Ether() / IP() / UDP(sport=1701, dport=1701) / Raw(b"\xc8\x02" + b"\0" * 20),  # an L2TP control message
        Ether() / IP() / GRE(routing_present=1) / Raw(b"\0" * 40),  # source routed GRE: not followed
    ]
    wrpcap(str(tmp_path / "u.pcap"), pkts)
    stats = ReadStats()
    assert analyze_file(tmp_path / "u.pcap", stats=stats) == []
    assert stats.frames == stats.not_tcp == 3


# --- bad input ---------------------------------------------------------------------------------


def _bytes_of(tmp_path: Path, fmt: str = "pcap") -> bytes:
    c = _echo()
    write = write_pcap if fmt == "pcap" else write_pcapng
    return write(tmp_path / f"good.{fmt}", c.packets).read_bytes()


@pytest.mark.parametrize(
    "data,words",
    [
        (b"", "empty file"),
        (b"\xd4\xc3", "too short"),
        (b"hello world, not a capture at all", "not a pcap or pcapng"),
        (b"\x1f\x8b\x08\x00" + b"\0" * 40, "gzip"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated capture: pcap file header"),
        (b"\xd4\xc3\xb2\xa1" + struct.pack("<HHiIII", 1, 0, 0, 0, 65535, 1), "version 1"),
        (b"\n\r\r\n" + struct.pack("<I", 28) + b"\x00\x00\x00\x00" + b"\0" * 16, "byte-order magic"),
    ],
)
def test_bad_files_raise_a_one_line_pcap_error(tmp_path, data, words):
    path = tmp_path / "bad"
    path.write_bytes(data)
    with pytest.raises(PcapError) as err:
        analyze_file(path)
    assert words in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_truncated_last_record(tmp_path, fmt):
    data = _bytes_of(tmp_path, fmt)
    path = tmp_path / f"cut.{fmt}"
    path.write_bytes(data[:-7])
    with pytest.raises(PcapError, match="truncated capture"):
        analyze_file(path)
    stats = ReadStats()
    [conn] = analyze_file(path, allow_truncated=True, stats=stats)
    assert conn.packets == 10 and stats.truncated_tail


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(PcapError, match="no such capture file"):
        analyze_file(tmp_path / "nope.pcap")
    with pytest.raises(PcapError, match="is a directory"):
        analyze_file(tmp_path)


def test_huge_record_length_is_corruption_not_a_hang(tmp_path):
    data = bytearray(_bytes_of(tmp_path))
    struct.pack_into("<I", data, 24 + 8, 0xFFFFFFF0)  # the first record's captured length
    path = tmp_path / "huge.pcap"
    path.write_bytes(bytes(data))
    with pytest.raises(PcapError, match="claims"):
        analyze_file(path)


def test_snap_length_that_cut_every_header(tmp_path):
    c = _echo()
    path = write_pcap(tmp_path / "x.pcap", c.packets)
    data = bytearray(path.read_bytes()[:24])
    for pkt in c.packets:
        raw = bytes(frame(pkt, "ether"))
        ts = float(pkt.time)
        cut = raw[:40]  # Ethernet + IPv4 + 6 bytes of TCP
        data += struct.pack("<IIII", int(ts), int(ts % 1 * 1e6), len(cut), len(raw)) + cut
    path.write_bytes(bytes(data))
    with pytest.raises(PcapError, match="snap length cut"):
        analyze_file(path)


def test_snap_length_that_cut_payload_only_is_fine(tmp_path):
    data = _bytes_of(tmp_path)
    # every record cut to 66 bytes: headers kept, options and payload cut
    out = bytearray(data[:24])
    pos = 24
    while pos < len(data):
        sec, usec, caplen, wire = struct.unpack_from("<IIII", data, pos)
        body = data[pos + 16 : pos + 16 + caplen]
        keep = min(caplen, 66)
        out += struct.pack("<IIII", sec, usec, keep, wire) + body[:keep]
        pos += 16 + caplen
    (tmp_path / "s.pcap").write_bytes(bytes(out))
    [conn] = analyze_file(tmp_path / "s.pcap")
    assert conn.flags == EXPECTED_FLAGS
    assert conn.segments[3].payload_len == 6  # from the IP header, not the captured bytes


# --- fuzzing -----------------------------------------------------------------------------------


def _good_inputs() -> list[bytes]:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return [_bytes_of(Path(d), "pcap"), _bytes_of(Path(d), "pcapng")]


_GOOD = _good_inputs()


@st.composite
def _mutated(draw):
    data = bytearray(draw(st.sampled_from(_GOOD)))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[i] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        elif kind == "cut":
            del data[i:]
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[i : i + draw(st.integers(1, 8))]
    return bytes(data)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(_mutated())
def test_fuzz_only_pcap_error_or_a_result(data):
    start = time.monotonic()
    try:
        conns = analyze_file(data)
    except PcapError as e:
        assert str(e) and "\n" not in str(e)
    else:
        for c in conns:
            c.flags, c.states, c.close_kind, c.segments  # noqa: B018
            for s in c.segments:
                s.describe()
    assert time.monotonic() - start < 2.0


def test_vlan_tagged_frames(tmp_path):
    from scapy.layers.l2 import Dot1Q, Ether
    from scapy.utils import wrpcap

    c = _echo()
    frames = []
    for p in c.packets:
        f = Ether(src="02:42:0a:00:00:03", dst="02:42:0a:00:00:02") / Dot1Q(vlan=7) / p
        f.time = p.time
        frames.append(f)
    wrpcap(str(tmp_path / "vlan.pcap"), frames)
    [conn] = analyze_file(tmp_path / "vlan.pcap")
    assert conn.flags == EXPECTED_FLAGS
