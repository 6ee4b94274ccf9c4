"""The run report from a run folder made by hand: a crafted capture and a report.json, no Docker."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from netbed.errors import NetbedError
from netbed.report import load_run, write_html, write_junit
from netbed.report.html import retransmission_strip
from netbed.tcp import analyze
from tcp_craft import CLIENT, crash_then_reboot, write_pcap


@pytest.fixture
def run_dir(tmp_path):
    for name, section, passed in (("server-host-reboot", "5.15", True), ("server-host-crash", "5.14", False)):
        folder = tmp_path / name
        folder.mkdir()
        write_pcap(folder / "capture.pcap", crash_then_reboot())
        (folder / "report.json").write_text(json.dumps({
            "scenario": name, "section": section, "title": "crash, then reboot", "passed": passed,
            "duration_s": 2.5, "settings": {"client_sysctls": {"net.ipv4.tcp_retries2": 8}}, "doc": "UNP 5.15 ...",
            "checks": [{"name": "the retransmission draws an RST", "passed": passed, "expected": "server > client  R",
                        "observed": "S S. . P." if passed else "<no RST>"}],
            "timeline": [{"t": 1700000000.0, "who": "netbed", "what": "crash server"}],
            "connections": [f"{CLIENT[0]}:{CLIENT[1]}"], "names": {},
        }))
    return tmp_path


def test_the_page_lists_scenarios_in_the_books_order_with_checks_ladders_and_timeline(run_dir):
    page = write_html(load_run(run_dir), run_dir / "report.html").read_text()
    assert page.index("id='server-host-crash'") < page.index("id='server-host-reboot'"), "5.14 before 5.15"
    assert "1 passed" in page and "1 failed" in page
    assert "&lt;no RST&gt;" in page, "observed text is escaped"
    assert "to scale" in page and "crash server" in page and "[retransmission]" in page
    assert "href='server-host-crash/capture.pcap'" in page, "links are relative: the folder can move"
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", ""), "nothing to fetch: self-contained"


def test_the_strip_draws_every_send_at_its_time(run_dir):
    [conn] = analyze(str(run_dir / "server-host-reboot" / "capture.pcap"))
    strip = retransmission_strip(conn, width=900)
    ticks = strip.count('stroke-width="2"')
    assert ticks == 1 + conn.retransmissions + 1, "the first send, each retransmission, the RST"
    assert ">RST<" in strip


def test_junit_marks_the_failed_scenario(run_dir):
    suite = ET.parse(write_junit(load_run(run_dir), run_dir / "junit.xml")).getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failed = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["server-host-crash"]


def test_a_broken_report_is_named(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "report.json").write_text("{not json")
    with pytest.raises(NetbedError, match="is not a netbed report"):
        load_run(tmp_path)


def test_the_timeline_reads_the_captures_own_notes_once(tmp_path):
    from netbed.tcp.annotate import Note, annotate
    from netbed.tcp.pcap import read_frames

    folder = tmp_path / "server-host-crash"
    folder.mkdir()
    write_pcap(tmp_path / "raw.pcap", crash_then_reboot())
    t0 = next(iter(read_frames(str(tmp_path / "raw.pcap")))).ts_ns
    annotate(tmp_path / "raw.pcap", folder / "capture.pcapng",
             [Note(t0 + 1000, "server: /opt/mine/server 9877 started (pid 7)"), Note(t0 + 2000, "crash server")])
    (folder / "report.json").write_text(json.dumps({
        "scenario": "server-host-crash", "section": "5.14", "title": "t", "passed": True, "duration_s": 1.0,
        "checks": [], "timeline": [{"t": t0 / 1e9 + 2e-6, "who": "netbed", "what": "crash server"}]}))
    page = write_html(load_run(tmp_path), tmp_path / "report.html").read_text()
    assert "/opt/mine/server 9877 started (pid 7)" in page, "a note only the capture holds"
    assert page.count("crash server") == 1, "a note the timeline holds too is shown once"
