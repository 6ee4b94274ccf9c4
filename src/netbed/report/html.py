"""A run as one self-contained HTML page: no network needed to view it, nothing but the file."""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

from netbed.report.load import ScenarioReport
from netbed.tcp import Mark, PcapError, analyze, segment_label
from netbed.tcp.annotate import read_notes

MAX_TIMELINE_PACKETS = 300

CSS = """
:root { --ok: #1a7f37; --bad: #cf222e; --ink: #1f2328; --muted: #656d76; --line: #d0d7de; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); margin: 0; background: #fff; }
header { padding: 28px 40px 18px; border-bottom: 1px solid var(--line); background: var(--soft); }
h1 { margin: 0 0 4px; font-size: 24px; }
.sub { color: var(--muted); }
.summary { display: flex; gap: 14px; margin-top: 14px; }
.pill { padding: 4px 12px; border-radius: 999px; font-weight: 600; font-size: 14px; }
.pill.ok { background: #dafbe1; color: var(--ok); } .pill.bad { background: #ffebe9; color: var(--bad); }
.pill.nj { background: #fff8c5; color: #7d4e00; }
main { padding: 20px 40px 60px; max-width: 1280px; }
details.scenario { border: 1px solid var(--line); border-radius: 8px; margin: 10px 0; overflow: hidden; }
details.scenario > summary { display: grid; grid-template-columns: 70px 220px 60px 1fr 80px; gap: 12px; align-items: center;
  padding: 10px 16px; cursor: pointer; list-style: none; background: #fff; }
details.scenario > summary::-webkit-details-marker { display: none; }
details.scenario[open] > summary { border-bottom: 1px solid var(--line); background: var(--soft); }
.verdict { font-weight: 700; font-size: 13px; text-align: center; border-radius: 6px; padding: 2px 0; color: #fff; }
.verdict.ok { background: var(--ok); } .verdict.bad { background: var(--bad); } .verdict.nj { background: #bf8700; }
.reason { background: #fff8c5; border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
.name { font-family: ui-monospace, Menlo, Consolas, monospace; font-weight: 600; }
.section, .duration { color: var(--muted); font-variant-numeric: tabular-nums; }
.duration { text-align: right; }
.body { padding: 16px 20px 24px; }
.doc { white-space: pre-wrap; color: #333; background: #fffbe6; border-left: 3px solid #d4a72c; padding: 10px 14px; margin: 0 0 14px; }
h3 { font-size: 15px; margin: 22px 0 8px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 6px 8px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.mark { width: 28px; font-weight: 700; } td.mark.ok { color: var(--ok); } td.mark.bad { color: var(--bad); }
pre { margin: 0; white-space: pre-wrap; font: 12px/1.45 ui-monospace, Menlo, Consolas, monospace; }
pre.box { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 10px; max-height: 420px; overflow: auto; }
.ladder { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; padding: 6px; background: #fff; }
.timeline td.t { font-variant-numeric: tabular-nums; color: var(--muted); width: 90px; }
.timeline td.who { width: 150px; font-weight: 600; white-space: nowrap; }
tr.wire td.who { color: #0969da; } tr.netbed td.who { color: #8250df; } tr.wire td.what { font-family: ui-monospace, Menlo, monospace; font-size: 12px; }
.links a { margin-right: 16px; }
"""


VERDICT_STYLE = {"passed": ("ok", "PASS"), "failed": ("bad", "FAIL"), "not judged": ("nj", "N/J")}


def write_html(reports: list[ScenarioReport], path: Path, title: str = "netbed run") -> Path:
    """Write the page; links to each capture are relative to the page, so the folder can be moved."""
    path = Path(path)
    passed = sum(r.verdict == "passed" for r in reports)
    failed = sum(r.verdict == "failed" for r in reports)
    unjudged = len(reports) - passed - failed
    total = sum(r.data["duration_s"] for r in reports)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1><div class='sub'>Unix Network Programming ch. 4-5 on real Linux TCP, "
        f"judged from the wire, the hosts and the programs · {_e(time.strftime('%Y-%m-%d %H:%M'))}</div>",
        "<div class='summary'>",
        f"<span class='pill ok'>{passed} passed</span>",
        f"<span class='pill bad'>{failed} failed</span>" if failed else "",
        f"<span class='pill nj'>{unjudged} not judged</span>" if unjudged else "",
        f"<span class='sub'>{len(reports)} scenarios · {total:.1f} s of scenario time</span></div></header><main>",
    ]
    for r in reports:
        parts.append(_scenario(r, path.parent))
    parts.append("</main><script>const h = decodeURIComponent(location.hash.slice(1)); "
                 "if (h && document.getElementById(h)) document.getElementById(h).open = true;</script></body></html>")
    path.write_text("".join(parts))
    return path


def _scenario(r: ScenarioReport, page_dir: Path) -> str:
    d = r.data
    ok, label = VERDICT_STYLE[r.verdict]
    rel = _relative(r.folder, page_dir)
    out = [
        f"<details class='scenario' id='{_e(r.name)}' data-passed='{str(r.passed).lower()}' data-verdict='{_e(r.verdict)}'>",
        f"<summary><span class='verdict {ok}'>{label}</span>",
        f"<span class='name'>{_e(r.name)}</span><span class='section'>{_e(d['section'])}</span>",
        f"<span class='title'>{_e(d['title'][:1].upper() + d['title'][1:])}</span><span class='duration'>{d['duration_s']:.1f} s</span></summary>",
        "<div class='body'>",
    ]
    if r.reason:
        out.append(f"<div class='reason'><b>Not judged:</b> {_e(r.reason)}</div>")
    if d.get("settings", {}).get("own_programs"):
        out.append(f"<div class='reason'>{_e(d['settings']['own_programs'])}</div>")
    if d.get("doc"):
        out.append(f"<div class='doc'>{_e(d['doc'])}</div>")
    out.append(f"<div class='links'><a href='{rel}/{r.capture.name}'>{r.capture.name}</a><a href='{rel}/ladder.txt'>ladder.txt</a>"
               f"<a href='{rel}/report.json'>report.json</a><span class='sub'>settings: {_e(json.dumps(d.get('settings', {})))}</span></div>")
    out.append("<h3>Checks</h3><table class='checks'><tr><th></th><th>check</th><th>expected</th><th>observed</th></tr>")
    for c in d["checks"]:
        mark = "ok" if c["passed"] else "bad"
        out.append(f"<tr class='check {mark}'><td class='mark {mark}'>{'✓' if c['passed'] else '✗'}</td><td>{_e(c['name'])}</td>"
                   f"<td><pre>{_e(c['expected'])}</pre></td><td><pre>{_e(c['observed'])}</pre></td></tr>")
    out.append("</table>")
    svg = r.text("ladder.svg")
    if svg:
        out.append(f"<h3>The key connection, as captured</h3><div class='ladder'>{svg}</div>")
    conns = _key_connections(r)
    for conn in conns:
        strip = retransmission_strip(conn)
        if strip:
            out.append(f"<h3>Retransmissions of {_e(conn.client)}, to scale</h3><div class='ladder'>{strip}</div>")
    out.append("<h3>Timeline: faults, programs and packets</h3>")
    out.append(_timeline(r, conns))
    hosts = r.text("hosts.json")
    if hosts:
        out.append("<h3>Hosts at the end of the run</h3>")
        for name, snap in json.loads(hosts).items():
            out.append(f"<p><b>{_e(name)}</b></p><pre class='box'>{_e(snap)}</pre>")
    for log in sorted(r.folder.glob("*.log")):
        out.append(f"<h3>{_e(log.stem)}'s output</h3><pre class='box'>{_e(log.read_text(errors='replace')[-8000:])}</pre>")
    out.append("</div></details>")
    return "".join(out)


def _key_connections(r: ScenarioReport) -> list:
    """The connections the scenario judged, read back from its capture."""
    keys = set(r.data.get("connections", []))
    pcap = r.capture
    if not keys or not pcap.is_file():
        return []
    try:
        return [c for c in analyze(str(pcap), r.data.get("names", {}), allow_truncated=True) if str(c.client) in keys]
    except PcapError:
        return []


def retransmission_strip(conn, width: int = 900) -> str:
    """The most retransmitted segment's sends on a linear time axis: the RTO backoff as it really spaced out."""
    segs = conn.segments
    sends: dict[tuple, list] = {}
    for seg in segs:
        sends.setdefault((seg.sender, seg.seq, seg.payload_len, seg.letters), []).append(seg)
    series = max((group for group in sends.values() if any(s.marks & Mark.ANY_RETRANSMISSION for s in group)),
                 key=len, default=[])
    if len(series) < 2:
        return ""
    end = next((s for s in segs[series[-1].index + 1:] if "R" in s.letters), None)
    points = series + ([end] if end else [])
    t0, t1 = points[0].time, points[-1].time
    span = max(t1 - t0, 1e-6)
    left, right, y = 30, width - 30, 40
    x = [left + (p.time - t0) / span * (right - left) for p in points]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="90" font-family="system-ui, sans-serif" font-size="11">',
             f'<line x1="{left}" y1="{y}" x2="{right}" y2="{y}" stroke="#8c959f"/>']
    for i, (px, p) in enumerate(zip(x, points)):
        color = "#cf222e" if p is end else ("#1f2328" if i == 0 else "#bc4c00")
        label = "RST" if p is end else ("sent" if i == 0 else f"#{i}")
        parts.append(f'<line x1="{px:.1f}" y1="{y - 12}" x2="{px:.1f}" y2="{y + 12}" stroke="{color}" stroke-width="2"/>'
                     f'<text x="{px:.1f}" y="{y - 16}" text-anchor="middle" fill="{color}">{label}</text>')
        if i and px - x[i - 1] >= 36:  # room for the label
            gap = p.time - points[i - 1].time
            parts.append(f'<text x="{(px + x[i - 1]) / 2:.1f}" y="{y + 26}" text-anchor="middle" fill="#656d76">'
                         f'{gap:.2f} s</text>')
    parts.append(f'<text x="{left}" y="{y + 44}" fill="#656d76">0 s</text>'
                 f'<text x="{right}" y="{y + 44}" text-anchor="end" fill="#656d76">{span:.2f} s</text></svg>')
    return "".join(parts)


def _timeline(r: ScenarioReport, conns: list) -> str:
    """The run's moments (faults, lines typed, errors) and the capture's notes, interleaved with the key
    connections' segments."""
    rows = [(m["t"], m["who"], m["what"], "netbed" if m["who"] == "netbed" else "program")
            for m in r.data.get("timeline", [])]
    seen = {what for _, who, what, _ in rows} | {f"{who}: {what}" for _, who, what, _ in rows}
    if r.capture.is_file():  # the capture's own notes: programs starting and ending, with their pids and statuses
        rows += [(n.ts_ns / 1e9, "capture note", n.text, "netbed") for n in read_notes(r.capture) if n.text not in seen]
    for conn in conns:
        for seg in conn.segments[:MAX_TIMELINE_PACKETS]:
            rows.append((seg.ts, f"{seg.src.name} → {seg.dst.name}", segment_label(seg, options=False), "wire"))
    if not rows:
        return "<p class='sub'>nothing recorded</p>"
    rows.sort(key=lambda row: row[0])
    start = rows[0][0]
    body = "".join(f"<tr class='{kind}'><td class='t'>{t - start:9.6f}</td><td class='who'>{_e(who)}</td>"
                   f"<td class='what'>{_e(what)}</td></tr>" for t, who, what, kind in rows)
    return f"<table class='timeline'><tr><th>time (s)</th><th>who</th><th>what</th></tr>{body}</table>"


def _relative(folder: Path, page_dir: Path) -> str:
    try:
        return str(folder.resolve().relative_to(page_dir.resolve()))
    except ValueError:
        return folder.resolve().as_uri()


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)
