"""Memory that does not grow with the capture: connections handed on as they end, segments read again.

The bench (bench/bench_tcp.py) measures the figures; these tests pin the
behaviour that makes them possible, with either engine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent.parent / "bench"))
from tcp_craft import AWKWARD, messy, write_pcap  # noqa: E402
from tcp_shapes import short  # noqa: E402

from netbed.tcp import Analyzer, Mark, analyze, connections, read_tcp, render_ladder, speedups_built  # noqa: E402
from netbed.tcp.connection import LINGER_NS  # noqa: E402
from netbed.tcp.ladder import ladder_lines, with_segments  # noqa: E402

ENGINES = [False, True] if speedups_built() else [False]


def netbed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netbed", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def echoes(tmp_path_factory) -> Path:
    """2,000 frames of short echo connections, 64 at a time, 37 µs apart."""
    path = tmp_path_factory.mktemp("echoes") / "echoes.pcap"
    short(path, 2000)
    return path


def test_a_connection_is_handed_on_once_it_is_over_and_quiet_not_at_the_end(tmp_path):
    first, second = AWKWARD["four_segment_close"](), messy(3, port=30000)
    t_end = float(first[-1].time)
    for p in second:  # the second conversation starts well after the first's linger
        p.time = float(p.time) - float(second[0].time) + t_end + LINGER_NS / 1e9 + 5
    path = write_pcap(tmp_path / "two.pcap", first + second)
    handed = []
    analyzer = Analyzer(on_done=handed.append)
    segments = list(read_tcp(path))
    analyzer.feed(segments[: len(first)])
    assert handed == []  # closed, but not yet quiet for long enough
    analyzer.feed(segments[len(first) : len(first) + 1])
    assert [(c.id, c.packets) for c in handed] == [(0, len(first))]
    assert analyzer.connections == [] and len(analyzer._table) == 2  # only the second connection is held
    analyzer.feed(segments[len(first) + 1 :])
    analyzer.close()
    assert sorted(c.id for c in handed) == [c.id for c in analyze(path)]


@pytest.mark.parametrize("speedups", ENGINES)
def test_progress_is_told_how_much_was_read(tmp_path, speedups):
    path = tmp_path / "e.pcap"
    short(path, 30_000)  # about 2.7 MB: three chunks
    read = []
    assert sum(1 for _ in connections(path, speedups=speedups, progress=read.append))
    assert len(read) >= 3 and read == sorted(read) and read[-1] == path.stat().st_size


@pytest.mark.parametrize("speedups", ENGINES)
def test_segments_are_read_again_from_the_file_not_held(echoes, speedups):
    conns = sorted(connections(echoes, speedups=speedups), key=lambda c: c.id)
    held = sorted(connections(echoes.read_bytes(), speedups=speedups), key=lambda c: c.id)
    assert all(c._raw is None for c in conns)  # nothing held: the file is there
    for a, b in zip(conns, held):
        assert [s.describe() for s in a.segments] == [s.describe() for s in b.segments]
        assert [s.frame for s in a.iter_segments()] == [s.frame for s in b.segments]


def test_a_changed_file_is_said(tmp_path):
    path = write_pcap(tmp_path / "x.pcap", AWKWARD["four_segment_close"]())
    [conn] = analyze(path)
    path.write_bytes(path.read_bytes()[:200])
    from netbed.tcp import PcapError

    with pytest.raises(PcapError, match="changed since it was read"):
        conn.segments  # noqa: B018


def test_every_ladder_in_bounded_batches_is_the_same_as_drawn_whole(echoes):
    whole = [render_ladder(c) for c in analyze(echoes)]
    batched = ["\n".join(ladder_lines(c)) for c in with_segments(echoes, budget=100)]
    assert batched == whole
    done = netbed("ladder", str(echoes))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "\n\n".join(whole) + "\n"


def test_analyze_json_is_one_connection_a_line_and_says_what_it_read_on_stderr(echoes):
    done = netbed("analyze", str(echoes), "--json")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    data = json.loads(done.stdout)
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == len(data) + 2
    assert sorted(d["id"] for d in data) == [c.id for c in analyze(echoes)]
    assert {d["id"]: d["flags"] for d in data} == {c.id: c.flags for c in analyze(echoes)}
    assert done.stderr.strip() == "2000 frames read, 2000 TCP"


def test_the_reading_of_a_large_capture_is_shown_on_a_terminal():
    from netbed.cli import _Reading

    shown = _Reading("big.pcap", 4 << 30)
    ticks = iter([0.0, 1.0, 1.2, 2.0])
    shown.clock = lambda: next(ticks)
    shown.start = shown.last = shown.clock()
    written = []
    import netbed.cli as cli

    real = cli.sys.stderr
    cli.sys.stderr = type("Err", (), {"write": lambda self, s: written.append(s), "flush": lambda self: None})()
    try:
        shown(1 << 30)  # a second later: shown
        shown(5 << 28)  # 0.2 s later: not
        shown(2 << 30)
        shown.done()
    finally:
        cli.sys.stderr = real
    assert written[0] == "\rreading big.pcap: 1.0 of 4.0 GiB (25%), 1024 MiB/s, about 3 s left\x1b[K"
    assert len(written) == 3 and written[-1] == "\r\x1b[K"


def test_netbed_pure_python_turns_the_speedups_off(tmp_path, monkeypatch):
    import netbed.tcp.scan as scan

    def c_engine(*_args):  # noqa: ANN002
        raise AssertionError("the C engine ran")

    monkeypatch.setattr(scan, "_c_pass", c_engine)
    monkeypatch.setenv("NETBED_PURE_PYTHON", "1")
    path = write_pcap(tmp_path / "x.pcap", AWKWARD["four_segment_close"]())
    assert not speedups_built() and [c.packets for c in connections(path)] == [11]


@pytest.mark.parametrize("name", ["messy", "nb6-http.pcap", "http.pcap", *sorted(AWKWARD)])
def test_the_json_written_by_hand_is_json_dumps_of_to_json(tmp_path, name):
    """netbed analyze --json builds each line itself (for speed): byte for byte what json.dumps would write."""
    import json as json_module

    from netbed.tcp import to_json
    from netbed.tcp.render import write_json

    if name == "messy":
        path = write_pcap(tmp_path / "m.pcap", messy(5) + messy(6, port=30000))
    elif name in AWKWARD:
        path = write_pcap(tmp_path / f"{name}.pcap", AWKWARD[name]())
    else:
        path = Path(__file__).parent.parent / "data" / "elsewhere" / name
    conns = analyze(path, {"10.0.0.3": 'a "quoted"\\ name, é', "10.0.0.2": "srv"})
    out = []
    write_json(conns, out.append)
    assert "".join(out) == "[\n" + ",\n".join(json_module.dumps(d) for d in to_json(conns)) + "\n]\n"


def _said(conn) -> dict:  # noqa: ANN001 - a Connection
    """Everything a connection says, but its segments."""
    out = {
        name: getattr(conn, name)
        for name in (
            "id", "client", "server", "roles_guessed", "role_reason", "source", "packets", "first_ns", "last_ns",
            "first_frame", "first_ts", "duration", "syn_seen", "flags", "tcpdump_flags", "senders",
            "retransmissions", "keepalive_probes", "zero_window_probes", "resets", "first_reset", "close_kind",
            "states", "state_changes", "initial_rtt", "has_segments",
        )
    }
    out["gaps"] = (conn.retransmission_gaps(), conn.retransmission_gaps("client"))
    out["counts"] = [conn.count(m, side) for m in (Mark.DUPLICATE_ACK, Mark.ANY_RETRANSMISSION) for side in (None, "server")]
    out["repr"] = (repr(conn), conn.label(), [conn.initial_state(r) for r in ("client", "server")])
    return out


@pytest.mark.parametrize("speedups", ENGINES)
def test_analyze_keeps_each_connection_compact_and_it_says_all_the_streamed_one_says(tmp_path, echoes, speedups):
    import os
    import sys as _sys

    from netbed.tcp import Connection
    from netbed.tcp.connection import _Full, summary

    packets = []
    for seed in range(8):
        packets += messy(seed, port=20000 + 10 * seed, t0=1_700_000_000.0 + 60 * seed)
    packets.sort(key=lambda p: float(p.time))
    messy_path = write_pcap(tmp_path / "messy.pcap", packets)
    os.environ["NETBED_PURE_PYTHON"] = "0" if speedups else "1"
    try:
        for path in (echoes, messy_path):
            streamed = sorted(connections(path, {"10.0.0.2": "srv"}), key=lambda c: c.id)
            kept = analyze(path, {"10.0.0.2": "srv"})
            assert [type(c) for c in kept] == [Connection] * len(streamed)  # compact, and still a Connection
            assert all(type(c) is _Full and isinstance(c, Connection) for c in streamed)
            for a, b in zip(streamed, kept, strict=True):
                assert _said(b) == _said(a)
                assert summary(b) == summary(a)
                assert [s.describe() for s in b.segments] == [s.describe() for s in a.segments]
                assert [s._conn for s in b.iter_segments()] == [b] * b.packets
                assert "\n".join(ladder_lines(b)) == render_ladder(a)
            small = kept[len(kept) // 2]
            assert _sys.getsizeof(small) + _sys.getsizeof(small._packed) < 400  # about a fifth of before
        big = streamed[-1]  # offsets past 4 GiB, and CWR and NS: the wide layouts
        big._first_off, big._last_off, big.first_frame = 5 << 32, 6 << 32, 1 << 33
        big._fl[0] |= 0x180
        wide = big._compact()
        assert type(wide) is Connection and _said(wide) == _said(big) and wide._ctx[5] and not kept[0]._ctx[5]
        assert (wide._first_off, wide._last_off, wide._fl) == (big._first_off, big._last_off, big._fl)
        held = analyze(messy_path, keep_segments=lambda c: c.id % 2 == 0)  # segments in memory: left whole
        assert [type(c) is _Full for c in held] == [c.id % 2 == 0 for c in held]
        assert all(c._raw is not None for c in held if c.id % 2 == 0)
        assert analyze(echoes.read_bytes())[0]._raw  # from bytes: held, as before
    finally:
        del os.environ["NETBED_PURE_PYTHON"]
