"""The terminal view of a run: a progress line per cell, then the table and what did not pass."""

from __future__ import annotations

from offload_conformance.harness.environment import describe_transformers
from offload_conformance.harness.outcomes import Outcome
from offload_conformance.harness.plan.known_failures import Entry
from offload_conformance.harness.report.grid import (
    STANDARD,
    counts,
    drift_lines,
    judged_note,
    lifecycle_note,
    loading_note,
)
from offload_conformance.harness.report.table import aligned
from offload_conformance.harness.results import CellResult, RunResult

ERROR_LOG_LINES = 5


def progress_line(i: int, n: int, cell: CellResult) -> str:
    grade = f" [{cell.grade}]" if cell.grade else ""
    classes = f" {','.join(cell.classes)}" if cell.classes else ""
    return f"[{i}/{n}] {cell.cell_id}: {cell.outcome}{grade}{classes} ({cell.seconds:.1f}s)"


def table(result: RunResult) -> str:
    rows = [("cell", "outcome", "grade", "classes", "seconds")]
    for c in result.cells:
        rows.append((c.cell_id, c.outcome, c.grade or "-", ",".join(c.classes) or "-", f"{c.seconds:.1f}"))
    return aligned(rows)


def details(result: RunResult) -> str:
    out = []
    for c in result.cells:
        if c.stale_xfail and result.drift_from is None:  # under drift: fixed, in the drift lines
            out.append(f"{c.cell_id}: passes now but is listed as a known failure ({c.xfail}): remove the entry")
        if c.outcome is Outcome.PASS:
            continue
        known = f" [known failure: {c.xfail}]" if c.xfail else ""
        out.append(f"{c.cell_id}: {c.outcome}{known}{judged_note(c)}: {c.detail}")
        if c.outcome is Outcome.ERROR and c.log_tail and not c.xfail:
            out.extend(f"    | {line}" for line in c.log_tail.splitlines()[-ERROR_LOG_LINES:])
    return "\n".join(out)


def unmatched_lines(unmatched: list[Entry], source: str) -> list[str]:
    """Known-failure patterns that matched no cell of the run: a typo, or a fixture or mode that is gone."""
    return [f"{source}:{e.line}: pattern {e.pattern!r} matches no cell of this run" for e in unmatched]


def render(result: RunResult) -> str:
    env = result.environment
    head = [
        f"{describe_transformers(env)}, accelerate {env.get('accelerate')}, torch {env.get('torch')},"
        f" safetensors {env.get('safetensors')}, huggingface_hub {env.get('huggingface_hub')}",
        f"standard: --require {result.require}: {STANDARD[result.require]}",
        loading_note(result),
        *([f"lifecycle: {note}"] if (note := lifecycle_note(result)) else []),
    ]
    for name, b in sorted(result.baselines.items()):
        if b.failure is not None:
            state = f"error: {b.failure}"
        elif b.unsupported is not None:
            state = f"unsupported: {b.unsupported}"
        else:
            state = f"round-trip vs fixture: {b.roundtrip_grade or 'differs'}"
            if b.roundtrip_classes:
                state += f" ({', '.join(b.roundtrip_classes)})"
        head.append(f"baseline {name}: {state}")
    summary = ", ".join(f"{n} {o}" for o, n in counts(result).items() if n)
    known = sum(c.known_failure for c in result.cells)
    if known:
        unknown = sum(c.counts_as_failure for c in result.cells)
        summary += f" ({known} known failures listed in --xfails; {unknown} not listed)"
    body = [*head, "", table(result), "", summary, *drift_lines(result)]
    more = details(result)
    if more:
        body += ["", more]
    return "\n".join(body)
