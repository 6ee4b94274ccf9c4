"""A run as JUnit XML, for CI systems: one testcase per scenario, its failed checks as the failure,
a scenario that could not judge the programs as skipped, with the reason."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from netbed.report.load import ScenarioReport


def write_junit(reports: list[ScenarioReport], path: Path) -> Path:
    failed = [r for r in reports if r.verdict == "failed"]
    skipped = [r for r in reports if r.verdict == "not judged"]
    suite = ET.Element("testsuite", name="netbed", tests=str(len(reports)), failures=str(len(failed)),
                       errors="0", skipped=str(len(skipped)), time=f"{sum(r.data['duration_s'] for r in reports):.2f}")
    for r in reports:
        case = ET.SubElement(suite, "testcase", classname=f"netbed.scenarios.{r.data['section']}", name=r.name,
                             time=f"{r.data['duration_s']:.2f}")
        bad = [c for c in r.data["checks"] if not c["passed"]]
        if r.verdict == "failed":
            failure = ET.SubElement(case, "failure", message="; ".join(c["name"] for c in bad) or "no check ran")
            failure.text = "\n\n".join(f"{c['name']}\nexpected: {c['expected']}\nobserved: {c['observed']}" for c in bad)
        elif r.verdict == "not judged":
            ET.SubElement(case, "skipped", message=f"not judged: {r.reason}")
        out = ET.SubElement(case, "system-out")
        out.text = f"run folder: {r.folder}\ncapture: {r.capture}\n\n{r.text('ladder.txt')}"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
    return path
