"""report.html: the matrix, colored, with every cell that did not pass spelled out below it."""

from __future__ import annotations

import html

from offload_conformance.harness.environment import describe_transformers
from offload_conformance.harness.outcomes import Outcome
from offload_conformance.harness.report.grid import COLOR, STANDARD, color_key, grids, mark, modes
from offload_conformance.harness.results import RunResult


def html_report(result: RunResult) -> str:
    columns = modes(result)
    parts = [
        "<!doctype html><meta charset=utf-8><title>offload-conformance</title><style>"
        "body{font:13px sans-serif}td,th{border:1px solid #999;padding:3px 6px}table{border-collapse:collapse}"
        "th{background:#eee}</style>",
        f"<h1>offload-conformance</h1><p>{html.escape(describe_transformers(result.environment))}<br>"
        f"Standard: --require {result.require}: {html.escape(STANDARD[result.require])}</p>",
    ]
    for table, rows in grids(result).items():
        parts.append(
            f"<h2>{html.escape(table)}</h2><table><tr><th>fixture</th>"
            + "".join(f"<th>{html.escape(m)}</th>" for m in columns)
            + "</tr>"
        )
        for row, cells in rows.items():
            parts.append(f"<tr><th>{html.escape(row)}</th>")
            for m in columns:
                c = cells.get(m)
                if c is None:
                    parts.append("<td></td>")
                    continue
                parts.append(
                    f"<td style='background:{COLOR[color_key(c)]}' title='{html.escape(c.detail, quote=True)}'>"
                    f"<a href='#{html.escape(c.cell_id)}'>{html.escape(mark(c))}</a></td>"
                )
            parts.append("</tr>")
        parts.append("</table>")
    parts.append("<h2>Cells that did not pass</h2><dl>")
    for c in result.cells:
        if c.outcome is not Outcome.PASS:
            diffs = "".join(f"<li><b>{html.escape(d.cls)}</b> {html.escape(d.detail)}</li>" for d in c.differences)
            parts.append(
                f"<dt id='{html.escape(c.cell_id)}'><code>{html.escape(c.cell_id)}</code>: {c.outcome}</dt>"
                f"<dd>{html.escape(c.detail)}<ul>{diffs}</ul><pre>{html.escape(c.log_tail)}</pre></dd>"
            )
    parts.append("</dl>")
    return "".join(parts)
