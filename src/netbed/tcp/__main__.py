"""`python3 -m netbed.tcp FILE [--follow] [--name IP=NAME ...]`: ladders with the standard library alone.

This is what runs inside the hosts (the demo's live ladder follows the
capture this way); on the runner, `netbed ladder` and `netbed analyze` say
the same with more options.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from netbed.tcp import PcapError, analyze, follow, render_ladder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m netbed.tcp", description=__doc__.splitlines()[0])
    parser.add_argument("file", help="a pcap or pcapng file")
    parser.add_argument("--follow", action="store_true", help="print each segment as the capture grows")
    parser.add_argument("--name", action="append", default=[], metavar="IP=NAME", help="a host name for an address")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends us quietly
    names = {}
    for pair in args.name:
        ip, sep, name = pair.partition("=")
        if not sep:
            parser.error(f"--name {pair!r}: write it as IP=NAME")
        names[ip] = name
    try:
        if args.follow:
            if not os.path.isdir(os.path.dirname(os.path.abspath(args.file))):
                print(f"netbed.tcp: no folder for {args.file}: give the path of a capture (it may not exist yet)",
                      file=sys.stderr)
                return 1
            waiting = "" if os.path.exists(args.file) else " (waiting for it to appear)"
            print(f"following {args.file}{waiting}; Ctrl-C to stop", file=sys.stderr, flush=True)
            for line in follow(args.file, names):
                print(line, flush=True)
        else:
            for conn in analyze(args.file, names):
                print(render_ladder(conn), end="\n\n")
    except PcapError as exc:
        print(f"netbed.tcp: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
