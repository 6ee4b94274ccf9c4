"""Benchmark: every entry point of netbed.tcp against tshark (and tcptrace), on captures of several shapes.

Writes one capture per shape (bench/tcp_shapes.py: short echo connections,
long bulk transfers with SACK and retransmissions, idle connections with
keep-alives, VXLAN-tunnelled traffic), then runs, each as a whole process,
the repeats interleaved so that every command sees the same load:

  tshark -r F -T fields -e tcp.flags        the reference (printing each frame's TCP flags)
  tcptrace -n F                              per-connection summaries in C, where installed
  netbed analyze F                           text
  netbed analyze F --json
  netbed ladder F --conn 0                   one connection's ladder (--all-ladders: also every ladder)
  python: netbed.tcp.analyze(F)              the list of connections, segments to be had on demand
  python: netbed.tcp.connections(F)          the same, streamed: each connection as it ends
  python: ... with NETBED_PURE_PYTHON=1      the standard-library engine the hosts run

and prints the median wall time and the peak RSS (wait4) of each, and the
ratio of the time to tshark's. The targets: every ratio <= 0.10, every peak
<= 200 MiB. --big adds a 10,000,000-packet capture of the short shape, read
by every netbed entry point: its peaks next to the 1,000,000-packet ones show
memory flat.

    .venv/bin/python bench/bench_tcp.py [--packets 1000000] [--repeat 3] [--shapes short,bulk,idle,vxlan]
                                        [--dir DIR] [--big] [--all-ladders]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from tcp_shapes import SHAPES  # noqa: E402

TIME_TARGET = 0.10
MEMORY_TARGET_MIB = 200
PY_ANALYZE = (
    "import sys; from netbed.tcp import analyze; conns = analyze(sys.argv[1]); "
    "print(len(conns), sum(c.retransmissions for c in conns), sum(c.keepalive_probes for c in conns))"
)
PY_STREAM = (
    "import sys; from netbed.tcp import connections; n = rtx = 0\n"
    "for c in connections(sys.argv[1], keep_segments=False): n += 1; rtx += c.retransmissions\n"
    "print(n, rtx)"
)


@dataclass
class Entry:
    """One command of the table and what its runs measured."""

    shape: str
    what: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    walls: list[float] = field(default_factory=list)
    peaks_kib: list[int] = field(default_factory=list)
    failed: str = ""

    def run(self) -> None:
        env = {**os.environ, **self.env}
        start = time.perf_counter()
        proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        _pid, status, usage = os.wait4(proc.pid, 0)
        self.walls.append(time.perf_counter() - start)
        self.peaks_kib.append(usage.ru_maxrss)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            self.failed = f"exit {code}: {err.strip().splitlines()[-1] if err.strip() else ''}"

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def peak_mib(self) -> float:
        return max(self.peaks_kib) / 1024


def _netbed(*args: str) -> list[str]:
    return [sys.executable, "-m", "netbed", *args]


def entries_for(shape: str, path: str, all_ladders: bool, reference: bool = True) -> list[Entry]:
    out = []
    if reference and shutil.which("tshark"):
        tshark = ["tshark", "-r", path, "-T", "fields", "-e", "tcp.flags"]
        out.append(Entry(shape, "tshark -T fields -e tcp.flags", tshark))
    if reference and shutil.which("tcptrace"):
        out.append(Entry(shape, "tcptrace -n", ["tcptrace", "-n", path]))
    out += [
        Entry(shape, "netbed analyze", _netbed("analyze", path)),
        Entry(shape, "netbed analyze --json", _netbed("analyze", path, "--json")),
        Entry(shape, "netbed ladder --conn 0", _netbed("ladder", path, "--conn", "0")),
    ]
    if all_ladders:
        out.append(Entry(shape, "netbed ladder (every connection)", _netbed("ladder", path)))
    out += [
        Entry(shape, "netbed.tcp.analyze()", [sys.executable, "-c", PY_ANALYZE, path]),
        Entry(shape, "netbed.tcp.connections()", [sys.executable, "-c", PY_STREAM, path]),
        Entry(shape, "netbed.tcp.analyze() pure Python", [sys.executable, "-c", PY_ANALYZE, path],
              {"NETBED_PURE_PYTHON": "1"}),
    ]
    return out


def _table(entries: list[Entry], repeat: int) -> None:
    timing = f"time (median of {repeat})"
    print(f"\n{'shape':<7} {'what':<34} {timing:>21} {'peak RSS':>10} {'vs tshark':>10}  target")
    reference = {e.shape: e.wall for e in entries if e.what.startswith("tshark") and not e.failed}
    for e in entries:
        if e.failed:
            print(f"{e.shape:<7} {e.what:<34} FAILED {e.failed}")
            continue
        ref = reference.get(e.shape)
        ratio = f"{e.wall / ref:10.3f}" if ref else f"{'-':>10}"
        verdict = ""
        if e.what.startswith("netbed") and "pure" not in e.what:
            misses = [w for w, ok in (("time", ref is None or e.wall / ref <= TIME_TARGET),
                                      ("memory", e.peak_mib <= MEMORY_TARGET_MIB)) if not ok]
            verdict = "MISS " + " and ".join(misses) if misses else "ok"
        elif "pure" in e.what:
            verdict = "(the fallback: no target)"
        print(f"{e.shape:<7} {e.what:<34} {e.wall:19.2f} s {e.peak_mib:6.0f} MiB {ratio}  {verdict}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each command; the median counts (default 3)")
    ap.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, of {', '.join(SHAPES)}")
    ap.add_argument("--dir", help="write (or reuse) the captures here instead of a temporary folder")
    ap.add_argument("--big", action="store_true", help="also read a 10,000,000-packet capture (memory flat)")
    ap.add_argument("--big-packets", type=int, default=10_000_000, help=argparse.SUPPRESS)
    ap.add_argument("--all-ladders", action="store_true", help="also draw every connection's ladder (slow)")
    args = ap.parse_args()
    shapes = [s for s in args.shapes.split(",") if s]
    for s in shapes:
        if s not in SHAPES:
            ap.error(f"unknown shape {s!r} (known: {', '.join(SHAPES)})")
    tmp = None if args.dir else tempfile.mkdtemp(prefix="bench_tcp_")
    folder = Path(args.dir or tmp)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        from netbed.tcp import speedups_built

        print(f"netbed.tcp C speedups built: {speedups_built()}; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")
        entries: list[Entry] = []
        for shape in shapes:
            path = folder / f"{shape}-{args.packets}.pcap"
            if not path.exists():
                t0 = time.perf_counter()
                n = SHAPES[shape](path, args.packets)
                size = path.stat().st_size / 2**20
                print(f"{shape}: wrote {n:,} packets, {size:.0f} MiB, in {time.perf_counter() - t0:.1f} s")
            entries += entries_for(shape, str(path), args.all_ladders)
        for r in range(args.repeat):
            for e in entries:  # interleaved: each repeat runs every command once, so all see the same load
                e.run()
            print(f"repeat {r + 1}/{args.repeat} done (load {os.getloadavg()[0]:.2f})", flush=True)
        _table(entries, args.repeat)
        if args.big:
            path = folder / f"short-{args.big_packets}.pcap"
            if not path.exists():
                t0 = time.perf_counter()
                n = SHAPES["short"](path, args.big_packets)
                size = path.stat().st_size / 2**20
                print(f"\nbig: wrote {n:,} packets, {size:.0f} MiB, in {time.perf_counter() - t0:.1f} s")
            big = [e for e in entries_for("big", str(path), False, reference=False) if "pure" not in e.what]
            for e in big:
                e.run()
            print(f"\n10M packets (short shape), one run each: peak RSS against the {args.packets:,}-packet run")
            small = {e.what: e for e in entries if e.shape == "short"}
            for e in big:
                before = small.get(e.what)
                was = f"{before.peak_mib:6.0f} MiB at {args.packets:,}" if before else ""
                state = f"FAILED {e.failed}" if e.failed else f"{e.wall:8.2f} s {e.peak_mib:6.0f} MiB"
                print(f"  {e.what:<34} {state}   ({was})")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
