"""netbed.tcp.expect: the step grammar, the matcher's rules, and what a failure shows."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tcp_craft  # noqa: E402
from tcp_craft import AWKWARD, NAMES, Conversation, write_pcap  # noqa: E402

from netbed.tcp import (  # noqa: E402
    CloseKind,
    ExpectationError,
    analyze_file,
    expect,
    find,
    first_reset,
    keepalive_probes,
    parse_step,
    retransmissions,
    time_between,
)
from netbed.tcp.segments import ACK, FIN, PSH  # noqa: E402


def conn_of(tmp_path: Path, name: str, names=NAMES):
    [conn] = analyze_file(write_pcap(tmp_path / f"{name}.pcap", AWKWARD[name]()), names)
    return conn


# --- grammar --------------------------------------------------------------------------------------


def test_parse_step_forms():
    s = parse_step("client > server  F.")
    assert (s.src, s.dst, s.flags, s.lo, s.hi, s.counted, s.rideable) == (
        "client",
        "server",
        FIN | ACK,
        1,
        1,
        False,
        False,
    )
    assert parse_step("server>client .").rideable
    assert parse_step("client > server FA").flags == parse_step("client > server F.").flags
    s = parse_step("client > server  P.  retransmission+")
    assert (s.flags, s.modifiers, s.lo, s.hi) == (PSH | ACK, ("retransmission",), 1, math.inf)
    assert (parse_step("a > b P. 3+").lo, parse_step("a > b P. 3+").hi) == (3, math.inf)
    assert (parse_step("a > b P. 2-4").lo, parse_step("a > b P. 2-4").hi) == (2, 4)
    assert (parse_step("a > b P. 3").lo, parse_step("a > b P. 3").hi) == (3, 3)
    assert (parse_step("a > b .?").lo, parse_step("a > b .?").hi) == (0, 1)
    assert (parse_step("a > b R *").lo, parse_step("a > b R *").hi) == (0, math.inf)
    s = parse_step("a > b P. data len=5 within=200ms after=0.1s")
    assert (s.length, s.within, s.after, s.modifiers) == (5, 0.2, 0.1, ("data",))


@pytest.mark.parametrize(
    "text,words",
    [
        ("client server F.", "is not 'SRC > DST"),
        ("client > server Q.", "unknown TCP flag 'Q'"),
        ("client > server F. sometimes", "unknown modifier 'sometimes'"),
        ("a > b F. within=soon", "bad time"),
        ("a > b P. len=x", "needs a number"),
    ],
)
def test_parse_step_errors(text, words):
    with pytest.raises(ValueError, match=words):
        parse_step(text)


# --- matching -----------------------------------------------------------------------------------------

NORMAL_CLOSE = ("client > server  F.", "server > client  .", "server > client  F.", "client > server  .")


def test_four_segment_close(tmp_path):
    conn = conn_of(tmp_path, "four_segment_close")
    m = expect(conn).sequence(*NORMAL_CLOSE)
    assert [[s.frame for s in segs] for segs in m.segments] == [[8], [9], [10], [11]]
    expect(conn).sequence("cli > srv F.", "srv > cli .", "srv > cli F.", "cli > srv .", strict=True)
    assert m.time_between(0, 2) == pytest.approx(0.0501, abs=1e-6)


def test_ack_may_ride_on_the_fin(tmp_path):
    conn = conn_of(tmp_path, "fin_ack_combined")
    m = expect(conn).sequence(*NORMAL_CLOSE)
    assert [[s.frame for s in segs] for segs in m.segments] == [[8], [9], [9], [10]]
    with pytest.raises(ExpectationError):  # but an ACK step before a step from the other side cannot ride
        expect(conn).sequence("client > server F.", "server > client .", "client > server .", strict=True)


def test_the_design_example_crash_then_reboot(tmp_path):
    conn = conn_of(tmp_path, "crash_then_reboot")
    m = expect(conn).sequence(
        "client > server  P.",
        "client > server  P.  retransmission+",
        "server > client  R",
    )
    assert len(m[1]) == 5 and m[2][0].frame == 14
    expect(conn).sequence("client > server P. new", "client > server P. retransmission 5", "server > client R")
    expect(conn).sequence("client > server P. retransmission 3+", "server > client R within=1ms")
    # the first step may match anywhere: here from the second retransmission on
    expect(conn).sequence("client > server P. retransmission 4", "server > client R")
    with pytest.raises(ExpectationError, match="first divergence"):  # but runs are maximal
        expect(conn).sequence("client > server P. new", "client > server P. retransmission 4", "server > client R")
    with pytest.raises(ExpectationError):
        expect(conn).sequence("client > server P. retransmission+", "server > client R after=0.5s")


def test_final_counted_step_is_a_maximal_run(tmp_path):
    conn = conn_of(tmp_path, "crash_then_reboot")
    expect(conn).sequence("client > server P. new", "client > server P. retransmission 2-5")
    with pytest.raises(ExpectationError):
        expect(conn).sequence("client > server P. new", "client > server P. retransmission 2-4")
    with pytest.raises(ExpectationError):  # a count written on the last step checks the whole run
        expect(conn).sequence("client > server P. new", "client > server P. retransmission 2")
    expect(conn).sequence("client > server P. new", "client > server P. retransmission")  # no count: one is enough


def test_noise_strict_and_loose(tmp_path):
    conn = conn_of(tmp_path, "four_segment_close")
    # the server's pure ACK of the FIN may interleave by default
    expect(conn).sequence("client > server F.", "server > client F.", "client > server .")
    with pytest.raises(ExpectationError):
        expect(conn).sequence("client > server F.", "server > client F.", strict=True)
    # data between steps is not noise
    with pytest.raises(ExpectationError):
        expect(conn).sequence("client > server P.", "client > server F.")
    expect(conn).sequence("client > server P.", "client > server F.", loose=True)
    with pytest.raises(ValueError):
        expect(conn).sequence("client > server P.", strict=True, loose=True)


def test_optional_and_wildcard_steps(tmp_path):
    conn = conn_of(tmp_path, "fin_ack_combined")
    expect(conn).sequence("client > server F.", "server > client R?", "server > client F.", "* > * .")
    expect(conn).sequence("client > server F.", "server > client F.", "client > server .", "client > server R?")


def test_keepalive_steps(tmp_path):
    conn = conn_of(tmp_path, "keepalives")
    expect(conn).sequence(
        "client > server . keepalive",
        "server > client . keepalive-ack",
        "client > server . keepalive len=1",
        "server > client . keepalive-ack",
        "client > server . keepalive 3",
        "client > server R.",
    )
    assert len(find(conn, "client > server . keepalive")) == 5  # 1-byte probes too, unless len= says
    assert keepalive_probes(conn) == 5 and keepalive_probes(conn, "srv") == 0


def test_unknown_host_name_in_a_step(tmp_path):
    conn = conn_of(tmp_path, "four_segment_close")
    with pytest.raises(ValueError, match="neither end"):
        expect(conn).sequence("db > server F.")


def test_failure_message_shows_steps_and_ladder(tmp_path):
    conn = conn_of(tmp_path, "four_segment_close")
    with pytest.raises(ExpectationError) as err:
        expect(conn).sequence("client > server F.", "server > client R", "client > server .")
    text = str(err.value)
    assert isinstance(err.value, AssertionError)
    assert "[ok]  1  client > server F." in text and "frame 8" in text
    assert "[!!]  2  server > client R" in text and "not found after frame 8" in text
    assert "[  ]  3" in text
    assert "<- step 1" in text
    pointer = [line for line in text.splitlines() if line.startswith(">>")]
    assert len(pointer) == 1 and pointer[0].split()[1] == "9"
    assert "FIN-WAIT-1" in text and "TIME-WAIT" in text


def test_failure_on_a_long_connection_shows_a_window(tmp_path):
    c = Conversation()
    c.handshake()
    for _ in range(60):
        c.echo()
    c.close("client")
    [conn] = analyze_file(write_pcap(tmp_path / "long.pcap", c.packets))
    with pytest.raises(ExpectationError) as err:
        expect(conn).sequence("client > server F.", "server > client R")
    text = str(err.value)
    assert "earlier segments" in text and len(text.splitlines()) < 80


# --- other expectations and helpers -------------------------------------------------------------------


def test_gaps_roughly_doubling(tmp_path):
    conn = conn_of(tmp_path, "crash_then_reboot")
    gaps = expect(conn).retransmission_gaps()
    assert list(gaps) == pytest.approx([0.2, 0.2, 0.4, 0.8, 1.6], abs=1e-5)
    gaps.roughly_doubling().at_least(5).each_between(0.1, 2).total_between(3, 3.5)
    with pytest.raises(ExpectationError, match="between"):
        gaps.each_between(0.3, 2)
    c = Conversation()
    c.handshake()
    s = c.snd["client"]
    c.send("client", "PA", 5, lost=True)
    for _ in range(4):
        c.send("client", "PA", 5, seq=s, dt=0.2, lost=True)
    [flat] = analyze_file(write_pcap(tmp_path / "flat.pcap", c.packets))
    with pytest.raises(ExpectationError, match="not roughly doubling") as err:
        expect(flat).retransmission_gaps("client").roughly_doubling()
    assert "retransmission gaps (client): 0.200, 0.200, 0.200, 0.200 s" in str(err.value)


def test_close_states_resets_and_counts(tmp_path):
    conn = conn_of(tmp_path, "rst_with_ack")
    expect(conn).close(CloseKind.RESET_BY_SERVER).close("reset-by-server").reset_by("srv")
    expect(conn).states("server", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSED")
    expect(conn).states("client", "CLOSE-WAIT", "CLOSED").retransmissions(exactly=0).keepalive_probes(at_most=0)
    with pytest.raises(ExpectationError, match="expected close 'client-first'"):
        expect(conn).close("client-first")
    with pytest.raises(ExpectationError, match="pass through"):
        expect(conn).states("client", "TIME-WAIT")
    with pytest.raises(ExpectationError, match="expected an RST from the client"):
        expect(conn).reset_by("client")
    with pytest.raises(ExpectationError, match="expected no RST"):
        expect(conn).no_reset()
    with pytest.raises(ExpectationError, match="at least 2 retransmissions, found 0"):
        expect(conn).retransmissions(at_least=2)
    with pytest.raises(TypeError):
        expect("not a connection")  # type: ignore[arg-type]


def test_helpers(tmp_path):
    conn = conn_of(tmp_path, "crash_then_reboot")
    assert retransmissions(conn) == 5 and retransmissions(conn, "server") == 0
    assert retransmissions(conn, "cli") == 5
    assert first_reset(conn) == "server"
    assert time_between(conn, "client > server P. new len=16", "server > client R") == pytest.approx(3.2002, abs=1e-5)
    assert time_between(
        conn, "client > server P. retransmission", "client > server P. retransmission"
    ) == pytest.approx(0.2, abs=1e-6)
    with pytest.raises(ExpectationError, match="no segment matches"):
        time_between(conn, "client > server F.", "server > client R")


def test_timing_modifiers(tmp_path):
    conn = conn_of(tmp_path, "syn_retransmitted")
    expect(conn).sequence(
        "client > server S",
        "client > server S retransmission after=0.9s within=1.1s",
        "client > server S retransmission after=1.9s",
    )
    with pytest.raises(ExpectationError):
        expect(conn).sequence("client > server S", "client > server S within=0.5s")


def test_sequences_on_messy_traffic_never_crash(tmp_path):
    path = write_pcap(tmp_path / "m.pcap", tcp_craft.messy(11))
    for conn in analyze_file(path):
        for steps in (NORMAL_CLOSE, ("* > * P. retransmission*", "* > * R?"), ("client > server S", "* > * F. 1-2")):
            try:
                expect(conn).sequence(*steps)
            except ExpectationError as e:
                assert "expected:" in str(e)
