"""Reading a run folder back: each scenario's report.json and the files beside it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netbed.capture import finished
from netbed.errors import NetbedError


@dataclass(frozen=True)
class ScenarioReport:
    folder: Path
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return self.data["scenario"]

    @property
    def passed(self) -> bool:
        return bool(self.data["passed"])

    @property
    def verdict(self) -> str:
        """passed, failed or not judged (reports written before verdicts had three values: passed or failed)."""
        return str(self.data.get("verdict") or ("passed" if self.passed else "failed"))

    @property
    def reason(self) -> str:
        """Why it was not judged ('' when it was)."""
        return str(self.data.get("reason") or "")

    @property
    def capture(self) -> Path:
        """The scenario's capture: capture.pcapng with netbed's notes (capture.pcap from older runs)."""
        return finished(self.folder / "capture.pcap")

    def text(self, name: str) -> str:
        path = self.folder / name
        return path.read_text(errors="replace") if path.is_file() else ""


def load_run(run_dir: Path) -> list[ScenarioReport]:
    """Every scenario of a run folder, in the book's order; a folder with none is an error."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NetbedError(f"no run folder at {run_dir}: give the folder `netbed run --out` wrote (e.g. runs/latest)")
    reports = [ScenarioReport(path.parent, _read(path)) for path in sorted(run_dir.glob("*/report.json"))]
    reports.sort(key=lambda r: (_section_key(r.data.get("section", "")), r.name))
    if not reports:
        raise NetbedError(f"{run_dir} holds no scenario reports (*/report.json): is it a netbed run folder?")
    return reports


# What the page and the JUnit XML read from a report, and the type each must have.
FIELDS: dict[str, type | tuple[type, ...]] = {"scenario": str, "section": str, "title": str, "passed": bool,
                                              "duration_s": (int, float), "checks": list}
CHECK_FIELDS: dict[str, type | tuple[type, ...]] = {"name": str, "passed": bool, "expected": str, "observed": str}


def _read(path: Path) -> dict[str, Any]:
    """One report.json, checked for every field the report uses: a bad one is named with what is wrong."""
    def bad(why: str) -> NetbedError:
        return NetbedError(f"{path} is not a netbed report ({why}): run the scenario again")

    try:
        data = json.loads(path.read_text(errors="replace"))
    except json.JSONDecodeError as exc:
        raise bad(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad(f"a JSON {type(data).__name__}, not an object")
    for key, kind in FIELDS.items():
        if key not in data:
            raise bad(f"no {key!r}")
        if not isinstance(data[key], kind) or (kind is not bool and isinstance(data[key], bool)):
            raise bad(f"{key!r} is {data[key]!r}")
    for n, check in enumerate(data["checks"], 1):
        if not isinstance(check, dict) or any(not isinstance(check.get(k), t) for k, t in CHECK_FIELDS.items()):
            raise bad(f"check {n} is not {{name, passed, expected, observed}}")
    for key, kind in (("timeline", list), ("connections", list), ("names", dict)):
        if key in data and not isinstance(data[key], kind):
            raise bad(f"{key!r} is {data[key]!r}")
    if any(not isinstance(m, dict) or not isinstance(m.get("t"), (int, float)) or not {"who", "what"} <= set(m)
           for m in data.get("timeline", [])):
        raise bad("a timeline entry is not {t, who, what}")
    return data


def _section_key(section: str) -> tuple[int, ...]:
    """'5.14' after '5.9'; sections that are not numbers last."""
    try:
        return tuple(int(part) for part in section.split("."))
    except ValueError:
        return (99,)
