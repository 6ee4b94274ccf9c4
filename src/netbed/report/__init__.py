"""Run reports: one self-contained HTML page and JUnit XML, from a run folder.

A run folder holds one folder per scenario with its report.json, capture,
ladders and logs (see netbed.scenarios.runner). Reports read only those
files, so a report can be made again, anywhere, from a copied folder.
"""

from netbed.report.html import write_html
from netbed.report.junit import write_junit
from netbed.report.load import ScenarioReport, load_run

__all__ = ["ScenarioReport", "load_run", "write_html", "write_junit"]
