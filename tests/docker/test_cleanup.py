"""Nothing outlives a run: interrupted runs tear down, killed runs are cleaned, foreign things survive."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

from netbed.backend import guard
from netbed.backend.compose import engine, engines
from netbed.observe import WaitTimeout, wait_for
from netbed.scenarios import CATALOGUE
from netbed.backend.compose.testbed import LABEL_OWNER, LABEL_PROJECT, STATE_FILE, Testbed, clean, leftovers


def netbed_things(cli, pid: int) -> set[str]:
    """What the netbed process `pid` made (other runs may be going on at the same time)."""
    label = {"label": f"{LABEL_OWNER}={socket.gethostname()}:{pid}"}
    return ({f"container {c.name}" for c in cli.containers.list(all=True, filters=label)}
            | {f"network {n.name}" for n in cli.networks.list(filters=label)})


def start_run(tmp_path) -> subprocess.Popen:
    """`netbed run server-host-crash` (it waits ~13 s on TCP timers: time to interrupt it).

    SIGINT is given back its default: under a shell's background job (`make test &`,
    a CI runner) it arrives ignored, and an ignored Ctrl-C is not what is tested here.
    """
    return subprocess.Popen([sys.executable, "-m", "netbed", "run", "server-host-crash", "--out", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, bufsize=0,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_until_crashed(proc, cli, timeout: float = 60) -> None:
    """Read the run's progress until it says the server crashed (the run then waits on TCP timers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], deadline - time.monotonic())
        line = proc.stderr.readline() if ready else b""
        if b"crash server" in line:
            assert netbed_things(cli, proc.pid), "the run has a testbed up"
            return
        if not line:
            break
    raise AssertionError("the run never reached its crash")


@pytest.fixture
def foreign(docker_engine):
    """A container and a network that are not netbed's, which no cleanup may touch."""
    name = f"foreign-{uuid.uuid4().hex[:8]}"
    net = docker_engine.networks.create(name, internal=True)
    box = docker_engine.containers.run("netbed-host:latest", ["sleep", "infinity"], name=name, network=name,
                                       detach=True, init=True)
    yield name
    box.remove(force=True)
    net.remove()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_tears_its_testbed_down(sig, tmp_path, docker_engine, foreign):
    proc = start_run(tmp_path)
    wait_until_crashed(proc, docker_engine)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == 128 + sig
    assert netbed_things(docker_engine, proc.pid) == set()
    assert docker_engine.containers.get(foreign).status == "running"


class Lines:
    """A process's stream, read line by line in the background, so a test can wait for a line."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line.rstrip())

    def wait(self, pattern: str, timeout: float = 180) -> int:
        """The index of the first line that matches."""
        regex = re.compile(pattern)
        try:
            return wait_for(lambda: next((i for i, line in enumerate(self.lines) if regex.search(line)), None),
                            lambda i: i is not None, timeout=timeout, what=f"a line matching {pattern!r}")
        except WaitTimeout as exc:
            raise AssertionError(f"{exc}; the last lines:\n" + "\n".join(self.lines[-20:])) from None

    def text(self) -> str:
        self._thread.join(timeout=30)
        return "\n".join(self.lines)


@pytest.fixture
def interruptible():
    """Start a process as from a terminal: a process group of its own, SIGINT given back its default (a
    background shell starts it ignored). One a failed test leaves running is stopped with SIGTERM."""
    started: list[subprocess.Popen] = []

    def start(argv: list[str], cwd=None) -> subprocess.Popen:
        started.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                                        start_new_session=True,
                                        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)


def send(proc: subprocess.Popen, sig: int) -> None:
    """SIGINT as Ctrl-C sends it, to the whole process group (docker and compose children too); SIGTERM
    as a supervisor sends it, to the process alone."""
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_all_stops_within_10_s_of_a_signal_tears_down_and_prints_what_ran(sig, tmp_path, docker_engine, foreign,
                                                                             interruptible):
    """`run --all --jobs 2`, signalled once scenarios have finished and server-host-crash waits on TCP timers."""
    proc = interruptible([sys.executable, "-m", "netbed", "run", "--all", "--jobs", "2", "--out", str(tmp_path)])
    progress = Lines(proc.stderr)
    names = [s.name for s in CATALOGUE]
    finished = progress.wait(rf"^[✓✗] ({'|'.join(map(re.escape, names))}): ")
    crashed = progress.wait(r"^  server-host-crash: crash server|^[✓✗] server-host-crash: ")
    assert "crash server" in progress.lines[crashed], "server-host-crash ended before its crash:\n" + "\n".join(
        progress.lines)
    # it now waits ~13 s on the client's retransmissions: it is surely running when the signal comes
    done_name = re.match(r"^\S+ (\S+):", progress.lines[finished]).group(1)
    signalled = time.monotonic()
    send(proc, sig)
    code = proc.wait(timeout=60)
    took = time.monotonic() - signalled
    print(f"exited {took:.1f} s after {signal.Signals(sig).name}")  # the figure, also when it passes (-s)
    summary = proc.stdout.read()
    assert code == 128 + sig, progress.text()
    assert took < 10, f"exited {took:.1f} s after {signal.Signals(sig).name}"
    assert netbed_things(docker_engine, proc.pid) == set()
    assert docker_engine.containers.get(foreign).status == "running"
    verdicts = {name: verdict for verdict, name in re.findall(r"^(PASS|FAIL|STOP) +(\S+)", summary, re.M)}
    assert verdicts.get(done_name) in ("PASS", "FAIL"), summary
    assert verdicts.get("server-host-crash") == "STOP", summary
    last = summary.strip().splitlines()[-1]
    assert f"stopped by {signal.Signals(sig).name}" in last, summary
    not_run = re.search(r"(\d+) not run \(([^)]*)\)", last)
    assert not_run and int(not_run.group(1)) >= 1, last
    assert len(verdicts) + int(not_run.group(1)) == len(names), "every scenario is accounted for"
    assert not set(not_run.group(2).split(", ")) & set(verdicts), "a scenario that did not run has no verdict"
    for name in not_run.group(2).split(", "):
        assert not (tmp_path / name / "report.json").exists(), f"{name} did not run"
    assert (tmp_path / done_name / "report.json").is_file()
    assert "Traceback" not in progress.text()


SLOW_TEST = '''
def test_waits_long(testbed, program):
    client = program("client", ["python3", "-m", "netbed.apps.echo_client", testbed.host("server").ip])
    print("testbed up", testbed.project, flush=True)
    client.expect_output("never printed", timeout=120)
'''


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signalled_pytest_run_tears_the_testbed_down_and_exits_promptly(sig, tmp_path, docker_engine, foreign,
                                                                          interruptible):
    """Ctrl-C, or SIGTERM as a CI runner cancelling a job sends it, in the middle of a test's wait."""
    test = tmp_path / "test_slow.py"
    test.write_text(SLOW_TEST)
    proc = interruptible([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", str(test)],
                         cwd=tmp_path)
    output = Lines(proc.stdout)
    project = re.search(r"testbed up (\S+)", output.lines[output.wait(r"testbed up ")]).group(1)
    assert netbed_things(docker_engine, proc.pid)
    signalled = time.monotonic()
    send(proc, sig)
    code = proc.wait(timeout=60)
    took = time.monotonic() - signalled
    assert code == 2, output.text()  # pytest's "interrupted"
    assert took < 10, f"exited {took:.1f} s after {signal.Signals(sig).name}"
    assert "KeyboardInterrupt" in output.text()
    assert netbed_things(docker_engine, proc.pid) == set()
    assert not docker_engine.containers.list(all=True, sparse=True, filters={"label": f"{LABEL_PROJECT}={project}"})
    assert docker_engine.containers.get(foreign).status == "running"


def test_a_run_whose_testbed_is_torn_down_under_it_says_so_in_one_line_and_still_reports(tmp_path, docker_engine,
                                                                                          interruptible):
    """`netbed down -p P` from another process while a run waits on P's TCP timers."""
    proc = interruptible([sys.executable, "-m", "netbed", "run", "server-host-crash", "--out", str(tmp_path)])
    progress = Lines(proc.stderr)
    progress.wait(r"^  server-host-crash: crash server")
    owned = {"label": f"{LABEL_OWNER}={socket.gethostname()}:{proc.pid}"}
    (project,) = {c.attrs["Labels"][LABEL_PROJECT] for c in docker_engine.containers.list(sparse=True, filters=owned)}
    down = subprocess.run([sys.executable, "-m", "netbed", "down", "-p", project], capture_output=True, text=True)
    assert down.returncode == 0, down.stderr
    assert proc.wait(timeout=60) == 1
    summary, said = proc.stdout.read(), progress.text()
    assert f"✗ server-host-crash: the testbed {project} was torn down from outside during the run" in said, said
    lines = summary.strip().splitlines()
    assert lines[-3].startswith("FAIL server-host-crash"), summary
    assert lines[-2].strip().startswith(f"✗ the testbed {project} was torn down from outside during the run"), summary
    assert lines[-1] == "0 passed, 1 failed, 0 not judged", summary
    assert "Error" not in said + summary and "Traceback" not in said + summary
    report = json.loads((tmp_path / "server-host-crash" / "report.json").read_text())
    assert report["passed"] is False and "torn down from outside" in report["vanished"]
    assert netbed_things(docker_engine, proc.pid) == set()


def test_clean_removes_what_a_killed_run_left_and_nothing_else(tmp_path, docker_engine, foreign):
    proc = start_run(tmp_path)
    wait_until_crashed(proc, docker_engine)
    proc.kill()
    proc.wait(timeout=30)
    left = netbed_things(docker_engine, proc.pid)
    assert left, "SIGKILL gives no chance to tear down: something is left"
    listed = subprocess.run([sys.executable, "-m", "netbed", "clean", "--dry-run"], capture_output=True, text=True)
    assert listed.returncode == 0 and "would remove" in listed.stdout
    assert netbed_things(docker_engine, proc.pid) == left, "--dry-run removes nothing"
    done = subprocess.run([sys.executable, "-m", "netbed", "clean"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert netbed_things(docker_engine, proc.pid) == set()
    assert docker_engine.containers.get(foreign).status == "running"
    assert docker_engine.networks.get(foreign).name == foreign


def test_clean_never_takes_a_live_runs_testbed_for_a_leftover_however_old(tmp_path, docker_engine):
    """Dry runs (what a real clean removes is exactly what it lists): a real one here would also remove
    what other tests' killed runs left, which those tests are about to look at."""
    with Testbed.up(run_dir=tmp_path / "live") as bed:  # owned by this (live) process
        for args in (["--older-than", "0s"], []):
            done = subprocess.run([sys.executable, "-m", "netbed", "clean", "--dry-run", *args], capture_output=True,
                                  text=True)
            assert done.returncode == 0, done.stderr
            assert f"(project {bed.project}," not in done.stdout, "a live run listed:\n" + done.stdout
            assert bed.status("server") == "running"


def test_plain_clean_leaves_a_kept_testbed_and_says_how_to_remove_it(tmp_path, docker_engine):
    kept = subprocess.run([sys.executable, "-m", "netbed", "run", "concurrent-server", "--keep",
                           "--out", str(tmp_path)], capture_output=True, text=True)
    project = re.search(r"netbed down -p (\S+?)`", kept.stderr).group(1)
    try:
        for args in ([], ["--older-than", "0s"]):  # dry runs, as above
            done = subprocess.run([sys.executable, "-m", "netbed", "clean", "--dry-run", *args], capture_output=True,
                                  text=True)
            assert done.returncode == 0, done.stderr
            assert f"(project {project}," not in done.stdout, done.stdout
            assert re.search(rf"kept up on purpose, left alone: .*\b{project}\b.*`netbed down -p PROJECT`.*"
                             r"`netbed clean --kept`", done.stdout), done.stdout
            assert docker_engine.containers.list(sparse=True, filters={"label": f"{LABEL_PROJECT}={project}"})
        listed = subprocess.run([sys.executable, "-m", "netbed", "clean", "--kept", "--dry-run"],
                                capture_output=True, text=True)
        assert f"would remove network {project}" in listed.stdout, listed.stdout
    finally:
        down = subprocess.run([sys.executable, "-m", "netbed", "down", "-p", project], capture_output=True, text=True)
    assert down.returncode == 0, down.stderr
    assert not docker_engine.containers.list(all=True, sparse=True, filters={"label": f"{LABEL_PROJECT}={project}"})


@pytest.mark.engine_stop
def test_the_engine_stopping_mid_run_gets_one_line_and_clean_recovers(tmp_path, docker_engine):
    """Stops the local dockerd, so it runs alone (`make test` runs the engine_stop tests after the rest).

    The dockerd that DOCKER_HOST names (its pid file is beside its socket), never another: on netbed's second
    engine it is that one, and it is started again as `make test` starts it."""
    pidfile = guard.engine_pidfile()
    second = next((rel for rel in engines.RELEASES.values() if rel.host == engine.engine_host()), None)
    recover = ([sys.executable, "-m", "netbed.backend.compose.engines", "start", second.short] if second else
               [sys.executable, "-m", "netbed", "doctor", "--fix"])
    proc = start_run(tmp_path)
    wait_until_crashed(proc, docker_engine)
    pid = open(pidfile).read().strip()
    subprocess.run(["kill", "-TERM", pid], check=True)
    try:
        _, err = proc.communicate(timeout=120)
        last = err.decode().strip().splitlines()[-1]
        assert proc.returncode == 1
        assert last.startswith("netbed: the Docker Engine stopped answering during server-host-crash"), last
        assert "Traceback" not in err.decode()
    finally:
        fixed = subprocess.run(recover, capture_output=True, text=True)
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    cleaned = subprocess.run([sys.executable, "-m", "netbed", "clean"], capture_output=True, text=True)
    assert cleaned.returncode == 0, cleaned.stderr
    assert netbed_things(docker_engine, proc.pid) == set()


def test_a_kept_testbed_whose_run_folder_is_gone_is_named_with_how_to_remove_it(tmp_path, docker_engine):
    """`netbed down -p` cannot attach to a testbed whose state file went away; it says so, and clean --kept does it."""
    project = f"gone-{uuid.uuid4().hex[:6]}"
    try:  # from its `up` on: whatever fails, this testbed goes
        up = subprocess.run([sys.executable, "-m", "netbed", "up", "-p", project], cwd=tmp_path, capture_output=True,
                            text=True)
        assert up.returncode == 0 and f"tear down: netbed down -p {project}" in up.stdout, up.stdout + up.stderr
        states = list(tmp_path.rglob(STATE_FILE))
        assert states, f"no {STATE_FILE} under {tmp_path}"
        for state in states:
            state.unlink()
        down = subprocess.run([sys.executable, "-m", "netbed", "down", "-p", project], capture_output=True, text=True)
        assert down.returncode == 1 and "Traceback" not in down.stderr
        assert down.stderr.strip() == (f"netbed: {project} is up but its run folder's state is gone (removed, or its "
                                       "`up` was cut short): `netbed clean --kept` removes it"), down.stderr
        listed = subprocess.run([sys.executable, "-m", "netbed", "clean", "--kept", "--dry-run"],
                                capture_output=True, text=True)
        assert f"(project {project}," in listed.stdout, listed.stdout
    finally:  # only this one: another test's kept testbed may be up at the same moment
        clean([item for item in leftovers(kept=True) if item.project == project])
    assert not docker_engine.containers.list(all=True, sparse=True, filters={"label": f"{LABEL_PROJECT}={project}"})
