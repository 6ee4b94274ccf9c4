"""echo_server on loopback: the book's server variants behave as chapter 5 says, every run."""

import os
import signal
import socket
import struct

import pytest

REPETITIONS = 20


def close_together(socks):
    for sock in socks:
        sock.close()


def test_echoes_and_reports_the_child_life_cycle(app_server, app_sockets):
    server = app_server()
    (sock,) = app_sockets(server.port)
    sock.sendall(b"hello\n")
    assert sock.recv(100) == b"hello\n"
    child = server.wait_event("accepted")["child"]
    sock.shutdown(socket.SHUT_WR)
    assert sock.recv(100) == b""
    server.wait_event("reaped", child=child, code=0)
    assert [e["event"] for e in server.events(pid=child)] == ["echoed", "eof", "exit"]


@pytest.mark.parametrize("mode, zombies", [("none", 5), ("wait", 4), ("waitpid", 0)])
def test_five_clients_closed_together_leave_the_same_zombies_every_time(app_server, app_sockets, app_probe,
                                                                        mode, zombies):
    """5.10: signals are not queued. With --coalesce the handler runs once per batch of five exits."""
    for _ in range(REPETITIONS):
        server = app_server("--sigchld", mode, "--coalesce", "5")
        socks = app_sockets(server.port, 5)
        server.wait_event("accepted", count=5)
        close_together(socks)
        released = server.wait_event("sigchld_released")
        assert released["exited"] == 5
        assert len(app_probe.zombie_children(server.pid)) == zombies
        assert released["zombies"] == zombies
        assert len(server.events("sigchld")) == (0 if mode == "none" else 1)
        server.stop()


def test_waitpid_loop_reaps_everything_without_help(app_server, app_sockets, app_probe):
    server = app_server("--sigchld", "waitpid")
    socks = app_sockets(server.port, 5)
    server.wait_event("accepted", count=5)
    close_together(socks)
    server.wait_event("reaped", count=5)
    assert app_probe.zombie_children(server.pid) == []


def test_no_handler_leaves_a_zombie_per_client(app_server, app_sockets, app_probe):
    server = app_server("--sigchld", "none")
    close_together(app_sockets(server.port, 2))
    app_probe.wait_until(lambda: len(app_probe.zombie_children(server.pid)) == 2, "two zombies")
    assert server.events("reaped") == []


def test_unguarded_accept_aborts_on_eintr(app_server, app_sockets, app_probe):
    """5.9 tcpserv02: SIGCHLD interrupts accept; the server dies with the book's message."""
    server = app_server("--sigchld", "wait", "--accept", "unguarded")
    (sock,) = app_sockets(server.port)
    child = server.wait_event("accepted")["child"]
    app_probe.wait_until(lambda: app_probe.in_accept(server.pid), "the parent blocked in accept")
    sock.close()
    assert server.finish() == 1
    assert server.stderr() == "accept error: Interrupted system call\n"
    names = [e["event"] for e in server.events(pid=server.pid)]
    assert names[-5:] == ["sigchld", "reaped", "eintr", "error", "aborted"]
    assert server.events("reaped")[0]["child"] == child
    assert server.events("error")[0]["errno"] == "EINTR"


def test_guarded_accept_restarts_after_eintr(app_server, app_sockets, app_probe):
    server = app_server("--sigchld", "wait", "--accept", "guarded")
    (first,) = app_sockets(server.port)
    server.wait_event("accepted")
    app_probe.wait_until(lambda: app_probe.in_accept(server.pid), "the parent blocked in accept")
    first.close()
    server.wait_event("eintr", call="accept", action="restart")
    (second,) = app_sockets(server.port)
    second.sendall(b"still here\n")
    assert second.recv(100) == b"still here\n"
    assert server.proc.poll() is None


def test_rst_before_accept_gives_the_aborted_connection(app_server, app_sockets):
    """5.11 on Linux: accept returns the connection; getpeername ENOTCONN, the first read ECONNRESET."""
    server = app_server("--accept-delay", "0.5")
    server.wait_event("accept_delay")
    (sock,) = app_sockets(server.port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    child = server.wait_event("accepted")["child"]
    assert server.wait_event("error", pid=server.pid)["errno"] == "ENOTCONN"
    assert server.wait_event("error", pid=child)["errno"] == "ECONNRESET"
    server.wait_event("reaped", child=child, code=1)


def test_close_delay_holds_close_wait_and_fin_wait_2(app_server, app_sockets, app_probe):
    """5.7: with the child's close delayed, the four-segment close can be watched half-way."""
    server = app_server("--close-delay", "30")
    (sock,) = app_sockets(server.port)
    server.wait_event("accepted")
    local = "%s:%d" % sock.getsockname()
    sock.shutdown(socket.SHUT_WR)
    server.wait_event("close_delay")
    remote = f"127.0.0.1:{server.port}"
    assert app_probe.wait_until(lambda: app_probe.tcp_state(local, remote) == "FIN_WAIT2", "client in FIN_WAIT_2")
    assert app_probe.tcp_state(remote, local) == "CLOSE_WAIT"


def test_parent_that_forgets_to_close_keeps_the_connection_open(app_server, app_sockets, app_probe):
    """4.8: the child closes and exits, yet the server's end stays in CLOSE_WAIT, held by the parent."""
    server = app_server("--bug-no-close")
    (sock,) = app_sockets(server.port)
    child = server.wait_event("accepted")["child"]
    local = "%s:%d" % sock.getsockname()
    sock.shutdown(socket.SHUT_WR)
    server.wait_event("reaped", child=child)
    inodes = {os.readlink(f"/proc/{server.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{server.pid}/fd")}
    held = [row for row in app_probe.tcp_rows() if f"socket:[{row['inode']}]" in inodes and row["remote"] == local]
    assert [row["state"] for row in held] == ["CLOSE_WAIT"]
    # the server's ACK of our FIN may still be on its way (loopback under load): FIN_WAIT_1 until it lands
    assert app_probe.wait_until(lambda: app_probe.tcp_state(local, f"127.0.0.1:{server.port}") == "FIN_WAIT2",
                                "client in FIN_WAIT_2")


def test_sigterm_stops_the_server_and_its_children(app_server, app_sockets):
    server = app_server()
    app_sockets(server.port, 2)
    children = [e["child"] for e in server.wait_event("accepted", count=2)]
    server.proc.send_signal(signal.SIGTERM)
    assert server.finish() == 0
    assert server.events("terminated")[0]["children"] == 2
    assert sorted(e["child"] for e in server.events("reaped", signal="SIGTERM")) == sorted(children)
    for child in children:
        assert not os.path.exists(f"/proc/{child}")


@pytest.mark.parametrize("args, message", [
    (["--port", "70000"], "invalid port '70000'"),
    (["--port", "abc"], "invalid port 'abc'"),
    (["--bind", "abc"], "invalid IPv4 address 'abc'"),
    (["--sigchld", "sometimes"], "invalid choice"),
    (["--coalesce", "0"], "invalid positive integer"),
])
def test_bad_switches_give_one_line_and_status_2(run_app, args, message):
    server = run_app("echo_server", *args)
    assert server.finish() == 2
    assert len(server.lines["stderr"]) == 1 and message in server.stderr()


def test_port_in_use_is_one_clear_line(app_server, run_app):
    first = app_server()
    second = run_app("echo_server", "--bind", "127.0.0.1", "--port", first.port, "--no-reuseaddr")
    assert second.finish() == 1
    assert second.stderr() == "bind error: Address already in use\n"
    assert second.events("error")[0]["errno"] == "EADDRINUSE"
