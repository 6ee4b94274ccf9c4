"""The C speedups and the pure-Python engine give the same connections, segment by segment.

The Python reader and Analyzer are the reference (they run inside the hosts);
_speedups.c mirrors them. Every capture the tests have goes through both:
crafted ones, tunnelled ones, pcapng with every link type, the captures made
elsewhere (tcpdump's own fuzzed ones among them), and the bench's shapes.

Without the speedups built these tests skip, except under CI=true, where
`pip install -e .` builds them and their absence is a failure.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent.parent / "bench"))
from tcp_craft import AWKWARD, LINKTYPES, TUNNELS, messy, write_pcap, write_pcapng  # noqa: E402
from tcp_shapes import SHAPES  # noqa: E402

from netbed.tcp import PcapError, ReadStats, connections, speedups_built  # noqa: E402
from netbed.tcp.connection import LINGER_NS  # noqa: E402

ELSEWHERE = Path(__file__).parent.parent / "data" / "elsewhere"


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    if not speedups_built():
        if os.environ.get("CI") == "true":
            pytest.fail("netbed.tcp._speedups is not built, and CI=true: pip install -e . builds it (needs gcc)")
        pytest.skip("netbed.tcp._speedups is not built")


def _everything(conn, times: bool = True) -> dict:  # noqa: ANN001 - a Connection
    """All that a Connection says, summaries and every segment, as plain data (times: with the timestamps)."""
    out = {
        "id": conn.id,
        "ends": (str(conn.client), str(conn.server), conn.role_reason, conn.roles_guessed),
        "packets": conn.packets,
        "times": (conn.first_ns, conn.last_ns, conn.initial_rtt),
        "flags": conn.flags,
        "senders": conn.senders,
        "counts": (conn.retransmissions, conn.keepalive_probes, conn.zero_window_probes),
        "gaps": conn.retransmission_gaps(),
        "resets": conn.resets,
        "close": conn.close_kind,
        "states": conn.states,
        "changes": conn.state_changes,
        "segments": [
            (s.frame, s.ts, s.sender, s.flags, s.seq, s.ack, s.window, s.payload_len, s.marks, s.options, s._where)
            for s in conn.segments
        ],
    }
    if not times:
        del out["times"]
        out["segments"] = [s[:1] + s[2:] for s in out["segments"]]
    return out


def _both(source, keep=True, times: bool = True) -> None:  # noqa: ANN001
    runs = []
    for speedups in (False, True):
        stats = ReadStats()
        os.environ["NETBED_PURE_PYTHON"] = "0" if speedups else "1"  # segments read again by the same engine
        try:
            conns = sorted(
                connections(source, keep_segments=keep, allow_truncated=True, stats=stats, speedups=speedups),
                key=lambda c: c.id,
            )
            runs.append(([_everything(c, times) for c in conns if c.has_segments], stats))
        except PcapError as exc:
            runs.append((str(exc), stats))
        finally:
            del os.environ["NETBED_PURE_PYTHON"]
    (py, py_stats), (c, c_stats) = runs
    assert c == py
    assert c_stats == py_stats


@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_crafted(tmp_path, name):
    _both(write_pcap(tmp_path / f"{name}.pcap", AWKWARD[name]()))


@pytest.mark.parametrize("link", sorted(LINKTYPES))
def test_pcapng_links(tmp_path, link):
    packets = AWKWARD["out_of_order_duplicate_lost"]() + messy(3, port=30000)
    _both(write_pcapng(tmp_path / "x.pcapng", packets, link=link, endian=">", tsresol=9))


@pytest.mark.parametrize("how", TUNNELS)
def test_tunnels(tmp_path, how):
    packets = AWKWARD["out_of_order_duplicate_lost"]() + messy(7, port=30000, t0=1_700_000_100.0)
    _both(write_pcap(tmp_path / f"{how}.pcap", packets, link=how))


def test_messy_traffic(tmp_path):
    packets = []
    for seed in range(60):
        packets += messy(seed, port=20000 + 10 * seed, t0=1_700_000_000.0 + 60 * seed)
    packets.sort(key=lambda p: float(p.time))
    path = write_pcap(tmp_path / "messy.pcap", packets)
    _both(path)
    _both(path.read_bytes())  # segments held in memory, with their options
    _both(path, keep=lambda c: c.id % 2 == 0)


SATURATED = {"smb_data_print-segv.pcapng"}
"""Fuzzed files with timestamps past the year 2262: C's 64-bit nanoseconds saturate them (all else agrees)."""


@pytest.mark.parametrize("name", sorted(p.name for p in ELSEWHERE.rglob("*.pcap*")))
def test_captures_made_elsewhere(name):
    [path] = [p for p in ELSEWHERE.rglob(name)]
    _both(path, times=name not in SATURATED)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_bench_shapes(tmp_path, shape):
    path = tmp_path / f"{shape}.pcap"
    SHAPES[shape](path, 20_000)
    _both(path)


def test_a_straggler_after_the_linger_begins_a_new_connection(tmp_path):
    """Both engines hand a closed connection on after LINGER_NS of quiet: a later segment is another connection."""
    packets = AWKWARD["four_segment_close"]()
    late = packets[-1].copy()
    late.time = float(packets[-1].time) + LINGER_NS / 1e9 + 2
    path = write_pcap(tmp_path / "late.pcap", packets + [late])
    for speedups in (False, True):
        conns = sorted(connections(path, speedups=speedups), key=lambda c: c.id)
        assert [c.packets for c in conns] == [len(packets), 1]
        assert conns[1].roles_guessed
    _both(path)


def test_a_syn_that_takes_over_an_open_connections_ports_leaves_both(tmp_path):
    from tcp_craft import Conversation

    packets = []
    first = Conversation(isn_client=1000, packets=packets)
    first.handshake()
    first.echo()  # and never closed: the client crashed, rebooted, and connects again from the same port
    again = Conversation(isn_client=900_000, isn_server=77_000, t0=first.t + 1, packets=packets)
    again.handshake()
    again.echo()
    path = write_pcap(tmp_path / "reuse.pcap", packets)
    for speedups in (False, True):
        conns = sorted(connections(path, speedups=speedups), key=lambda c: c.id)
        assert [c.packets for c in conns] == [7, 7]
    _both(path)
