"""summary.md: the matrix as Markdown, for a PR comment or a CI step summary."""

from __future__ import annotations

from offload_conformance.harness.environment import describe_transformers
from offload_conformance.harness.report.grid import (
    STANDARD,
    SYMBOL,
    by_root_cause,
    counts,
    drift_lines,
    grids,
    lifecycle_note,
    loading_note,
    mark,
    modes,
    source_judged,
)
from offload_conformance.harness.results import RunResult


def markdown(result: RunResult) -> str:
    lines = [
        f"## offload-conformance: {describe_transformers(result.environment)}",
        "",
        f"Standard: `--require {result.require}`: {STANDARD[result.require]}.",
        "",
        f"{loading_note(result)}.",
        "",
        *([f"Lifecycle: {note}.", ""] if (note := lifecycle_note(result)) else []),
        " · ".join(f"{SYMBOL[o]} {o}: {n}" for o, n in counts(result).items() if n),
        "",
    ]
    judged = source_judged(result)
    if judged:
        lines += ["Where transformers' own in-memory save raised, the fixture's files judged the cells:", ""]
        lines += [f"- {line}" for line in judged] + [""]
    drift = drift_lines(result)
    if drift:
        lines += [f"**{drift[0].removeprefix('drift: ')}**", "", *(f"- {line.strip()}" for line in drift[1:]), ""]
    causes = by_root_cause(result)
    if causes:
        lines += ["### Failing cells by root cause", "", "| cells | known | root cause | e.g. |", "|---|---|---|---|"]
        for cause, cells in causes:
            known = sum(c.known_failure for c in cells)
            text = cause[:200].replace("|", "\\|")
            lines.append(f"| {len(cells)} | {known} | {text} | `{cells[0].cell_id}` |")
        lines.append("")
    columns = modes(result)
    for table, rows in grids(result).items():
        lines += [f"### {table}", "", "| fixture | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for row, cells in rows.items():
            lines.append(f"| {row} | " + " | ".join(mark(cells[m]) if m in cells else "" for m in columns) + " |")
        lines.append("")
    return "\n".join(lines)
