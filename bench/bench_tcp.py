"""Benchmark: netbed.tcp against tshark on a 1,000,000-packet capture.

Generates a pcap of many echo connections (handshake, request/echo rounds,
close, a few retransmissions and keep-alives) with struct directly, then times,
each in its own child process:

  netbed: read + analyse (connections, flags, retransmissions, keep-alives, states)
  tshark: tshark -r FILE -T fields -e tcp.flags   (just printing the TCP flags)

and prints both times (the best of --repeat runs, as machines here are shared),
their ratio, packets per second and each child's peak RSS (from wait4). The
target is netbed <= 1/4 of tshark's time.

    .venv/bin/python bench/bench_tcp.py [--packets 1000000] [--keep] [--repeat 3] [--file PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

_REC = struct.Struct("<IIII")
_ETH = bytes.fromhex("0200000000020200000000030800")
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_SYN_OPTS = bytes.fromhex("020405b40402080a000000010000000001030307")  # mss,sackOK,TS,nop,ws
_TS_OPTS = bytes.fromhex("0101080a0000000200000001")

SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10


def _packet(
    src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int, payload: int, opts: bytes
) -> bytes:
    thl = 20 + len(opts)
    total = 20 + thl + payload
    ip = _IP.pack(0x45, 0, total, 0, 0x4000, 64, 6, 0, src, dst)
    tcp = _TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (thl // 4) << 4, flags, 502, 0, 0)
    return _ETH + ip + tcp + opts + b"x" * payload


def generate(path: str, packets: int, rounds: int = 5, concurrent: int = 64) -> int:
    """Write a pcap of echo connections with about ``packets`` packets; return the exact count."""
    server = bytes([10, 0, 0, 2])
    written = 0
    t_us = 1_700_000_000 * 1_000_000
    conn_no = 0
    with open(path, "wb", buffering=1 << 20) as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))

        def script(n: int) -> list[tuple]:
            """One connection's packets as (from_client, seq_off, ack_off, flags, len, opts)."""
            steps: list[tuple] = [
                (1, 0, 0, SYN, 0, _SYN_OPTS),
                (0, 0, 1, SYN | ACK, 0, _SYN_OPTS),
                (1, 1, 1, ACK, 0, _TS_OPTS),
            ]
            c = s = 1
            for r in range(rounds):
                steps.append((1, c, s, PSH | ACK, 20, _TS_OPTS))
                if n % 40 == 0 and r == 1:  # lost request: retransmitted
                    steps.append((1, c, s, PSH | ACK, 20, _TS_OPTS))
                c += 20
                steps.append((0, s, c, ACK, 0, _TS_OPTS))
                steps.append((0, s, c, PSH | ACK, 20, _TS_OPTS))
                s += 20
                steps.append((1, c, s, ACK, 0, _TS_OPTS))
                if n % 97 == 0 and r == 2:  # an idle moment: keep-alive and its reply
                    steps.append((1, c - 1, s, ACK, 0, _TS_OPTS))
                    steps.append((0, s, c, ACK, 0, _TS_OPTS))
            steps += [
                (1, c, s, FIN | ACK, 0, _TS_OPTS),
                (0, s, c + 1, ACK, 0, _TS_OPTS),
                (0, s, c + 1, FIN | ACK, 0, _TS_OPTS),
                (1, c + 1, s + 1, ACK, 0, _TS_OPTS),
            ]
            return steps

        active: list[list] = []
        while written < packets:
            while len(active) < concurrent:
                conn_no += 1
                client = bytes([10, 0, (conn_no >> 8) & 0xFF | 1, conn_no & 0xFF])
                port = 32768 + conn_no % 28000
                isn_c = (conn_no * 2654435761) & 0xFFFFFFFF
                isn_s = (conn_no * 40503 + 12345) & 0xFFFFFFFF
                active.append([client, port, isn_c, isn_s, script(conn_no), 0])
            for a in list(active):
                client, port, isn_c, isn_s, steps, i = a
                from_client, so, ao, flags, plen, opts = steps[i]
                if from_client:
                    pkt = _packet(
                        client,
                        server,
                        port,
                        9877,
                        isn_c + so,
                        isn_s + ao if ao or flags & ACK else 0,
                        flags,
                        plen,
                        opts,
                    )
                else:
                    pkt = _packet(server, client, 9877, port, isn_s + so, isn_c + ao, flags, plen, opts)
                t_us += 37
                f.write(_REC.pack(t_us // 1_000_000, t_us % 1_000_000, len(pkt), len(pkt)))
                f.write(pkt)
                written += 1
                a[5] = i + 1
                if a[5] == len(steps):
                    active.remove(a)
                if written >= packets:
                    break
    return written


def _netbed(path: str, keep: bool) -> None:
    """Child process body: analyse and print a summary line."""
    from netbed.tcp import analyze_file

    conns = analyze_file(path, keep_segments=keep)
    rtx = sum(c.retransmissions for c in conns)
    ka = sum(c.keepalive_probes for c in conns)
    closes = {}
    for c in conns:
        closes[c.close_kind.value] = closes.get(c.close_kind.value, 0) + 1
        c.states  # noqa: B018 - part of what is measured
    print(f"connections={len(conns)} retransmissions={rtx} keepalives={ka} closes={closes}")


def _run(cmd: list[str], stdout=subprocess.DEVNULL) -> tuple[float, int, str]:
    """Run a child; return (wall seconds, its peak RSS in KiB, its stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if stdout is None else stdout, stderr=subprocess.DEVNULL)
    out = proc.stdout.read().decode() if proc.stdout else ""
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[0]} failed with status {status}")
    return wall, usage.ru_maxrss, out


def _times(runs: list[tuple[float, int, str]]) -> str:
    return ", ".join(f"{r[0]:.2f}" for r in runs) + " s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--file", help="use (or create) this pcap instead of a temporary one")
    ap.add_argument("--keep", action="store_true", help="also keep every segment (ladder/expect path)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each; the best time counts (default 3)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _netbed(args.child, args.keep)
        return
    tmp = None
    path = args.file
    if path is None:
        tmp = tempfile.mkdtemp(prefix="bench_tcp_")
        path = os.path.join(tmp, "echo.pcap")
    try:
        if not os.path.exists(path):
            t0 = time.perf_counter()
            n = generate(path, args.packets)
            print(
                f"generated {n:,} packets ({os.path.getsize(path) / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s"
            )
        n = args.packets
        cmd = [sys.executable, __file__, "--child", path] + (["--keep"] if args.keep else [])
        runs = [_run(cmd, stdout=None) for _ in range(args.repeat)]
        nb_time, nb_rss = min(r[0] for r in runs), max(r[1] for r in runs)
        print(f"netbed: {runs[0][2].strip()}")
        print(
            f"netbed   {nb_time:7.2f} s  {n / nb_time:>10,.0f} packets/s  peak RSS {nb_rss / 1024:7.0f} MiB"
            f"   (best of {_times(runs)})"
        )
        tshark = shutil.which("tshark")
        if not tshark:
            print("tshark   not installed (apt-get install tshark): no comparison")
            return
        runs = [_run([tshark, "-r", path, "-T", "fields", "-e", "tcp.flags"]) for _ in range(args.repeat)]
        ts_time, ts_rss = min(r[0] for r in runs), max(r[1] for r in runs)
        print(
            f"tshark   {ts_time:7.2f} s  {n / ts_time:>10,.0f} packets/s  peak RSS {ts_rss / 1024:7.0f} MiB"
            f"   (best of {_times(runs)})"
        )
        ratio = nb_time / ts_time
        verdict = "OK" if ratio <= 0.25 else "TOO SLOW"
        print(f"ratio netbed/tshark = {ratio:.3f} (target <= 0.25): {verdict}")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
