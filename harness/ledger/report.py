"""ledger.json (for machines: the schema the issue names), ledger.md, and docs/ledger.md's region (`region`)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from offload_conformance.harness.ledger.entries import Verdict
from offload_conformance.harness.ledger.verdicts import Judged
from offload_conformance.harness.report.regions import Table, markdown_table

CAUGHT = (Verdict.REPRODUCED, Verdict.STILL_OPEN)


def document(judged: list[Judged]) -> dict[str, object]:
    entries = [
        {
            "id": j.bug.id,
            "row": j.bug.row,
            "class": j.bug.bug_class,
            "gpu": j.bug.gpu,
            "package": j.bug.package,
            "affected": j.bug.affected,
            "fixed": j.bug.fixed,
            "environments": {"affected": j.affected_env, "then": j.then_env},
            "cells": list(j.bug.cells),
            "expect": list(j.bug.expect),
            "see": list(j.bug.see),
            "verdict": j.verdict.value,
            "evidence": list(j.evidence),
        }
        for j in judged
    ]
    totals = Counter(j.verdict.value for j in judged)
    return {
        "entries": entries,
        "totals": {v.value: totals.get(v.value, 0) for v in Verdict},
        "cpu_caught": sum(1 for j in judged if not j.bug.gpu and j.verdict in CAUGHT),
    }


def unexplained(judged: list[Judged]) -> list[Judged]:
    """Not caught, and the entry does not say why: the ledger is incomplete until it does."""
    return [j for j in judged if j.verdict is Verdict.NOT_CAUGHT and not j.bug.why]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(judged: list[Judged]) -> str:
    doc = document(judged)
    totals = ", ".join(f"{n} {v}" for v, n in doc["totals"].items())  # type: ignore[union-attr]
    lines = [
        "# Upstream bugs replayed",
        "",
        f"{len(judged)} entries: {totals}; {doc['cpu_caught']} CPU entries reproduced or still open.",
        "",
        "| # | bug | class | affected | fixed | verdict | evidence |",
        "|---|---|---|---|---|---|---|",
    ]
    for j in sorted(judged, key=lambda j: (j.bug.row, j.bug.id)):
        b = j.bug
        lines.append(
            f"| {b.row} | {b.id} | {_cell(b.bug_class)} | {b.package} {b.affected} | {b.fixed} "
            f"| **{j.verdict}** | {_cell('; '.join(j.evidence))} |"
        )
    return "\n".join(lines) + "\n"


DOCS_TABLE = Table(
    ("row", "bug", "what went wrong", "affected → fixed", "verdict"),
    values={"verdict": tuple(v.value for v in Verdict)},
)
NO_ROW = "\u2013"  # an en dash: a thread found beyond ../shared/UPSTREAM-BUGS.md


def region_shape() -> tuple[Table, ...]:
    return (DOCS_TABLE,)


def region(doc: dict[str, object]) -> str:
    """docs/ledger.md's region, from a ledger.json document: the totals, then one row per entry (by catalogue row;
    threads found beyond the catalogue, row 0, last)."""
    entries: list[dict[str, object]] = doc["entries"]  # type: ignore[assignment]
    totals: dict[str, int] = doc["totals"]  # type: ignore[assignment]
    counted = ", ".join(f"{n} {v}" for v, n in totals.items())
    rows = []
    for e in sorted(entries, key=lambda e: (e["row"] == 0, e["row"])):  # type: ignore[operator]
        package = "" if e["package"] == "transformers" else f"{e['package']} "
        rows.append(
            [
                e["row"] or NO_ROW,
                e["id"],
                _cell(e["class"]),
                f"{package}{e['affected']} → {e['fixed']}",
                f"**{e['verdict']}**",
            ]
        )
    head = f"{len(entries)} entries: {counted}: **{doc['cpu_caught']} CPU entries reproduced or still open**."
    return head + "\n\n" + markdown_table(DOCS_TABLE, rows)


def write(judged: list[Judged], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "ledger.json").write_text(json.dumps(document(judged), indent=1) + "\n")
    (out / "ledger.md").write_text(markdown(judged))
