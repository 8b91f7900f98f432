"""The sweep's failures by cause (docs/sweep.md's region): failing cells grouped by the reason their known-failures
line gives (each names its repro), or by root cause where no line lists them."""

from __future__ import annotations

import re
from collections import defaultdict

from offload_conformance.harness.outcomes import Grade, Outcome
from offload_conformance.harness.report.grid import counts, root_cause
from offload_conformance.harness.report.regions import Table, cell, markdown_table
from offload_conformance.harness.results import CellResult, RunResult

CAUSES_TABLE = Table(("cause", "cells", "architectures", "repro"))
SHOWN = 6  # architectures named in a row; the rest are counted
REPRO = re.compile(r"\b[\w-]+\.py\b")


def region_shape() -> tuple[Table, ...]:
    return (CAUSES_TABLE,)


def _architecture(c: CellResult) -> str:
    return c.fixture.removeprefix("gen_")


def _cause(c: CellResult) -> str:
    return c.xfail if c.xfail is not None else f"**not listed**: {root_cause(c)}"


def region(result: RunResult) -> str:
    failing = [c for c in result.cells if c.outcome.is_failure]
    groups: dict[str, list[CellResult]] = defaultdict(list)
    for c in failing:
        groups[_cause(c)].append(c)
    rows = []
    for cause, cells in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        names = sorted({_architecture(c) for c in cells})
        shown = ", ".join(names[:SHOWN]) + (", ..." if len(names) > SHOWN else "")
        repros = sorted(set(REPRO.findall(cause)))
        text = re.sub(r"\s+;", ";", re.sub(r"\s*\(\s*\)", "", REPRO.sub("", cause))).strip(" ;")
        rows.append([cell(text), len(cells), f"{len(names)}: {shown}", ", ".join(f"`{r}`" for r in repros)])
    tally = ", ".join(f"{n} {o}" for o, n in counts(result).items() if n)
    unlisted = sum(c.counts_as_failure for c in failing)
    reference = [c for c in result.cells if c.impl == "reference" and c.outcome is not Outcome.UNSUPPORTED]
    exact = sum(c.outcome is Outcome.PASS and c.grade is Grade.BYTES for c in reference)
    architectures = len({_architecture(c) for c in result.cells})
    head = (
        f"{len(result.cells)} cells of {architectures} architectures: {tally}; {len(failing) - unlisted} failures"
        f" listed as known, {unlisted} not listed. The reference saves {exact} of its {len(reference)} runnable"
        " cells with grade `bytes`."
    )
    return head + "\n\n" + (markdown_table(CAUSES_TABLE, rows) if rows else "No cell fails.\n")
