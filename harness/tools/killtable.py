"""The kill table: every fault run where it applies; caught means failed with exactly its classes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from offload_conformance.fixtures import DEFAULT_FIXTURES, FixtureSpec
from offload_conformance.fixtures.catalog import layout_for
from offload_conformance.harness.outcomes import Outcome, Stage
from offload_conformance.harness.plan.cells import DEFAULT_SHARDS, SMALL_SHARDS, Cell, save_options
from offload_conformance.harness.plan.faults import FAULTS, Fault
from offload_conformance.harness.plan.modes import Mode, by_name
from offload_conformance.harness.plan.selection import Settings
from offload_conformance.harness.report.table import aligned
from offload_conformance.harness.results import CellResult
from offload_conformance.harness.run.runner import run_cells

KILL_MODE = "disk-full+offload_buffers"  # everything offloaded, buffers included


class Verdict(StrEnum):
    CAUGHT = "caught"  # failed with exactly the fault's expected classes
    WRONG_CLASS = "wrong-class"
    MISSED = "missed"
    ERROR = "error"
    NOT_APPLICABLE = "n/a"  # no correct save to inject a bug into (upstream cannot load or save it)


@dataclass(frozen=True)
class Kill:
    fault: str
    fixture: str
    verdict: Verdict
    cell: CellResult


# Fixture kinds on which even a correct save fails (the MTP layer is dropped on load: dropped-on-load on every
# cell), so a fault's own classes cannot be told apart there.
NO_CORRECT_SAVE = frozenset({"mtp"})


def applies(fault: Fault, spec: FixtureSpec) -> bool:
    kinds = layout_for(spec).kinds
    return fault.needs <= kinds and not kinds & (NO_CORRECT_SAVE | fault.avoids)


def cells_for(fixtures: list[FixtureSpec], mode: Mode, faults: set[str] | None = None) -> list[Cell]:
    cells = []
    for fault in FAULTS.values():
        if faults is not None and fault.name not in faults:
            continue
        size = fault.shard_size or (SMALL_SHARDS if fault.sharded_save else DEFAULT_SHARDS)
        options = tuple(sorted(save_options(size) + fault.save_options))
        placed = by_name(fault.mode) if fault.mode else mode  # a fault of a load path, in that path's mode
        cells += [
            Cell(spec, placed, f"faults:{fault.name}", options, fault.context)
            for spec in fixtures
            if applies(fault, spec)
        ]
    return cells


def verdict(fault: Fault, spec: FixtureSpec, cell: CellResult) -> Verdict:
    if cell.outcome is Outcome.UNSUPPORTED or cell.baseline_failure is not None:
        return Verdict.NOT_APPLICABLE
    if cell.failure is not None and cell.failure.stage is Stage.LOAD:
        return Verdict.NOT_APPLICABLE  # transformers could not load the fixture in this mode: no save to break
    if cell.outcome is Outcome.PASS:
        return Verdict.MISSED
    # A fault that raises must be an error of the save, with the classes of what it did before raising.
    if cell.outcome is not (Outcome.ERROR if fault.raises else Outcome.FAIL):
        return Verdict.ERROR
    if fault.raises and (cell.failure is None or cell.failure.stage is not Stage.SAVE):
        return Verdict.ERROR
    return Verdict.CAUGHT if set(cell.classes) == fault.expected_for(layout_for(spec).kinds) else Verdict.WRONG_CLASS


def kill_table(
    out: Path, fixtures: list[FixtureSpec] | None = None, jobs: int = 2, faults: set[str] | None = None
) -> list[Kill]:
    """Every fault (or those named in `faults`) on every fixture it applies to."""
    cells = cells_for(fixtures or list(DEFAULT_FIXTURES), by_name(KILL_MODE), faults)
    result = run_cells(cells, out, Settings(jobs=jobs, resave_everywhere=True))  # not-idempotent needs resave
    kills = []
    for cell, res in zip(cells, result.cells, strict=True):
        fault = FAULTS[cell.impl.removeprefix("faults:")]
        kills.append(Kill(fault.name, cell.fixture.name, verdict(fault, cell.fixture, res), res))
    return kills


def render(kills: list[Kill]) -> str:
    fixtures = sorted({k.fixture for k in kills}, key=[s.name for s in DEFAULT_FIXTURES].index)
    by = {(k.fault, k.fixture): k for k in kills}
    mark = {
        Verdict.CAUGHT: "x",
        Verdict.MISSED: "MISSED",
        Verdict.WRONG_CLASS: "WRONG",
        Verdict.ERROR: "ERROR",
        Verdict.NOT_APPLICABLE: "n/a",
    }
    rows = [["fault", "expected", *fixtures]]
    for name, fault in FAULTS.items():
        rows.append(
            [
                name,
                ",".join(sorted(fault.expected)),
                *(mark[by[(name, f)].verdict] if (name, f) in by else "-" for f in fixtures),
            ]
        )
    lines = [aligned(rows)]
    counted = [k for k in kills if k.verdict is not Verdict.NOT_APPLICABLE]
    caught = sum(k.verdict is Verdict.CAUGHT for k in counted)
    lines.append(
        f"\nmode {KILL_MODE} (a load path's fault: its own mode); x = failed with exactly the expected classes;"
        " - = does not apply;"
        " n/a = no baseline to inject into"
    )
    lines.append(f"caught {caught} of {len(counted)} fault cells ({100 * caught / max(len(counted), 1):.0f}%)")
    for k in counted:
        if k.verdict is not Verdict.CAUGHT:
            lines.append(
                f"  {k.fault} on {k.fixture}: {k.verdict}: {k.cell.outcome} {','.join(k.cell.classes)}: {k.cell.detail}"
            )
    return "\n".join(lines)
