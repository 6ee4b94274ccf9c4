"""A graded class as one table: CSV for a spreadsheet, JUnit XML for CI, one HTML page for the teacher.

A row per submission, a column per scenario; each cell is passed, failed
with the first reason, or not judged with the reason. The page links each
cell to that run's own report (its capture, ladder, checks and logs).
"""

from __future__ import annotations

import csv
import html
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from netbed.grade import Cell, Row
from netbed.report.html import CSS, VERDICT_STYLE, write_html
from netbed.report.load import load_run
from netbed.scenarios.lab import Verdict

def cell_text(cell: Cell) -> str:
    return f"{cell.verdict}: {cell.reason}" if cell.reason else str(cell.verdict)


def write_csv(rows: list[Row], scenarios: list[str], path: Path) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["submission", *scenarios, "passed", "failed", "not judged"])
        for row in rows:
            w.writerow([row.submission, *(cell_text(row.cells[s]) if s in row.cells else "not run" for s in scenarios),
                        *(row.count(v) for v in Verdict)])
    return path


def write_junit(rows: list[Row], scenarios: list[str], path: Path) -> Path:
    suites = ET.Element("testsuites", name="netbed grade")
    for row in rows:
        cells = [(s, row.cells[s]) for s in scenarios if s in row.cells]
        suite = ET.SubElement(suites, "testsuite", name=row.submission, tests=str(len(cells)),
                              failures=str(row.count(Verdict.FAILED)), skipped=str(row.count(Verdict.NOT_JUDGED)),
                              errors="0")
        for name, cell in cells:
            case = ET.SubElement(suite, "testcase", classname=row.submission, name=name)
            if cell.verdict == Verdict.FAILED:
                ET.SubElement(case, "failure", message=cell.reason).text = f"evidence: {cell.folder}"
            elif cell.verdict == Verdict.NOT_JUDGED:
                ET.SubElement(case, "skipped", message=f"not judged: {cell.reason}")
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
    return path


def write_page(rows: list[Row], scenarios: list[str], out_dir: Path, title: str = "netbed grade") -> Path:
    """OUT/grade.html, and OUT/NAME/report.html for each submission that ran, which the cells link to."""
    pages = {}
    for row in rows:
        folder = out_dir / row.submission
        if any(folder.glob("*/report.json")):
            pages[row.submission] = write_html(load_run(folder), folder / "report.html",
                                               title=f"{title}: {row.submission}").relative_to(out_dir)
    head = "".join(f"<th title='{_e(s)}'>{_e(s)}</th>" for s in scenarios)
    body = []
    for row in rows:
        tds = []
        for s in scenarios:
            cell = row.cells.get(s)
            if cell is None:
                tds.append("<td class='cell'>not run</td>")
                continue
            style, label = VERDICT_STYLE[cell.verdict]
            evidence = pages.get(row.submission)
            badge = (f"<a class='verdict {style}' href='{evidence}#{_e(s)}'>{label}</a>" if evidence and cell.folder
                     else f"<span class='verdict {style}'>{label}</span>")
            tds.append(f"<td class='cell' data-verdict='{_e(cell.verdict)}' title='{_e(cell_text(cell))}'>{badge}"
                       f"<div class='why'>{_e(_shorten(cell.reason))}</div></td>")
        counts = " · ".join(f"{row.count(v)} {v}" for v in Verdict)
        body.append(f"<tr><th class='who'>{_e(row.submission)}<div class='why'>{counts}</div></th>{''.join(tds)}</tr>")
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{CSS}{GRID_CSS}</style></head><body><header><h1>{_e(title)}</h1><div class='sub'>"
            f"{len(rows)} submission(s) x {len(scenarios)} scenario(s) · Unix Network Programming ch. 4-5 · "
            f"{_e(time.strftime('%Y-%m-%d %H:%M'))} · each cell links to that run's evidence</div></header><main>"
            f"<table class='grid'><tr><th></th>{head}</tr>{''.join(body)}</table></main></body></html>")
    path = out_dir / "grade.html"
    path.write_text(page)
    return path


GRID_CSS = """
table.grid { border-collapse: collapse; font-size: 13px; }
table.grid th, table.grid td { border: 1px solid #d0d7de; padding: 4px 6px; vertical-align: top; }
table.grid th { background: #f6f8fa; font-weight: 600; }
table.grid td.cell { max-width: 180px; }
table.grid .verdict { display: inline-block; min-width: 44px; text-decoration: none; }
.why { font-size: 11px; color: #57606a; margin-top: 2px; }
"""


def _shorten(text: str, limit: int = 110) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)
