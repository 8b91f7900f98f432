"""Markdown and HTML matrices of a RunResult: fixtures (and save options) by modes, per IUT."""

from __future__ import annotations

import html
import os
from collections import defaultdict
from pathlib import Path

from harness.report import STANDARD
from harness.results import CellResult, RunResult, describe_transformers

SYMBOL = {"pass": "✓", "fail": "✗", "error": "!", "unsupported": "○"}
COLOR = {"pass": "#c8f0c8", "fail": "#f5b5b5", "error": "#f3d27a", "unsupported": "#dddddd", "xfail": "#e6d5f5"}


def _grids(result: RunResult) -> dict[str, dict[str, dict[str, CellResult]]]:
    """IUT (and version, when merged) -> row (fixture + save options) -> mode -> cell."""
    grids: dict[str, dict[str, dict[str, CellResult]]] = defaultdict(lambda: defaultdict(dict))
    for c in result.cells:
        table = c.impl + (f" @ transformers {c.transformers}" if c.transformers else "")
        options = ",".join(f"{k}={v}" for k, v in sorted(c.save_options.items()))
        grids[table][c.fixture + (f" [{options}]" if options else "")][c.mode] = c
    return grids


def _modes(result: RunResult) -> list[str]:
    return list(dict.fromkeys(c.mode for c in result.cells))


def _mark(c: CellResult) -> str:
    if c.xfail is not None and c.outcome != "pass":
        return "xfail"
    text = SYMBOL[c.outcome]
    if c.outcome == "pass" and c.grade == "tensors":
        text += " (tensors)"
    if c.outcome == "fail":
        text += " " + ",".join(c.classes)
    if c.stale_xfail:
        text += " (stale xfail)"
    return text


def markdown(result: RunResult) -> str:
    counts = {o: sum(c.outcome == o for c in result.cells) for o in SYMBOL}
    lines = [
        f"## offload-conformance: {describe_transformers(result.environment)}",
        "",
        f"Standard: `--require {result.require}`: {STANDARD[result.require]}.",
        "",
        " · ".join(f"{SYMBOL[o]} {o}: {n}" for o, n in counts.items() if n),
        "",
    ]
    modes = _modes(result)
    for table, rows in _grids(result).items():
        lines += [f"### {table}", "", "| fixture | " + " | ".join(modes) + " |", "|---" * (len(modes) + 1) + "|"]
        for row, cells in rows.items():
            lines.append(f"| {row} | " + " | ".join(_mark(cells[m]) if m in cells else "" for m in modes) + " |")
        lines.append("")
    return "\n".join(lines)


def html_report(result: RunResult) -> str:
    modes = _modes(result)
    parts = [
        "<!doctype html><meta charset=utf-8><title>offload-conformance</title><style>"
        "body{font:13px sans-serif}td,th{border:1px solid #999;padding:3px 6px}table{border-collapse:collapse}"
        "th{background:#eee}</style>",
        f"<h1>offload-conformance</h1><p>{html.escape(describe_transformers(result.environment))}<br>"
        f"Standard: --require {result.require}: {html.escape(STANDARD[result.require])}</p>",
    ]
    for table, rows in _grids(result).items():
        parts.append(
            f"<h2>{html.escape(table)}</h2><table><tr><th>fixture</th>"
            + "".join(f"<th>{html.escape(m)}</th>" for m in modes)
            + "</tr>"
        )
        for row, cells in rows.items():
            parts.append(f"<tr><th>{html.escape(row)}</th>")
            for m in modes:
                c = cells.get(m)
                if c is None:
                    parts.append("<td></td>")
                    continue
                key = "xfail" if c.xfail is not None and c.outcome != "pass" else c.outcome
                parts.append(
                    f"<td style='background:{COLOR[key]}' title='{html.escape(c.detail, quote=True)}'>"
                    f"<a href='#{html.escape(c.cell_id)}'>{html.escape(_mark(c))}</a></td>"
                )
            parts.append("</tr>")
        parts.append("</table>")
    parts.append("<h2>Cells that did not pass</h2><dl>")
    for c in result.cells:
        if c.outcome != "pass":
            diffs = "".join(
                f"<li><b>{html.escape(d['cls'])}</b> {html.escape(d['detail'])}</li>" for d in c.differences
            )
            parts.append(
                f"<dt id='{html.escape(c.cell_id)}'><code>{html.escape(c.cell_id)}</code>: {c.outcome}</dt>"
                f"<dd>{html.escape(c.detail)}<ul>{diffs}</ul><pre>{html.escape(c.log_tail)}</pre></dd>"
            )
    parts.append("</dl>")
    return "".join(parts)


def png(result: RunResult, path: Path) -> bool:
    """The matrix as a colored grid, for pasting into a PR; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import to_rgb
    except ImportError:
        return False
    modes = _modes(result)
    rows = [(table, row, cells) for table, by_row in _grids(result).items() for row, cells in by_row.items()]
    fig, ax = plt.subplots(figsize=(1.1 * len(modes) + 4, 0.32 * len(rows) + 1.5))
    for y, (_, _, cells) in enumerate(rows):
        for x, m in enumerate(modes):
            c = cells.get(m)
            key = None if c is None else "xfail" if c.xfail is not None and c.outcome != "pass" else c.outcome
            ax.add_patch(plt.Rectangle((x, y), 1, 1, color=to_rgb(COLOR[key]) if key else (1, 1, 1), ec="white"))
            if c is not None:
                ax.text(
                    x + 0.5,
                    y + 0.5,
                    ",".join(c.classes)[:14] or SYMBOL[c.outcome],
                    ha="center",
                    va="center",
                    fontsize=6,
                )
    ax.set_xlim(0, len(modes))
    ax.set_ylim(len(rows), 0)
    ax.set_xticks([x + 0.5 for x in range(len(modes))], modes, rotation=45, ha="left", fontsize=7)
    ax.xaxis.tick_top()
    ax.set_yticks([y + 0.5 for y in range(len(rows))], [f"{t}: {r}" for t, r, _ in rows], fontsize=7)
    ax.set_title(
        f"offload-conformance: {describe_transformers(result.environment)} (--require {result.require})",
        fontsize=9,
        pad=60,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_all(result: RunResult, out: Path) -> None:
    """summary.md, report.html and junit.xml beside results.json; the summary also goes to
    $GITHUB_STEP_SUMMARY when set."""
    from harness import junit

    md = markdown(result)
    (out / "summary.md").write_text(md)
    (out / "report.html").write_text(html_report(result))
    junit.write(result, out / "junit.xml")
    png(result, out / "matrix.png")  # only where matplotlib is installed (nox -s bench / report extras)
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step:
        with open(step, "a", encoding="utf-8") as f:
            f.write(md + "\n")
