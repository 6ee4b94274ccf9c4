"""Other Docker Engine versions side by side with the machine's own, to test netbed on them.

netbed's suite runs on the machine's engine (Debian 12's docker.io, 20.10)
and again on a second engine, Debian 13's docker.io 26.1 with its containerd
1.7, which this module sets up without touching the first:

- `fetch()` downloads the two packages with apt from a private apt folder
  (its own sources list, lists and cache: the machine's apt sources and
  packages stay as they are) and unpacks them with `dpkg -x` into
  /var/lib/netbed/engines/docker-26.1/, never over the installed docker.io.
  It uses the machine's runc (Debian 13's needs a newer glibc).
- `start()` runs that containerd and dockerd in a network namespace of their
  own (`ip netns add netbed-docker26`), with their own data root, exec root,
  socket (unix:///run/netbed-docker26.sock), pid files and cgroup parent. In
  the machine's namespace a second daemon would meet the first's iptables
  (its FORWARD DROP) and fight over docker0; in its own, its bridges,
  iptables and docker0 are its own. They stay in the machine's mount
  namespace: the machine's mounts are private, so a daemon in a mount
  namespace of its own would not see a folder mounted after it started, and
  would bind an empty directory in its place. netbed still reaches every
  container from the machine with nsenter (one PID namespace), and a capture
  container on the daemon's "host" network is in the daemon's namespace,
  where the bridges are.
- `load_images()` copies the images the tests build on from the first
  engine (`docker save | docker load`: no registry is involved).
- `stop()` stops both daemons, ends whatever is left in the namespace and
  the daemon's control groups, unmounts what they left mounted, and removes
  the namespace, socket and pid files.

`python -m netbed.backend.compose.engines start|stop|status` does each (as root).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from netbed.backend import EngineError
from netbed.backend.compose import engine
from netbed.backend.namespaces import alive
from netbed.observe import WaitTimeout, wait_for
from netbed.progress import Event, Reporter, silent, step

ENGINES = Path("/var/lib/netbed/engines")
DEBIAN = "http://deb.debian.org/debian"
START_DEADLINE = 60.0
STOP_DEADLINE = 40.0  # dockerd gives running containers 15 s to stop, then kills them


@dataclass(frozen=True)
class Release:
    """A Docker Engine from Debian packages: which suite, which upstream versions, and where it lives here."""

    short: str                          # "26.1": how the Makefile and the tests name it
    suite: str                          # the Debian suite whose docker.io it is
    packages: tuple[tuple[str, str], ...]  # (package, upstream version its Debian version must start with)
    name: str                           # "docker26": the namespace, socket, pid files and cgroup parent

    @property
    def root(self) -> Path:
        return ENGINES / f"docker-{self.short}"

    @property
    def files(self) -> Path:
        return self.root / "files"     # the packages' files (dpkg -x)

    @property
    def data(self) -> Path:
        return self.root / "data"      # dockerd's --data-root (its images stay between runs); containerd's root

    @property
    def run(self) -> Path:
        return Path("/run") / f"netbed-{self.name}"  # exec root, containerd's state and socket

    @property
    def netns(self) -> str:
        return f"netbed-{self.name}"

    @property
    def socket(self) -> Path:
        return Path("/run") / f"netbed-{self.name}.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pidfile(self) -> Path:
        """Beside the socket, as /var/run/docker.pid is beside /var/run/docker.sock (netbed.backend.guard reads it)."""
        return self.socket.with_suffix(".pid")

    @property
    def containerd_pidfile(self) -> Path:
        return self.run / "containerd.pid"

    @property
    def cgroup_parent(self) -> str:
        return f"/netbed-{self.name}"

    @property
    def log(self) -> Path:
        return self.root / "daemon.log"


RELEASES = {
    "26.1": Release("26.1", "trixie", (("docker.io", "26.1.5"), ("containerd", "1.7.24")), "docker26"),
}


def release(short: str) -> Release:
    try:
        return RELEASES[short]
    except KeyError:
        raise EngineError(f"netbed knows no engine {short!r} (known: {', '.join(RELEASES)})") from None


# --- fetching -------------------------------------------------------------------------------


def fetched(rel: Release) -> bool:
    return (rel.files / "usr/sbin/dockerd").is_file() and (rel.files / "usr/bin/containerd").is_file()


def fetch(rel: Release, report: Reporter = silent) -> None:
    """Download the release's packages into a private apt folder and unpack them under rel.files."""
    with step(report, f"Docker {rel.short} packages ({rel.suite})") as s:
        if fetched(rel):
            s.skip(str(rel.files))
            return
        _require_root(f"setting up Docker {rel.short}")
        apt = rel.root / "apt"
        (apt / "lists/partial").mkdir(parents=True, exist_ok=True)
        (apt / "cache/archives/partial").mkdir(parents=True, exist_ok=True)
        debs = rel.root / "debs"
        shutil.rmtree(debs, ignore_errors=True)
        debs.mkdir(parents=True)
        (apt / "sources.list").write_text(
            f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {DEBIAN} {rel.suite} main\n")
        options = ["-q", "-o", f"Dir::Etc::sourcelist={apt / 'sources.list'}", "-o", "Dir::Etc::sourceparts=-",
                   "-o", f"Dir::State::Lists={apt / 'lists'}", "-o", f"Dir::Cache={apt / 'cache'}",
                   "-o", "APT::Sandbox::User=root"]
        s.info(f"apt-get update ({rel.suite}, in {apt}; the machine's apt sources are not changed)")
        _run(["apt-get", *options, "update"], "apt-get update")
        names = [package for package, _ in rel.packages]
        s.info(f"apt-get download {' '.join(names)}")
        _run(["apt-get", *options, "download", *names], "apt-get download", cwd=debs)
        staging = rel.root / "files.new"
        shutil.rmtree(staging, ignore_errors=True)
        for package, upstream in rel.packages:
            found = sorted(debs.glob(f"{package}_*.deb"))
            if not found:
                raise EngineError(f"apt-get download gave no {package} package in {debs}")
            version = _run(["dpkg-deb", "-f", str(found[-1]), "Version"], "dpkg-deb").strip()
            if not is_release(version, upstream):
                raise EngineError(f"{rel.suite} now has {package} {version}, not {upstream}: "
                                  f"update netbed.backend.compose.engines.RELEASES")
            s.info(f"dpkg -x {found[-1].name}")
            _run(["dpkg", "-x", str(found[-1]), str(staging)], "dpkg -x")
        shutil.rmtree(rel.files, ignore_errors=True)
        staging.rename(rel.files)
        shutil.rmtree(debs, ignore_errors=True)


def is_release(debian_version: str, upstream: str) -> bool:
    """Whether a Debian package version is of this upstream release: "26.1.5+dfsg1-9+deb13u1+b1" is 26.1.5's
    (a later Debian revision of the same release is too), "26.1.50-1" and "1:26.1.6-1" are not."""
    version = debian_version.split(":", 1)[-1]
    return version == upstream or version.startswith((f"{upstream}+", f"{upstream}-", f"{upstream}~"))


# --- starting and stopping ------------------------------------------------------------------


def client(rel: Release, timeout: int = 60) -> docker.DockerClient:
    return docker.DockerClient(base_url=rel.host, timeout=timeout)


def answers(rel: Release) -> bool:
    try:
        client(rel, timeout=5).ping()
        return True
    except docker.errors.DockerException:
        return False


def start(rel: Release, report: Reporter = silent) -> None:
    """Fetch the release if needed and start it in its own network namespace; nothing if it already answers."""
    fetch(rel, report)
    with step(report, f"Docker {rel.short} daemon ({rel.host}, network namespace {rel.netns})") as s:
        if answers(rel):
            s.skip("answering")
            return
        _require_root(f"starting Docker {rel.short}")
        if alive(_pid(rel.pidfile)) or alive(_pid(rel.containerd_pidfile)):
            s.info("stopping what is left of a previous start")
            _stop(rel, s.info)
        for directory in (rel.data, rel.run):
            directory.mkdir(parents=True, exist_ok=True)
        _netns_add(rel)
        config = rel.run / "containerd.toml"
        config.write_text(_containerd_config(rel))
        daemon_json = rel.run / "daemon.json"  # its own: never the machine's /etc/docker/daemon.json
        daemon_json.write_text("{}\n")
        path = f"{rel.files / 'usr/bin'}:{rel.files / 'usr/sbin'}:{os.environ.get('PATH', '/usr/sbin:/usr/bin')}"
        dockerd = [str(rel.files / "usr/sbin/dockerd"), f"--host={rel.host}", f"--data-root={rel.data / 'docker'}",
                   f"--exec-root={rel.run / 'exec'}", f"--pidfile={rel.pidfile}", f"--config-file={daemon_json}",
                   f"--containerd={rel.run / 'containerd.sock'}", f"--cgroup-parent={rel.cgroup_parent}",
                   f"--userland-proxy-path={rel.files / 'usr/sbin/docker-proxy'}"]
        init = shutil.which("docker-init")  # the package's links to a tini-static it does not carry
        dockerd += [f"--init-path={init}"] if init else []
        # One shell in the network namespace starts containerd, then becomes dockerd. They stay in the
        # machine's mount namespace: a bind mount's source is a path of the machine's as it is now (the
        # machine's mounts are private, so a namespace of their own would not see one mounted later).
        script = ('"$1" --config "$2" & echo $! >"$3"; n=0; '
                  'while [ ! -S "$4" ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n+1)); done; shift 4; exec "$@"')
        argv = ["nsenter", f"--net=/run/netns/{rel.netns}", "env", f"PATH={path}", "sh", "-c", script, "sh",
                str(rel.files / "usr/bin/containerd"), str(config), str(rel.containerd_pidfile),
                str(rel.run / "containerd.sock"), *dockerd]
        s.info(f"containerd and dockerd {rel.short} (log: {rel.log})")
        with open(rel.log, "wb") as log:  # this start's log only
            proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for(lambda: answers(rel) or proc.poll() is not None, timeout=START_DEADLINE,
                     what=f"Docker {rel.short} to answer")
        except WaitTimeout:
            _stop(rel, s.info)
            raise EngineError(f"Docker {rel.short} did not answer within {START_DEADLINE:.0f} s: see {rel.log}") from None
        if not answers(rel):
            tail = rel.log.read_text(errors="replace").strip().splitlines()[-1:]
            _stop(rel, s.info)
            raise EngineError(f"Docker {rel.short} exited with status {proc.returncode}: {' '.join(tail)}")
        version = client(rel).version()
        s.info(f"answering: Docker {version.get('Version')} (API {version.get('ApiVersion')})")


def stop(rel: Release, report: Reporter = silent) -> None:
    """Stop the release's daemons and remove everything of theirs but the files and data root."""
    with step(report, f"stopping Docker {rel.short}") as s:
        if not _leftovers(rel):
            s.skip("not running")
            return
        _require_root(f"stopping Docker {rel.short}")
        _stop(rel, s.info)


def _stop(rel: Release, info) -> None:
    for pidfile, what in ((rel.pidfile, "dockerd"), (rel.containerd_pidfile, "containerd")):
        pid = _pid(pidfile)
        if pid is not None and alive(pid):
            info(f"stopping {what} (pid {pid})")
            _end(pid, STOP_DEADLINE)
        pidfile.unlink(missing_ok=True)
    netns = Path("/run/netns") / rel.netns
    if netns.exists():
        left = subprocess.run(["ip", "netns", "pids", rel.netns], capture_output=True, text=True).stdout.split()
        for word in left:  # shims, and anything else a daemon left in its namespace
            info(f"ending process {word} left in {rel.netns}")
            _end(int(word), 5)
        _run(["ip", "netns", "delete", rel.netns], "ip netns delete")
    for group in _cgroups(rel):  # containers whose shim is gone: their control groups say which processes
        for word in (group / "cgroup.procs").read_text().split() if (group / "cgroup.procs").exists() else []:
            info(f"ending process {word} left in {group}")
            _end(int(word), 5)
    for group in sorted(_cgroups(rel), key=lambda p: len(p.parts), reverse=True):
        try:
            group.rmdir()
        except OSError:
            pass
    for target in _mounts(rel):  # what the daemons mounted and did not unmount (a daemon that was killed)
        info(f"unmounting {target}")
        subprocess.run(["umount", "--lazy", target], capture_output=True)
    rel.socket.unlink(missing_ok=True)
    shutil.rmtree(rel.run, ignore_errors=True)


def _mounts(rel: Release) -> list[str]:
    """The machine's mounts under the release's data root and exec root, deepest first."""
    targets = [line.split()[1].replace("\\040", " ") for line in Path("/proc/self/mounts").read_text().splitlines()]
    mine = [t for t in targets if any(t == str(d) or t.startswith(f"{d}/") for d in (rel.data, rel.run))]
    return sorted(set(mine), key=lambda t: t.count("/"), reverse=True)


def _leftovers(rel: Release) -> list[str]:
    """What of the release is running or left on the machine (empty when it is fully stopped)."""
    found = [f"{what} (pid {pid})" for pidfile, what in ((rel.pidfile, "dockerd"), (rel.containerd_pidfile,
             "containerd")) if alive(pid := _pid(pidfile))]
    found += [f"network namespace {rel.netns}"] if (Path("/run/netns") / rel.netns).exists() else []
    found += [str(p) for p in (rel.socket, rel.run) if p.exists()]
    found += [f"control group {g}" for g in _cgroups(rel)]
    found += [f"mount {m}" for m in _mounts(rel)]
    return found


def _cgroups(rel: Release) -> list[Path]:
    root = Path("/sys/fs/cgroup")
    tops = [root / rel.cgroup_parent.lstrip("/")] + [d / rel.cgroup_parent.lstrip("/")
                                                      for d in (root.iterdir() if root.is_dir() else [])
                                                      if d.is_dir()]
    return [p for top in tops if top.is_dir() for p in [top, *(q for q in top.rglob("*") if q.is_dir())]]


def _netns_add(rel: Release) -> None:
    if not (Path("/run/netns") / rel.netns).exists():
        _run(["ip", "netns", "add", rel.netns], "ip netns add")
    _run(["ip", "netns", "exec", rel.netns, "ip", "link", "set", "lo", "up"], "ip link set lo up")


def _containerd_config(rel: Release) -> str:
    return "\n".join([
        "version = 2",
        f'root = "{rel.data / "containerd"}"',
        f'state = "{rel.run / "containerd"}"',
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        "[grpc]",
        f'  address = "{rel.run / "containerd.sock"}"',
        "[ttrpc]",
        f'  address = "{rel.run / "containerd.sock.ttrpc"}"',
        "[debug]",
        '  address = ""',
        "[metrics]",
        '  address = ""',
        "",
    ])


# --- images --------------------------------------------------------------------------------


def load_images(rel: Release, names: list[str], report: Reporter = silent) -> None:
    """Copy these images from the machine's engine (the one DOCKER_HOST names) to the release's, when it lacks them."""
    source = engine.client()
    target = client(rel, timeout=600)
    for name in names:
        with step(report, f"image {name} on Docker {rel.short}") as s:
            try:
                wanted = source.images.get(name).id
            except docker.errors.ImageNotFound:
                raise EngineError(f"image {name} is not on the machine's engine to copy: run `netbed doctor --fix`") from None
            try:
                if target.images.get(name).id == wanted:
                    s.skip("present")
                    continue
            except docker.errors.ImageNotFound:
                pass
            s.info(f"docker save {name} | docker load (to {rel.host})")
            save = subprocess.Popen(["docker", "save", name], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                    env={k: v for k, v in os.environ.items() if k != "DOCKER_HOST"})
            assert save.stdout is not None  # stdout=PIPE
            load = subprocess.run(["docker", "-H", rel.host, "load", "-q"], stdin=save.stdout,
                                  capture_output=True, text=True)
            save.stdout.close()
            if save.wait() != 0 or load.returncode != 0:
                raise EngineError(f"copying {name} to Docker {rel.short} failed: {load.stderr.strip()}")


def base_images() -> list[str]:
    """The bases netbed's host image and the tests build on, as the machine's engine has them."""
    cli = engine.client()
    names = [os.environ.get("NETBED_BASE_IMAGE", ""), engine.PUBLIC_BASE, engine.OFFLINE_BASE]
    return [name for name in dict.fromkeys(names) if name and engine.has_image(cli, name)]


# --- small helpers ------------------------------------------------------------------------


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise EngineError(f"{what} needs root")
    for tool in ("ip", "apt-get", "dpkg", "runc"):
        if not shutil.which(tool):
            raise EngineError(f"{what} needs `{tool}` (Debian: iproute2, apt, dpkg, runc)")


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise EngineError(f"`{what}` failed: {last}")
    return done.stdout


def _pid(pidfile: Path) -> int | None:
    try:
        text = pidfile.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _end(pid: int, deadline: float) -> None:
    """SIGTERM, then SIGKILL if it is still there after `deadline` seconds."""
    for sig, wait in ((signal.SIGTERM, deadline), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        try:
            wait_for(lambda: alive(pid), lambda up: not up, timeout=wait, what=f"process {pid} to end")
            return
        except WaitTimeout:
            continue  # still there: the next, harder signal


# --- command line --------------------------------------------------------------------------


def _print(event: Event) -> None:
    """One line per event: what starts, what it does, how it ended and how long it took."""
    took = f" ({event.seconds:.1f} s)" if event.seconds is not None else ""
    detail = f": {event.detail}" if event.detail else ""
    print(f"netbed engines: {event.step} {event.phase.value}{detail}{took}", flush=True)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m netbed.backend.compose.engines",
                                     description="Other Docker Engine versions beside the machine's own.")
    parser.add_argument("action", choices=("start", "stop", "status", "host"))
    parser.add_argument("release", nargs="?", default="26.1", help=f"one of {', '.join(RELEASES)}")
    args = parser.parse_args(argv)
    try:
        rel = release(args.release)
        if args.action == "host":
            print(rel.host)
        elif args.action == "start":
            start(rel, _print)
            load_images(rel, base_images(), _print)
        elif args.action == "stop":
            stop(rel, _print)
            left = _leftovers(rel)
            if left:
                raise EngineError(f"Docker {rel.short} left {', '.join(left)}")
        else:
            print(json.dumps({"release": rel.short, "host": rel.host, "fetched": fetched(rel),
                              "answers": answers(rel), "left": _leftovers(rel)}))
    except EngineError as exc:
        print(f"netbed engines: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
