"""report.html: one self-contained page a maintainer reads a failure from.

The matrix (rows: fixture and save options; columns: modes) shows every implementation side by side
in each cell; a mark opens that cell's classified diff (every difference with both sides' file,
dtype, shape and sha256, the max abs diff) and its log tail. Filters by outcome, class, fixture and
mode hide what does not match. The cost of each save and the matrix picture are on the page too. No
network: styles, script and picture are inline.
"""

from __future__ import annotations

import base64
import html

from offload_conformance.harness.environment import describe_transformers
from offload_conformance.harness.outcomes import Outcome
from offload_conformance.harness.report.grid import (
    COLOR,
    STANDARD,
    XFAIL,
    color_key,
    counts,
    lifecycle_cell,
    lifecycle_note,
    loading_note,
    mark,
    row_label,
)
from offload_conformance.harness.results import CellResult, Difference, RunResult, TensorFacts

STYLE = """
body{font:13px sans-serif;margin:16px}td,th{border:1px solid #999;padding:3px 6px;vertical-align:top}
table{border-collapse:collapse;margin:8px 0}th{background:#eee;text-align:left}
.mark{display:block;padding:1px 4px;margin:1px 0;border-radius:3px;color:#000;text-decoration:none}
.hidden{display:none}#filters label{margin-right:12px}code{font-size:12px}
details.cell{margin:4px 0;border:1px solid #ccc;padding:4px}details.cell summary{cursor:pointer}
pre{background:#f6f6f6;padding:6px;overflow-x:auto;max-height:24em}
"""

# Filters hide matrix marks and cell entries whose data-* attributes do not match. A mark's link
# opens the cell's <details> below.
SCRIPT = """
function applyFilters(){
  const want = {};
  for (const sel of document.querySelectorAll('#filters select')) want[sel.name] = sel.value;
  for (const el of document.querySelectorAll('[data-cell]')) {
    const ok = Object.entries(want).every(([key, value]) =>
      !value || (key === 'class' ? el.dataset.classes.split(' ').includes(value) : el.dataset[key] === value));
    el.classList.toggle('hidden', !ok);
  }
}
function openCell(id){
  const target = document.getElementById(id);
  if (target) { target.open = true; target.scrollIntoView(); }
}
document.addEventListener('DOMContentLoaded', () => {
  for (const sel of document.querySelectorAll('#filters select')) sel.addEventListener('change', applyFilters);
  for (const a of document.querySelectorAll('a.mark')) a.addEventListener('click', () => openCell(a.hash.slice(1)));
  if (location.hash) openCell(location.hash.slice(1));
});
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _anchor(c: CellResult) -> str:
    return "cell-" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in c.cell_id)


def _data(c: CellResult) -> str:
    outcome = XFAIL if c.known_failure else c.outcome
    return (
        f"data-cell data-outcome='{_e(outcome)}' data-fixture='{_e(c.fixture)}' data-mode='{_e(c.mode)}'"
        f" data-impl='{_e(c.impl)}' data-classes='{_e(' '.join(c.classes))}'"
    )


def _select(name: str, values: list[str]) -> str:
    options = "".join(f"<option value='{_e(v)}'>{_e(v)}</option>" for v in values)
    return f"<label>{name} <select name='{name}'><option value=''>all</option>{options}</select></label>"


def _filters(result: RunResult) -> str:
    cells = result.cells
    outcomes = [o for o in [*Outcome, XFAIL] if any((XFAIL if c.known_failure else c.outcome) == o for c in cells)]
    classes = sorted({cls for c in cells for cls in c.classes})
    return (
        "<p id='filters'>"
        + _select("outcome", [str(o) for o in outcomes])
        + _select("class", classes)
        + _select("fixture", list(dict.fromkeys(c.fixture for c in cells)))
        + _select("mode", list(dict.fromkeys(c.mode for c in cells)))
        + _select("impl", list(dict.fromkeys(c.impl for c in cells)))
        + "</p>"
    )


def _matrix(result: RunResult) -> str:
    modes = list(dict.fromkeys(c.mode for c in result.cells))
    rows: dict[str, dict[str, list[CellResult]]] = {}
    for c in result.cells:
        rows.setdefault(row_label(c), {}).setdefault(c.mode, []).append(c)
    parts = ["<table id='matrix'><tr><th>fixture</th>", *(f"<th>{_e(m)}</th>" for m in modes), "</tr>"]
    for label, by_mode in rows.items():
        parts.append(f"<tr><th>{_e(label)}</th>")
        for m in modes:
            marks = "".join(
                f"<a class='mark' {_data(c)} href='#{_anchor(c)}' style='background:{COLOR[color_key(c)]}'"
                f" title='{_e(c.detail)}'>{_e(c.impl)}{_e(' @ ' + c.transformers if c.transformers else '')}:"
                f" {_e(mark(c))}</a>"
                for c in by_mode.get(m, [])
            )
            parts.append(f"<td>{marks}</td>")
        parts.append("</tr>")
    parts.append("</table>")
    return "".join(parts)


def _side(f: TensorFacts | None) -> str:
    if f is None:
        return "<td colspan=4><i>absent</i></td>"
    cells = (_e(f.file), _e(f.dtype), _e(list(f.shape)), f"<code>{_e(f.sha256[:12])}</code>")
    return "".join(f"<td>{x}</td>" for x in cells)


def _diff_table(differences: tuple[Difference, ...]) -> str:
    if not differences:
        return ""
    head = (
        "<table class='diff'><tr><th rowspan=2>class</th><th rowspan=2>tensor / file</th>"
        "<th colspan=4>expected (in-memory save)</th><th colspan=4>actual (this save)</th>"
        "<th rowspan=2>max abs diff</th><th rowspan=2>detail</th></tr><tr>"
        + "<th>file</th><th>dtype</th><th>shape</th><th>sha256</th>" * 2
        + "</tr>"
    )
    rows = []
    for d in differences:
        worst = "" if d.max_abs_diff is None else f"{d.max_abs_diff:.6g}"
        where = d.tensor or d.file or ""
        facts = _side(d.expected) + _side(d.actual) if (d.expected or d.actual) else "<td colspan=8></td>"
        rows.append(
            f"<tr><td>{_e(d.cls)}</td><td><code>{_e(where)}</code></td>{facts}<td>{worst}</td><td>{_e(d.detail)}</td></tr>"
        )
    return head + "".join(rows) + "</table>"


def _mib(value: int | None) -> str:
    return "" if value is None else f"{value / 2**20:.1f}"


def _cost(c: CellResult) -> str:
    if c.cost is None:
        return "<td></td><td></td><td></td>"
    amp = c.cost.read_amplification
    cells = ("" if amp is None else f"{amp:.2f}", _mib(c.cost.extra_rss), _mib(c.cost.extra_anon))
    return "".join(f"<td>{x}</td>" for x in cells)


def _cells(result: RunResult) -> str:
    parts = [
        "<h2>Cells</h2><table id='cells'><tr><th>cell</th><th>outcome</th><th>grade</th><th>classes</th>"
        "<th>seconds</th><th>read amplification</th><th>extra RSS MiB</th><th>extra anon MiB</th>"
        "<th>lifecycle</th></tr>"
    ]
    for c in result.cells:
        outcome = f"{c.outcome} (known failure)" if c.known_failure else str(c.outcome)
        if c.outcome is Outcome.PASS:
            name = f"<code id='{_anchor(c)}'>{_e(c.cell_id)}</code>"
        else:
            why = f"<p><b>known failure:</b> {_e(c.xfail)}</p>" if c.xfail else ""
            why += f"<p><b>baseline:</b> {_e(c.judged_against)}</p>"
            log = f"<pre>{_e(c.log_tail)}</pre>" if c.log_tail else ""
            name = (
                f"<details class='cell' id='{_anchor(c)}'><summary><code>{_e(c.cell_id)}</code></summary>"
                f"{why}<p>{_e(c.detail)}</p>{_diff_table(c.differences)}{log}</details>"
            )
        parts.append(
            f"<tr {_data(c)}><td>{name}</td><td style='background:{COLOR[color_key(c)]}'>{_e(outcome)}</td>"
            f"<td>{_e(c.grade or '')}</td><td>{_e(', '.join(c.classes))}</td><td>{c.seconds:.1f}</td>{_cost(c)}"
            f"<td>{_e(lifecycle_cell(c))}</td></tr>"
        )
    parts.append("</table>")
    return "".join(parts)


def _picture(png: bytes | None) -> str:
    if png is None:
        return "<p>(matrix.png needs matplotlib: the <code>report</code> extra)</p>"
    data = base64.b64encode(png).decode()
    return f"<h2>Matrix picture</h2><img alt='the matrix as a picture' src='data:image/png;base64,{data}'>"


def html_report(result: RunResult, png: bytes | None = None) -> str:
    """The page; `png`: matrix.png's bytes, drawn once by the caller (harness.report.picture), embedded."""
    summary = " · ".join(f"{o}: {n}" for o, n in counts(result).items() if n)
    known = sum(c.known_failure for c in result.cells)
    return "".join(
        [
            "<!doctype html><html lang=en><meta charset=utf-8><title>offload-conformance</title>",
            f"<style>{STYLE}</style>",
            f"<script>{SCRIPT}</script><h1>offload-conformance</h1>",
            f"<p>{_e(describe_transformers(result.environment))}<br>",
            f"Standard: --require {result.require}: {_e(STANDARD[result.require])}<br>",
            f"{_e(loading_note(result))}<br>",
            f"Lifecycle: {_e(note)}<br>" if (note := lifecycle_note(result)) else "",
            f"{_e(summary)}{f' ({known} known failures)' if known else ''}</p>",
            _filters(result),
            _matrix(result),
            _cells(result),
            _picture(png),
        ]
    )
