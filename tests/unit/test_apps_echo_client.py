"""echo_client on loopback: echoes, socket options, and each failure with its own status."""

import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import termios
import time

import pytest

SIGPIPE_DEATH = -signal.SIGPIPE


@pytest.fixture
def refusing_port():
    """A loopback port that refuses connections: bound (so no one else takes it), not listening."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def client_for(run_app, server, *args):
    return run_app("echo_client", "127.0.0.1", "--port", server.port, *args)


def test_lines_come_back_in_line_mode(app_server, run_app):
    server = app_server()
    client = client_for(run_app, server)
    client.send("hello\nworld\nno newline")
    client.close_stdin()
    assert client.finish() == 0
    assert client.stdout() == "hello\nworld\nno newline\n"
    assert client.stderr() == ""


def test_driven_through_a_pseudo_terminal_each_echo_shows_at_once(app_server):
    server = app_server()
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO  # only the client's output comes back, not the typing
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    client = subprocess.Popen([sys.executable, "-m", "netbed.apps.echo_client", "127.0.0.1", "--port",
                               str(server.port)], stdin=slave, stdout=slave, stderr=subprocess.DEVNULL)
    os.close(slave)
    try:
        os.write(master, b"typed by hand\n")
        seen, deadline = b"", time.monotonic() + 10
        while b"typed by hand\r\n" not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                seen += os.read(master, 1024)
        assert seen == b"typed by hand\r\n"
        os.write(master, b"\x04")  # ^D: end of input
        assert client.wait(10) == 0
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        os.close(master)


def test_lines_come_back_in_select_mode_after_a_half_close(app_server, run_app):
    server = app_server()
    client = client_for(run_app, server, "--mode", "select", "--report")
    client.send("a\nb\n")
    client.close_stdin()
    assert client.finish() == 0
    assert client.stdout() == "a\nb\n"
    assert [e["event"] for e in client.events(stream="stderr")][-2:] == ["shutdown", "done"]


def test_interval_mode_prints_numbered_echoes_with_round_trip_times(app_server, run_app):
    server = app_server()
    client = client_for(run_app, server, "--interval", "0.01", "--count", "3")
    assert client.finish() == 0
    assert [re.fullmatch(r"line (\d) \(rtt \d+\.\d{3} ms\)\n", line)[1] for line in client.lines["stdout"]] == [
        "1", "2", "3"]


def test_several_connections_are_all_closed_at_the_end(app_server, run_app):
    """tcpcli04: five connections, the first one used, all closed together at exit."""
    server = app_server()
    client = client_for(run_app, server, "--connections", "5")
    client.send("x\n")
    client.close_stdin()
    assert client.finish() == 0
    assert client.stdout() == "x\n"
    server.wait_event("accepted", count=5)
    server.wait_event("eof", count=5)


def test_socket_options_are_read_back_from_the_kernel(app_server, run_app):
    server = app_server()
    client = client_for(run_app, server, "--mode", "idle", "--keepalive", "--keepidle", "7", "--keepintvl", "3",
                        "--keepcnt", "4", "--user-timeout", "1500", "--linger0", "--report")
    connected = client.wait_event("connected", stream="stderr")
    assert {key: connected[key] for key in ("so_keepalive", "tcp_keepidle", "tcp_keepintvl", "tcp_keepcnt",
                                            "tcp_user_timeout", "so_linger")} == {
        "so_keepalive": 1, "tcp_keepidle": 7, "tcp_keepintvl": 3, "tcp_keepcnt": 4, "tcp_user_timeout": 1500,
        "so_linger": 0}


def test_without_switches_the_options_are_the_kernel_defaults(app_server, run_app):
    server = app_server()
    connected = client_for(run_app, server, "--mode", "idle", "--report").wait_event("connected", stream="stderr")
    assert (connected["so_keepalive"], connected["tcp_user_timeout"], connected["so_linger"]) == (0, 0, "off")


def test_linger0_resets_the_connection_at_the_peer(app_server, run_app):
    server = app_server()
    client = client_for(run_app, server, "--linger0")
    client.send("bye\n")
    client.close_stdin()
    assert client.finish() == 0
    child = server.wait_event("accepted")["child"]
    assert server.wait_event("error", pid=child)["errno"] == "ECONNRESET"


def kill_server_child(server, client, app_probe=None):
    """5.12: the child serving CLIENT dies; with APP_PROBE, wait until the client's kernel holds the FIN."""
    connected = client.wait_event("connected", stream="stderr")
    child = server.wait_event("accepted")["child"]
    os.kill(child, signal.SIGKILL)
    server.wait_event("reaped", child=child)
    if app_probe:
        app_probe.wait_until(lambda: app_probe.tcp_state(connected["local"], connected["peer"]) == "CLOSE_WAIT",
                             "the client socket in CLOSE_WAIT")


def test_next_line_after_the_server_child_died_reports_premature_termination(app_server, run_app, app_probe):
    server = app_server()
    client = client_for(run_app, server, "--report")
    client.send("one\n")
    client.wait_line("one")
    kill_server_child(server, client, app_probe)
    client.send("two\n")
    assert client.finish() == 3
    assert client.lines["stderr"][-1] == "str_cli: server terminated prematurely\n"
    assert client.events("error", stream="stderr")[0]["kind"] == "premature"


def test_select_mode_notices_the_servers_fin_without_input(app_server, run_app):
    server = app_server()
    client = client_for(run_app, server, "--mode", "select", "--report")
    kill_server_child(server, client)
    assert client.finish() == 3
    assert client.lines["stderr"][-1] == "str_cli: server terminated prematurely\n"


@pytest.mark.parametrize("sigpipe, status, message", [
    ("default", SIGPIPE_DEATH, None),
    ("ignore", 6, "str_cli: write error: EPIPE (Broken pipe)\n"),
])
def test_second_write_after_the_rst_gets_sigpipe_or_epipe(app_server, run_app, app_probe, sigpipe, status, message):
    """5.13: the first write draws an RST, the second one is the write to a reset socket."""
    server = app_server()
    client = client_for(run_app, server, "--write-twice", "--write-pause", "0.1", "--sigpipe", sigpipe, "--report")
    client.send("one\n")
    client.wait_line("one")
    kill_server_child(server, client, app_probe)
    client.send("two\n")
    assert client.finish() == status
    if message:
        assert client.lines["stderr"][-1] == message
        assert client.events("error", stream="stderr")[0]["errno"] == "EPIPE"


def test_heartbeat_declares_a_stopped_server_dead(app_server, run_app):
    """The server's kernel still ACKs, so only the application notices that nobody answers."""
    server = app_server()
    client = client_for(run_app, server, "--mode", "idle", "--heartbeat", "0.05", "--heartbeat-misses", "3",
                        "--report")
    client.wait_event("heartbeat_reply", stream="stderr")
    child = server.wait_event("accepted")["child"]
    os.kill(child, signal.SIGSTOP)
    try:
        assert client.finish() == 9
    finally:
        os.kill(child, signal.SIGCONT)
    assert client.lines["stderr"][-1] == "heartbeat: peer dead (3 heartbeats unanswered)\n"
    assert client.stdout() == ""


def test_heartbeat_echoes_are_not_shown(app_server, run_app):
    server = app_server()
    client = client_for(run_app, server, "--mode", "select", "--heartbeat", "0.01", "--report")
    client.send("a\n")
    client.wait_event("heartbeat_reply", stream="stderr", count=2)
    client.send("b\n")
    client.close_stdin()
    assert client.finish() == 0
    assert client.stdout() == "a\nb\n"


def test_refused_connection(run_app, refusing_port):
    client = run_app("echo_client", "127.0.0.1", "--port", refusing_port)
    assert client.finish() == 7
    assert client.stderr() == "tcp_connect: connect error: ECONNREFUSED (Connection refused)\n"


def test_unreachable_network(run_app):
    """TCP refuses to connect to the broadcast address before any packet is built: ENETUNREACH, locally."""
    client = run_app("echo_client", "255.255.255.255", "--port", "9")
    assert client.finish() == 8
    assert client.stderr() == "tcp_connect: connect error: ENETUNREACH (Network is unreachable)\n"


@pytest.mark.parametrize("args, message", [
    (["--port", "70000"], "invalid port '70000'"),
    (["--port", "abc"], "invalid port 'abc'"),
    ([], "the following arguments are required: host"),
    (["--keepidle", "5"], "--keepidle needs --keepalive"),
    (["--keepalive", "--keepcnt", "500"], "invalid probe count '500'"),
    (["--heartbeat", "1"], "--heartbeat needs"),
    (["--count", "3"], "--count needs --interval"),
    (["--interval", "1", "--mode", "idle"], "--interval replaces --mode"),
    (["--interval", "-1"], "invalid duration '-1'"),
])
def test_bad_switches_give_one_line_and_status_2(run_app, args, message):
    client = run_app("echo_client", *(["127.0.0.1"] if args else []), *args)
    assert client.finish() == 2
    assert len(client.lines["stderr"]) == 1 and message in client.stderr()
