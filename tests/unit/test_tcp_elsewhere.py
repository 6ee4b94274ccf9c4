"""netbed.tcp on captures it was not written for: real traffic captured by other people.

The files and where they come from: tests/data/elsewhere/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_tcp_tshark import _compare  # noqa: E402

from netbed.tcp import CloseKind, PcapError, analyze_file  # noqa: E402

ELSEWHERE = Path(__file__).parent.parent / "data" / "elsewhere"


def test_wireshark_http_sample():
    """A whole HTTP exchange, and a connection that was open before the capture began."""
    whole, midway = analyze_file(ELSEWHERE / "http.pcap")
    assert (str(whole.client), str(whole.server)) == ("145.254.160.237:3372", "65.208.228.223:80")
    assert whole.flags[:3] == ["S", "SA", "A"] and whole.close_kind == CloseKind.SERVER_FIRST
    assert whole.states["server"][-1] == "TIME-WAIT" and whole.retransmissions == 0
    assert whole.segments[3].payload().startswith(b"GET /download.html HTTP/1.1\r\n")
    assert midway.flags[0] == "PA" and midway.close_kind == CloseKind.OPEN
    assert midway.states == {"client": ["ESTABLISHED"], "server": ["ESTABLISHED"]}
    assert midway.retransmissions == 1


def test_isp_capture_with_pppoe_and_ipv6_in_l2tp():
    """Plain IPv4, IPv4 in PPPoE, and IPv6 in PPP in L2TP in UDP in PPPoE: three connections, each the inner one."""
    plain, pppoe, l2tp = analyze_file(ELSEWHERE / "nb6-http.pcap")
    assert str(plain.client) == "10.251.23.139:33198"
    assert str(pppoe.client) == "95.136.242.99:52573"
    assert str(l2tp.client) == "[2a00:5e80:101:212d:504:7b1:2572:db22]:37034"
    for conn in (plain, pppoe, l2tp):
        assert conn.flags[:3] == ["S", "SA", "A"] and len(conn.segments) == 10
        assert conn.close_kind == CloseKind.CLIENT_FIRST
        assert conn.states["client"][-1] == "TIME-WAIT" and conn.states["server"][-1] == "CLOSED"
    assert l2tp.segments[3].payload().startswith(b"GET / HTTP/1.1\r\n")


def test_captures_made_elsewhere_agree_with_tshark(tshark, tmp_path):  # noqa: F811
    for name in ("http.pcap", "nb6-http.pcap"):
        _compare(tshark, ELSEWHERE / name)


TCPDUMP = ELSEWHERE / "tcpdump"
LONE_FIRST_FRAGMENT = "a lone first IP fragment with a TCP header: tshark dissects it, netbed counts a fragment"
KNOWN_DIFFERENCES = {
    "bgp-aigp.pcap": "Juniper's Ethernet link type, which netbed does not read",
    "bgp-bgp_capabilities_print-oobr-1.pcap": LONE_FIRST_FRAGMENT,
    "bgp-bgp_capabilities_print-oobr-2.pcap": LONE_FIRST_FRAGMENT,
    "bgp_pmsi_tunnel-oobr.pcap": LONE_FIRST_FRAGMENT,
    "rpki-rtr-oobr.pcap": LONE_FIRST_FRAGMENT,
}
ONLY_CUT_TCP = "tcp_header_heapoverflow.pcap"  # its one TCP header is cut; tshark refuses the file


@pytest.mark.parametrize("name", sorted(p.name for p in TCPDUMP.glob("*.pcap*") if p.name != ONLY_CUT_TCP))
def test_tcpdumps_own_test_captures_agree_with_tshark(tshark, name):  # noqa: F811
    """Every capture with TCP in tcpdump 4.99.3's test suite: real traffic, odd links, fuzzed headers."""
    if name in KNOWN_DIFFERENCES:
        with pytest.raises(AssertionError):  # still different, for the reason given
            _compare(tshark, TCPDUMP / name)
    else:
        _compare(tshark, TCPDUMP / name)


def test_a_capture_whose_only_tcp_header_is_cut_is_one_clear_error():
    with pytest.raises(PcapError, match=r"^the snap length cut the TCP headers of 1 packets") as caught:
        analyze_file(TCPDUMP / ONLY_CUT_TCP)
    assert "\n" not in str(caught.value)
