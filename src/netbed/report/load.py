"""Reading a run folder back: each scenario's report.json and the files beside it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    def text(self, name: str) -> str:
        path = self.folder / name
        return path.read_text(errors="replace") if path.is_file() else ""


def load_run(run_dir: Path) -> list[ScenarioReport]:
    """Every scenario of a run folder, in the book's order; a folder with none is an error."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NetbedError(f"no run folder at {run_dir}: give the folder `netbed run --out` wrote (e.g. runs/latest)")
    reports = []
    for path in sorted(run_dir.glob("*/report.json")):
        try:
            reports.append(ScenarioReport(path.parent, json.loads(path.read_text())))
        except (json.JSONDecodeError, KeyError) as exc:
            raise NetbedError(f"{path} is not a netbed report ({exc}): run the scenario again") from None
    reports.sort(key=lambda r: (_section_key(r.data.get("section", "")), r.name))
    if not reports:
        raise NetbedError(f"{run_dir} holds no scenario reports (*/report.json): is it a netbed run folder?")
    return reports


def _section_key(section: str) -> tuple[int, ...]:
    """'5.14' after '5.9'; sections that are not numbers last."""
    try:
        return tuple(int(part) for part in section.split("."))
    except ValueError:
        return (99,)
