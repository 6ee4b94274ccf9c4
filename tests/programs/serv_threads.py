"""serv_threads.py -- a threaded echo server, as a Python student writes it.

Mirrors:  the book's fork-per-client echo server (tcpserv04 + str_echo,
          UNP 5.2-5.10) with a thread per client instead of a child process:
          socketserver.ThreadingTCPServer, a StreamRequestHandler that echoes
          line by line, SO_REUSEADDR (allow_reuse_address), backlog 5.
Usage:    python3 serv_threads.py <port>
Verdict:  RIGHT as an echo server; one process, so no children: no zombie,
          no SIGCHLD, no EINTR to survive (Python retries EINTR itself, PEP 475).
          A reset client costs a traceback on stderr, not the server.
Caught by: concurrent-server must say it serves every client from one process
          (threads), not fork-per-client; the zombie/SIGCHLD/EINTR scenarios
          have no child to judge and must say so (not judged).
"""

import socketserver
import sys


class EchoHandler(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:         # one line at a time, until EOF
            self.wfile.write(line)


class EchoServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True          # SO_REUSEADDR
    daemon_threads = True


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: serv_threads.py <port>")
    with EchoServer(("", int(sys.argv[1])), EchoHandler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
