"""ledger.json (for machines: the schema the issue names) and ledger.md (the table README shows)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from offload_conformance.harness.ledger.entries import Verdict
from offload_conformance.harness.ledger.verdicts import Judged

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


def write(judged: list[Judged], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "ledger.json").write_text(json.dumps(document(judged), indent=1) + "\n")
    (out / "ledger.md").write_text(markdown(judged))
