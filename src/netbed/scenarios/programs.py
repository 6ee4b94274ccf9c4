"""The user's programs: their commands and mounts, checked when given.

A command is split into words as a shell would split them (but never run by
a shell), and a mount is parsed, when `Programs` is made: a bad one is refused
with one line before any folder or testbed exists. Placeholders are the exact
words below in braces; every other brace is passed on as typed (commands are
not format strings, so `sh -c '... { ...; }'` works).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from netbed.errors import NetbedError

PORT = 9877
PLACEHOLDERS = {"server": ("port",), "client": ("server_ip", "port")}
"""What each command may name: the server's port, and for the client the server's address too."""
IMAGE_REF = re.compile(r"([A-Za-z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*"
                       r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?")
"""Docker's image reference grammar, simplified: [registry/]path[:tag][@digest], path in lowercase."""
FORBIDDEN_SOURCES = (Path("/"), Path("/var/run/docker.sock"), Path("/run/docker.sock"))


class ProgramsError(NetbedError):
    pass


@dataclass(frozen=True)
class Command:
    """A user's command line as words, with {placeholders} filled in when it runs."""

    text: str
    words: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, role: str) -> "Command":
        option = f"--{role}-cmd"
        try:
            words = tuple(shlex.split(text))
        except ValueError as exc:  # "No closing quotation", "No escaped character"
            raise ProgramsError(f"{option} {text!r}: {str(exc).lower()}; quote it as a shell would") from None
        if not words:
            raise ProgramsError(f"{option} is empty: give the program to run")
        known = PLACEHOLDERS[role]
        for other in sorted(set(PLACEHOLDERS["client"]) - set(known)):
            if any(f"{{{other}}}" in w for w in words):
                raise ProgramsError(f"{option}: {{{other}}} is not known to the {role}; "
                                    f"it may use {', '.join(f'{{{k}}}' for k in known)}")
        return cls(text, words)

    def argv(self, **values: object) -> list[str]:
        """The words with each {name} in `values` replaced; any other brace stays as typed."""
        if not values:
            return list(self.words)
        pattern = re.compile(r"\{(" + "|".join(map(re.escape, values)) + r")\}")
        return [pattern.sub(lambda m: str(values[m.group(1)]), word) for word in self.words]

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Mount:
    """SRC:DST or SRC:DST:ro|rw, with SRC an existing path on this machine and DST absolute."""

    source: Path
    target: str
    mode: str = "rw"

    @classmethod
    def parse(cls, text: str) -> "Mount":
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(parts[:2]):
            raise ProgramsError(f"--mount {text!r}: write it as HOST_PATH:CONTAINER_PATH[:ro|rw], e.g. ./bin:/opt/mine")
        source, target, mode = parts[0], parts[1], parts[2] if len(parts) == 3 else "rw"
        if mode not in ("ro", "rw"):
            raise ProgramsError(f"--mount {text!r}: the mode is ro or rw, not {mode!r}")
        if not target.startswith("/") or target.rstrip("/") == "":
            raise ProgramsError(f"--mount {text!r}: the container path must be absolute and not /, e.g. /opt/mine")
        path = Path(source).expanduser().resolve()
        if not path.exists():
            raise ProgramsError(f"--mount {text!r}: {path} does not exist")
        if path in FORBIDDEN_SOURCES:
            raise ProgramsError(f"--mount {text!r}: netbed never gives a host {path}; mount only your programs' folder")
        return cls(path, target, mode)

    def volume(self) -> str:
        """As Compose writes a bind mount."""
        return f"{self.source}:{self.target}:{self.mode}"


@dataclass(frozen=True)
class Programs:
    """What runs on the hosts: netbed's own programs, or the user's.

    Commands and mounts may be given as text, as typed on the command line;
    they are parsed here, so bad ones are refused before anything starts.
    """

    server_cmd: Command | str | None = None
    client_cmd: Command | str | None = None
    mounts: tuple[Mount | str, ...] = ()
    image: str | None = None
    port: int = PORT

    def __post_init__(self) -> None:
        for role in ("server", "client"):
            value = getattr(self, f"{role}_cmd")
            if isinstance(value, str):
                object.__setattr__(self, f"{role}_cmd", Command.parse(value, role))
        object.__setattr__(self, "mounts", tuple(m if isinstance(m, Mount) else Mount.parse(m) for m in self.mounts))
        if self.image is not None and not IMAGE_REF.fullmatch(self.image):
            raise ProgramsError(f"--image {self.image!r} is not an image name: write it as NAME[:TAG], in lowercase")
        if not 1 <= self.port <= 65535:
            raise ProgramsError(f"port {self.port} is not a TCP port (1-65535)")

    @property
    def user(self) -> bool:
        return bool(self.server_cmd or self.client_cmd)
