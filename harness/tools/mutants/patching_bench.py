"""`mutants --compare-patching`: each mutant that can be patched in (hot.py) run both ways, patched and imported from
the overlay, one after the other in one analysis (which goes first alternates), with the verdicts compared and the
worker times side by side. The benchmark behind the claim that patching saves the imports, and a check on real
upstream code that it judges every mutant as the import does."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from offload_conformance.harness.report.regions import markdown_rows


@dataclass(frozen=True)
class Verdict:
    """What a comparison of two runs of one mutant compares: its status and each changed cell's verdict after."""

    status: str
    changes: tuple[tuple[str, str], ...]  # (cell, its verdict under the mutant)

    def __str__(self) -> str:
        return "; ".join([self.status, *(f"{cell}:{after}" for cell, after in self.changes)])


@dataclass(frozen=True)
class Comparison:
    mutant: str
    patched_seconds: float  # the worker's wall time, patched into the warm server
    imported_seconds: float  # the worker's wall time, importing the mutated overlay
    patched_verdict: Verdict
    imported_verdict: Verdict

    @property
    def same(self) -> bool:
        return self.patched_verdict == self.imported_verdict


def summary(rows: list[Comparison]) -> str:
    patched = sum(r.patched_seconds for r in rows)
    imported = sum(r.imported_seconds for r in rows)
    ratios = [r.imported_seconds / r.patched_seconds for r in rows if r.patched_seconds]
    median = f"{statistics.median(ratios):.2f}x" if ratios else "-"
    return (
        f"patched vs imported: {len(rows)} mutants, {sum(r.same for r in rows)} judged alike;"
        f" worker time {patched:.1f} s vs {imported:.1f} s ({imported / patched if patched else 0:.2f}x in total,"
        f" median {median} a mutant)"
    )


def write(rows: list[Comparison], out: Path) -> str:
    """patching.md and patching.json in `out`; the summary line."""
    line = summary(rows)
    rows_md = [
        (
            f"`{r.mutant}`",
            f"{r.patched_seconds:.1f}",
            f"{r.imported_seconds:.1f}",
            f"{r.imported_seconds / r.patched_seconds:.2f}" if r.patched_seconds else "-",
            "yes" if r.same else f"no: {r.patched_verdict} vs {r.imported_verdict}",
        )
        for r in rows
    ]
    table = markdown_rows(["mutant", "patched s", "imported s", "ratio", "same verdict"], rows_md)
    (out / "patching.md").write_text(f"# Patched vs imported mutants\n\n{line}\n\n{table}\n")
    (out / "patching.json").write_text(json.dumps([{**asdict(r), "same": r.same} for r in rows], indent=1) + "\n")
    return line
