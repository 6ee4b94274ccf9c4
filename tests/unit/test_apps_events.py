"""Event lines: what a program prints must read back as exactly what it meant."""

from hypothesis import given
from hypothesis import strategies as st

from netbed.apps.events import format_event, parse_event

keys = st.from_regex(r"[a-z_][a-z0-9_]{0,11}", fullmatch=True).filter(lambda key: key not in ("event", "t", "pid"))
values = st.one_of(st.integers(), st.text())


@given(st.text(min_size=1), st.dictionaries(keys, values))
def test_any_fields_read_back_unchanged(name, fields):
    assert parse_event(format_event(name, **fields)) == {"event": name, **fields}


def test_a_line_reads_as_a_person_would_read_it():
    line = format_event("error", pid=12, call="read", errno="ECONNRESET", message="Connection reset by peer")
    assert line == 'event=error pid=12 call=read errno=ECONNRESET message="Connection reset by peer"'


def test_strings_that_look_like_numbers_stay_strings():
    assert parse_event(format_event("x", seq="17", rtt="0.5"))["seq"] == "17"
    assert parse_event(format_event("x", seq="17", rtt="0.5"))["rtt"] == "0.5"
    assert parse_event(format_event("x", rtt=0.5))["rtt"] == 0.5


def test_none_is_left_out():
    assert parse_event(format_event("listening", coalesce=None)) == {"event": "listening"}


def test_other_lines_are_not_events():
    for line in ("hello", "accept error: Interrupted system call", "", "event", "event=x broken=\"unterminated"):
        assert parse_event(line) is None
