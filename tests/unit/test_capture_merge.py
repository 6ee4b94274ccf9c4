"""Merging a Swarm's per-node recordings: one time-ordered capture, each frame once, retransmissions kept."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from scapy.utils import PcapWriter
from tcp_craft import T0

from netbed.capture import merge
from netbed.tcp import analyze, read_frames

A, B = ("10.7.0.10", "02:42:0a:07:00:0a"), ("10.7.0.20", "02:42:0a:07:00:14")


def seg(src, dst, ip_id, flags, seq, ack, data=b""):
    pkt = Ether(src=src[1], dst=dst[1]) / IP(src=src[0], dst=dst[0], id=ip_id, flags="DF") / \
        TCP(sport=40000 if src == B else 9877, dport=9877 if src == B else 40000, flags=flags, seq=seq, ack=ack)
    return pkt / Raw(data) if data else pkt


def write(path, stamped):
    with PcapWriter(str(path), linktype=1, nano=True, sync=True) as w:
        for ts, pkt in sorted(stamped, key=lambda x: x[0]):
            pkt.time = ts
            w.write(pkt)


def test_a_connection_between_two_nodes_appears_once_with_its_retransmission(tmp_path):
    # B (the client, on node2) connects to A (the server, on node1); its line is lost once and resent
    conv = [(0.000, B, A, 1, "S", 100, 0, b""), (0.001, A, B, 7, "SA", 500, 101, b""),
            (0.002, B, A, 2, "A", 101, 501, b""), (0.010, B, A, 3, "PA", 101, 501, b"hello\n"),
            (0.210, B, A, 4, "PA", 101, 501, b"hello\n"),   # the retransmission: a new IP ID
            (0.211, A, B, 8, "A", 501, 107, b"")]
    sent_on = {B: "node2", A: "node1"}
    per_node = {"node1": [], "node2": []}
    for t, src, dst, ip_id, flags, seq, ack, data in conv:
        pkt = seg(src, dst, ip_id, flags, seq, ack, data)
        per_node[sent_on[src]].append((T0 + t, pkt))                      # leaving the sender's node
        per_node[sent_on[dst]].append((T0 + t + 0.00005, pkt.copy()))      # reaching the receiver's node
    arp = Ether(src=B[1], dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=B[0], pdst=A[0])
    for i, node in enumerate(("node2", "node1", "node3")):                   # a broadcast reaches every node
        per_node.setdefault(node, []).append((T0 - 0.01 + i * 0.0001, arp.copy()))
    paths = {}
    for node, stamped in per_node.items():
        paths[node] = tmp_path / f"{node}.pcap"
        write(paths[node], stamped)

    stats = merge(paths, tmp_path / "merged.pcap")

    assert (stats.frames, stats.duplicates) == (7, 8)
    stamps = [f.ts_ns for f in read_frames(tmp_path / "merged.pcap")]
    assert stamps == sorted(stamps)
    conns = analyze(str(tmp_path / "merged.pcap"))
    assert len(conns) == 1 and conns[0].retransmissions == 1 and conns[0].flags[:3] == ["S", "SA", "A"]


def test_a_frame_seen_again_by_the_same_node_is_a_new_one_and_a_missing_recording_is_skipped(tmp_path):
    pkt = seg(B, A, 9, "A", 1, 1)
    write(tmp_path / "node1.pcap", [(T0, pkt), (T0 + 0.001, pkt.copy())])
    stats = merge({"node1": tmp_path / "node1.pcap", "node2": tmp_path / "none.pcap"}, tmp_path / "m.pcap")
    assert (stats.frames, stats.duplicates) == (2, 0)


def test_nothing_recorded_is_an_empty_capture(tmp_path):
    assert merge({}, tmp_path / "m.pcap").frames == 0
    assert list(read_frames(tmp_path / "m.pcap")) == []
