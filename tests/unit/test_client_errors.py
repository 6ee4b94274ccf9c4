"""The kind of a client's failure, from its words, its end and its moment against the wire (no Docker)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from netbed.scenarios.client_errors import (PREMATURE, WireEnd, judge, kind_from_text, kind_from_timing, kinds_said,
                                            resend_gaps, resent, wire_end)


@pytest.mark.parametrize("text, kind", [
    ("readline error: Connection timed out", "ETIMEDOUT"),
    ("str_cli: readline error: Connection reset by peer", "ECONNRESET"),
    ("writen error: Broken pipe", "EPIPE"),
    ("connect error: No route to host", "EHOSTUNREACH"),
    ("connect error: Connection refused", "ECONNREFUSED"),
    ("2026/11/27 10:00:00 socat[7] E read(5, 0x1, 8192): Connection timed out", "ETIMEDOUT"),
    ("ConnectionResetError: [Errno 104] Connection reset by peer", "ECONNRESET"),
    ("TimeoutError: [Errno 110]", "ETIMEDOUT"),
    ("BrokenPipeError", "EPIPE"),
    ("recv failed: ETIMEDOUT", "ETIMEDOUT"),
    ("OSError: [Errno 113] whatever", "EHOSTUNREACH"),
    ("str_cli: server terminated prematurely", PREMATURE),
    ("server closed the connection", PREMATURE),
    ("unexpected EOF from server", PREMATURE),
    ("read error: Connection reset by peer (connection closed)", "ECONNRESET"),  # the errno wins over "closed"
    ("hello", None),
    ("", None),
    ("error", None),
])
def test_the_kind_a_message_names(text, kind):
    assert kind_from_text(text) == kind


def test_kinds_said_in_order_each_once():
    assert kinds_said(["hello", "readline error: Connection timed out", "ETIMEDOUT again",
                       "server terminated prematurely"]) == ["ETIMEDOUT", PREMATURE]


@dataclass
class Seg:
    sender: str
    ts: float
    seq: int
    payload_len: int = 0
    letters: str = "A"
    is_keepalive: bool = False


def crash_wire(first_byte_alone: bool = False) -> list[Seg]:
    """hello echoed, then a line sent at t=10 and retransmitted 5 times into silence (RTO 0.2 s doubling)."""
    segs = [Seg("client", 1.0, 1, 6, "PA"), Seg("server", 1.001, 1, 0), Seg("server", 1.002, 1, 6, "PA"),
            Seg("client", 1.003, 7, 0)]
    size = 1 if first_byte_alone else 16
    t = 10.0
    segs.append(Seg("client", t, 7, size, "PA"))
    for gap in (0.2, 0.4, 0.8, 1.6, 3.2):
        t += gap
        segs.append(Seg("client", t, 7, size, "PA", is_keepalive=first_byte_alone))
    return segs


def test_retransmissions_by_sequence_numbers_count_a_1_byte_segment():
    for alone in (False, True):
        segs = crash_wire(first_byte_alone=alone)
        assert len(resent(segs)) == 5
        assert [round(g, 2) for g in resend_gaps(segs)] == [0.2, 0.4, 0.8, 1.6, 3.2]
    assert resent(segs, "server") == []


def test_a_new_segment_after_an_acknowledged_one_is_no_retransmission():
    segs = [Seg("client", 1, 1, 1, "PA"), Seg("client", 2, 2, 15, "PA"), Seg("client", 3, 17, 5, "PA")]
    assert resent(segs) == [] and resend_gaps(segs) == []


def test_wire_end_after_a_crash_and_after_a_reboot():
    segs = crash_wire()
    end = wire_end(segs)
    assert end == WireEnd(None, None, 16.2, 5)
    rebooted = segs[:7] + [Seg("server", 16.2001, 0, 0, "R")]
    assert wire_end(rebooted).reset_at == 16.2001


@pytest.mark.parametrize("ended_at, wire, kind", [
    (22.6, WireEnd(last_resend_at=16.2, resends=5), "ETIMEDOUT"),             # TCP gave up after its last try
    (12.0, WireEnd(last_resend_at=16.2, resends=5), None),                    # before it gave up: not TCP's doing
    (22.6, WireEnd(), None),                                                  # nothing was retransmitted
    (13.1, WireEnd(reset_at=13.0, last_resend_at=13.0, resends=3), "ECONNRESET"),  # at once after the RST
    (15.0, WireEnd(reset_at=13.0, last_resend_at=13.0, resends=3), None),     # long after the RST
    (12.0, WireEnd(reset_at=13.0, last_resend_at=11.0, resends=3), None),     # before the RST
    (5.5, WireEnd(fin_at=3.0, reset_at=5.4), PREMATURE),                      # the FIN came first: EOF
    (5.5, WireEnd(fin_at=3.0), PREMATURE),
])
def test_the_kind_a_silent_end_fits(ended_at, wire, kind):
    assert kind_from_timing(ended_at, wire) == kind


CRASH = "after a crash of the server host"


def test_the_right_message_passes():
    j = judge("ETIMEDOUT", ["readline error: Connection timed out"], 1, None, 22.6, None, CRASH)
    assert j.passed and j.kind == "ETIMEDOUT" and "Connection timed out" in j.observed


def test_a_message_naming_another_errno_fails_and_says_which():
    j = judge("ETIMEDOUT", ["readline error: Connection reset by peer"], 1, None, 22.6,
              WireEnd(last_resend_at=16.2, resends=5), CRASH)
    assert not j.passed and j.kind == "ECONNRESET"
    assert j.observed.startswith("the client reports ECONNRESET ('Connection reset by peer') where the book's client "
                                 "gets ETIMEDOUT ('Connection timed out') after a crash of the server host")


def test_a_silent_exit_0_did_not_notice():
    j = judge("ETIMEDOUT", [], 0, None, 22.6, WireEnd(last_resend_at=16.2, resends=5), CRASH)
    assert not j.passed and j.observed.startswith("the client did not notice: it exited 0 without a word")


def test_a_client_still_running_did_not_notice():
    j = judge("ECONNRESET", [], None, None, None, None)
    assert not j.passed and j.observed.startswith("the client did not notice: still running at the deadline")


def test_a_silent_failure_is_judged_by_its_moment():
    crash = WireEnd(last_resend_at=16.2, resends=5)
    reboot = WireEnd(reset_at=13.0, last_resend_at=13.0, resends=3)
    assert judge("ETIMEDOUT", [], 1, None, 22.6, crash).passed
    assert judge("ECONNRESET", [], 1, None, 13.05, reboot).passed
    wrong = judge("ETIMEDOUT", [], 1, None, 13.05, reboot, CRASH)
    assert not wrong.passed and wrong.kind == "ECONNRESET" and "where the book's client gets ETIMEDOUT" in wrong.observed
    unknown = judge("ETIMEDOUT", [], 1, None, 12.0, crash)
    assert not unknown.passed and "fits no error on the wire" in unknown.observed


def test_death_by_sigpipe_is_epipe():
    assert judge("EPIPE", [], None, 13, 5.0, None).passed
    assert not judge("premature", [], None, 13, 5.0, None).passed


def test_exit_0_with_the_right_words_passes():
    assert judge(PREMATURE, ["str_cli: server terminated prematurely"], 0, None, 3.0, None).passed
