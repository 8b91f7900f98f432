"""The kill table: every fault run where it applies; caught means failed with exactly its classes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fixtures import DEFAULT_FIXTURES, FixtureSpec
from fixtures.architectures import layout_for
from fixtures.registry import SMALL_SHARDS
from harness.faults import FAULTS, Fault
from harness.modes import Mode, by_name
from harness.results import CellResult
from harness.runner import Cell, run_cells

KILL_MODE = "disk-full+offload_buffers"  # everything offloaded, buffers included


@dataclass(frozen=True)
class Kill:
    fault: str
    fixture: str
    verdict: str  # caught | wrong-class | missed | error
    cell: CellResult


def applies(fault: Fault, spec: FixtureSpec) -> bool:
    return fault.needs <= layout_for(spec).kinds


def cells_for(fixtures: list[FixtureSpec], mode: Mode) -> list[Cell]:
    cells = []
    for fault in FAULTS.values():
        options = (("max_shard_size", SMALL_SHARDS),) if fault.sharded_save else ()
        cells += [Cell(spec, mode, f"faults:{fault.name}", options) for spec in fixtures if applies(fault, spec)]
    return cells


def verdict(fault: Fault, spec: FixtureSpec, cell: CellResult) -> str:
    if cell.outcome == "unsupported" or cell.detail.startswith("baseline failed"):
        return "n/a"  # no correct save to inject a bug into (e.g. upstream cannot save it in memory)
    if cell.outcome == "pass":
        return "missed"
    if cell.outcome != "fail":
        return "error"
    return "caught" if set(cell.classes) == fault.expected_for(layout_for(spec).kinds) else "wrong-class"


def kill_table(out: Path, fixtures: list[FixtureSpec] | None = None, jobs: int = 2) -> list[Kill]:
    cells = cells_for(fixtures or list(DEFAULT_FIXTURES), by_name(KILL_MODE))
    result = run_cells(cells, out, jobs=jobs)
    kills = []
    for cell, res in zip(cells, result.cells, strict=True):
        fault = FAULTS[cell.impl.removeprefix("faults:")]
        kills.append(Kill(fault.name, cell.fixture.name, verdict(fault, cell.fixture, res), res))
    return kills


def render(kills: list[Kill]) -> str:
    fixtures = sorted({k.fixture for k in kills}, key=[s.name for s in DEFAULT_FIXTURES].index)
    by = {(k.fault, k.fixture): k for k in kills}
    mark = {"caught": "x", "missed": "MISSED", "wrong-class": "WRONG", "error": "ERROR", "n/a": "n/a"}
    rows = [["fault", "expected", *fixtures]]
    for name, fault in FAULTS.items():
        rows.append(
            [
                name,
                ",".join(sorted(fault.expected)),
                *(mark[by[(name, f)].verdict] if (name, f) in by else "-" for f in fixtures),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    counted = [k for k in kills if k.verdict != "n/a"]
    caught = sum(k.verdict == "caught" for k in counted)
    lines.append(
        f"\nmode {KILL_MODE}; x = failed with exactly the expected classes; - = does not apply;"
        " n/a = no baseline to inject into"
    )
    lines.append(f"caught {caught} of {len(counted)} fault cells ({100 * caught / max(len(counted), 1):.0f}%)")
    for k in counted:
        if k.verdict != "caught":
            lines.append(
                f"  {k.fault} on {k.fixture}: {k.verdict}: {k.cell.outcome} {','.join(k.cell.classes)}: {k.cell.detail}"
            )
    return "\n".join(lines)
