"""Packet delay without netem: hold each packet of an NFQUEUE, then ACCEPT it.

    python3 -m netbed.apps.shaper --queue N --delay MS [--jitter MS] [--seed S] [--reorder]

Used by `impair` on kernels without the netem qdisc: in a host's network
namespace, `iptables -A INPUT ! -i lo -j NFQUEUE --queue-num N --queue-bypass`
hands every packet arriving from the network to queue N, and this program (which
needs NET_ADMIN in that namespace) gives each one the NF_ACCEPT verdict DELAY ms
after it arrived. (--queue-bypass: while no shaper is bound, packets pass.)

Prefer INPUT to OUTPUT. Both add DELAY to every round trip, but a packet held on
OUTPUT is still charged to its sending socket (netem orphans it; NFQUEUE cannot),
so TCP Small Queues lets a sender have only about two packets in the queue:
measured, a bulk TCP sender whose OUTPUT is delayed 10 ms managed 0.57 MB/s,
against 285 MB/s with the same delay on the receiver's INPUT (packets that crossed
the veth into another namespace are no longer charged to the sender).

Standard library only: it speaks nfnetlink_queue (linux/netfilter/nfnetlink_queue.h)
over a raw netlink socket. Only metadata is copied (NFQNL_COPY_META): the packet
id is all a verdict needs.

Jitter: each packet's delay is DELAY + uniform(-JITTER, +JITTER), clamped at 0.
By default packets still leave in arrival order (FIFO): a packet is never released
before the one queued ahead of it, so jitter becomes bursts, not reordering (TCP
stays free of spurious fast retransmits; with dense traffic the mean delay rises
toward DELAY + JITTER). With --reorder each packet keeps its own sampled time, so
packets may overtake each other, as with netem's jitter.

Robustness: the queue is set to fail open (NFQA_CFG_F_FAIL_OPEN): if it or the
socket overflows the kernel accepts packets undelayed instead of dropping them.
On SIGTERM/SIGINT every held packet is accepted at once, then the queue unbound.
Heal in this order: delete the iptables rule, then stop the shaper (packets
queued in the instant of unbinding are dropped by the kernel; TCP resends them).

Prints "shaper: queue N delay D jitter J ready" once bound, and on a clean exit
"shaper: queue N done: P packets delayed, O receive overflows". Any error is one
line on stderr and a non-zero status.
"""

from __future__ import annotations

import argparse
import errno
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3                     # linux/netfilter/nfnetlink.h
NFNETLINK_V0 = 0
# enum nfqnl_msg_types; the netlink type is (subsystem << 8) | message
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
# enum nfqnl_msg_config_cmds
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
# enum nfqnl_config_mode
NFQNL_COPY_META = 1
# enum nfqnl_attr_config
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_GSO = 0x1, 0x4
# enum nfqnl_attr_type
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_ACCEPT = 1
# linux/netlink.h
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLA_TYPE_MASK = ~0xC000 & 0xFFFF          # strip NLA_F_NESTED | NLA_F_NET_BYTEORDER

NLMSGHDR = struct.Struct("=IHHII")        # len, type, flags, seq, pid: host byte order
NFGENMSG = struct.Struct("!BBH")          # family, version, res_id: res_id big-endian
NLATTR = struct.Struct("=HH")             # len, type: host byte order; payloads here are big-endian

QUEUE_MAXLEN = 65536                      # packets the kernel may hold for us (default 1024)
RCVBUF = 8 << 20
ENOBUFS_WARN_EVERY = 1000
RECEIVE_BATCH = 256                       # datagrams read between releases
VERDICTS_PER_SEND = 1024                  # 32 bytes each; one send must fit the socket's sndbuf


def align4(n: int) -> int:                # NLMSG_ALIGN and NFA_ALIGN (NLA_ALIGNTO == 4)
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes (nla_len excludes the padding)."""
    raw = NLATTR.pack(NLATTR.size + len(payload), kind) + payload
    return raw.ljust(align4(len(raw)), b"\0")


def message(msg: int, queue: int, attrs: bytes, flags: int = NLM_F_REQUEST, seq: int = 0) -> bytes:
    """An nfnetlink_queue message: nlmsghdr + nfgenmsg (AF_UNSPEC, v0, queue) + attributes."""
    body = NFGENMSG.pack(socket.AF_UNSPEC, NFNETLINK_V0, queue) + attrs
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, flags, seq, 0) + body


def verdict(queue: int, packet_id: int) -> bytes:
    # struct nfqnl_msg_verdict_hdr { __be32 verdict; __be32 id; }
    return message(NFQNL_MSG_VERDICT, queue, attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id)))


def config(queue: int, command: int, seq: int, setup: bool) -> bytes:
    # struct nfqnl_msg_config_cmd { __u8 command; __u8 _pad; __be16 pf; }
    attrs = attr(NFQA_CFG_CMD, struct.pack("!BxH", command, socket.AF_UNSPEC))
    if setup:
        # struct nfqnl_msg_config_params { __be32 copy_range; __u8 copy_mode; } __packed
        attrs += attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))
        attrs += attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN))
        # GSO: take big segments whole instead of having the kernel split them for us
        flags = struct.pack("!I", NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO)
        attrs += attr(NFQA_CFG_FLAGS, flags) + attr(NFQA_CFG_MASK, flags)
    return message(NFQNL_MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK, seq)


def messages(data: bytes):
    """(type, payload after nlmsghdr) for each netlink message of a datagram."""
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size:
            break
        yield kind, data[offset + NLMSGHDR.size: offset + length]
        offset += align4(length)


def packet_id(payload: bytes) -> int | None:
    """The id from NFQA_PACKET_HDR (struct nfqnl_msg_packet_hdr { __be32 packet_id; ... })."""
    offset = NFGENMSG.size
    while offset + NLATTR.size <= len(payload):
        length, kind = NLATTR.unpack_from(payload, offset)
        if length < NLATTR.size:
            break
        if kind & NLA_TYPE_MASK == NFQA_PACKET_HDR:
            return struct.unpack_from("!I", payload, offset + NLATTR.size)[0]
        offset += align4(length)
    return None


class Failure(Exception):
    """An error to report as one line."""


class Shaper:
    def __init__(self, queue: int, delay: float, jitter: float, seed: int | None, reorder: bool):
        self.queue, self.delay, self.jitter, self.reorder = queue, delay, jitter, reorder
        self.rng = random.Random(seed)
        self.held: list[tuple[float, int]] = []   # heap of (due, packet id)
        self.last_due = 0.0
        self.delayed = self.enobufs = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        for option in (33, socket.SO_RCVBUF):     # 33 = SO_RCVBUFFORCE (needs NET_ADMIN)
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, option, RCVBUF)
                break
            except OSError:
                pass
        self.sock.bind((0, 0))                    # the kernel picks our port id

    def configure(self, command: int, setup: bool = False) -> None:
        """Send a config message and wait for its ack (an NLMSG_ERROR, 0 = success)."""
        seq = command
        self.sock.send(config(self.queue, command, seq, setup))
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            if not select.select([self.sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
                break
            for kind, payload in messages(self.sock.recv(65536)):
                if kind == NLMSG_ERROR:
                    code, = struct.unpack_from("=i", payload)   # struct nlmsgerr { int error; nlmsghdr msg; }
                    seq_acked = NLMSGHDR.unpack_from(payload, 4)[3]
                    if seq_acked == seq:
                        if code:
                            raise OSError(-code, os.strerror(-code))
                        return
                elif kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:   # a packet before the ack: hold it
                    self.hold(payload)
        raise OSError(errno.ETIMEDOUT, "no answer from the kernel")

    def hold(self, payload: bytes) -> None:
        pid = packet_id(payload)
        if pid is None:
            return
        spread = self.rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        due = time.monotonic() + max(0.0, self.delay + spread)
        if not self.reorder:
            due = max(due, self.last_due)         # FIFO: never before the packet ahead
        self.last_due = due
        heapq.heappush(self.held, (due, pid))
        self.delayed += 1

    def release(self, everything: bool = False) -> None:
        """ACCEPT every packet that is due (or all), in one send of concatenated verdicts."""
        now, out = time.monotonic(), []
        while self.held and (everything or self.held[0][0] <= now):
            out.append(verdict(self.queue, heapq.heappop(self.held)[1]))
            if len(out) == VERDICTS_PER_SEND:
                self.sock.send(b"".join(out))
                out = []
        if out:
            self.sock.send(b"".join(out))

    def receive(self) -> bool:
        """Read the datagrams waiting on the socket (non-blocking), a bounded batch so
        that a flood of arrivals cannot starve the release of due packets.
        True if more may be waiting."""
        for _ in range(RECEIVE_BATCH):
            try:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return False
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                # The socket overflowed; with FAIL_OPEN those packets were accepted undelayed.
                if self.enobufs % ENOBUFS_WARN_EVERY == 0:
                    print(f"shaper: queue {self.queue}: receive buffer overflowed, "
                          "some packets passed undelayed", file=sys.stderr, flush=True)
                self.enobufs += 1
                continue
            for kind, payload in messages(data):
                if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    self.hold(payload)
                # NLMSG_ERROR here answers a verdict for a packet already gone: nothing to do
        return True

    def run(self, wakeup: socket.socket) -> None:
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        poller.register(wakeup, select.POLLIN)
        while True:
            timeout_ms = None
            if self.held:
                timeout_ms = max(0.0, (self.held[0][0] - time.monotonic()) * 1000)
            ready = {fd for fd, _ in poller.poll(timeout_ms)}
            if wakeup.fileno() in ready:          # SIGTERM / SIGINT
                return
            if self.sock.fileno() in ready:
                self.receive()
            self.release()

    def close(self) -> None:
        """Accept everything held or waiting, then unbind, so no packet is stuck."""
        try:
            deadline = time.monotonic() + 1
            while self.receive() and time.monotonic() < deadline:
                self.release(everything=True)
            self.release(everything=True)
            self.configure(NFQNL_CFG_CMD_UNBIND)
            self.release(everything=True)         # any that arrived while unbinding
        except OSError:
            pass
        self.sock.close()


def parse(argv: list[str] | None) -> argparse.Namespace:
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            self.exit(2, f"shaper: error: {message} (see --help)\n")

    def milliseconds(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 <= value <= 3_600_000:
            raise argparse.ArgumentTypeError(f"invalid milliseconds {text!r} (0 to 3600000)")
        return value

    def queue_num(text: str) -> int:
        if not text.isdigit() or int(text) > 65535:
            raise argparse.ArgumentTypeError(f"invalid queue number {text!r} (0-65535)")
        return int(text)

    p = Parser(prog="shaper", description="Delay the packets of an NFQUEUE (netem-style delay without netem).")
    p.add_argument("--queue", type=queue_num, required=True, help="NFQUEUE number (iptables --queue-num)")
    p.add_argument("--delay", type=milliseconds, required=True, help="delay in ms added to every packet")
    p.add_argument("--jitter", type=milliseconds, default=0.0, help="uniform +-jitter in ms (default 0)")
    p.add_argument("--seed", type=int, help="seed for the jitter's random numbers")
    p.add_argument("--reorder", action="store_true", help="let jitter reorder packets (default: FIFO)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # Signals only write to this socket pair, which wakes poll(); the loop then exits cleanly.
    wakeup, notify = socket.socketpair()
    notify.setblocking(False)
    signal.set_wakeup_fd(notify.fileno(), warn_on_full_buffer=False)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    shaper = None
    try:
        try:
            shaper = Shaper(args.queue, args.delay / 1000, args.jitter / 1000, args.seed, args.reorder)
            shaper.configure(NFQNL_CFG_CMD_BIND, setup=True)
        except OSError as exc:
            hint = " (needs NET_ADMIN)" if exc.errno == errno.EPERM else \
                " (another shaper holds it)" if exc.errno == errno.EBUSY else ""
            raise Failure(f"cannot bind queue {args.queue}: {exc.strerror}{hint}") from None
        print(f"shaper: queue {args.queue} delay {args.delay:g} jitter {args.jitter:g} ready", flush=True)
        try:
            shaper.run(wakeup)
        except OSError as exc:
            raise Failure(f"queue {args.queue}: {exc.strerror or exc}") from None
        shaper.close()
        print(f"shaper: queue {args.queue} done: {shaper.delayed} packets delayed, "
              f"{shaper.enobufs} receive overflows", flush=True)
        return 0
    except Failure as exc:
        print(f"shaper: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if shaper is not None and shaper.sock.fileno() != -1:
            shaper.close()


if __name__ == "__main__":
    sys.exit(main())
