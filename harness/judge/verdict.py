"""A cell's verdict: its execution against its baseline's, under the run's standard and budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from offload_conformance.harness.judge.budget import Budget
from offload_conformance.harness.judge.compare import Comparison, compare
from offload_conformance.harness.judge.source import config_differences
from offload_conformance.harness.outcomes import Grade, Outcome, Stage, ordered
from offload_conformance.harness.plan.cells import Cell
from offload_conformance.harness.results import BaselineResult, CellResult, Difference
from offload_conformance.harness.run.process import Execution

DETAIL_DIFFERENCES = 3  # differences spelled out in a cell's one-line detail


def judge(
    cell: Cell,
    run: Execution,
    baseline: Execution,
    require: Grade,
    budget: Budget | None = None,
    fixture_dir: Path | None = None,
) -> CellResult:
    """The cell's verdict against its baseline's save (or, where that raised, the fixture in `fixture_dir`)."""
    common: dict[str, Any] = {
        "cell_id": cell.cell_id,
        "fixture": cell.fixture.name,
        "mode": cell.mode.name,
        "impl": cell.impl,
        "save_options": dict(cell.save_options),
        "seconds": round(run.seconds, 2),
        "hf_device_map": run.hf_device_map,
        "cost": run.cost,
        "failure": run.failure,
    }
    for execution, prefix in ((baseline, "baseline "), (run, "")):
        if execution.unsupported is not None:
            detail = f"{prefix}{execution.unsupported}"
            return CellResult(outcome=Outcome.UNSUPPORTED, grade=None, classes=(), detail=detail, **common)
    if baseline.failure is not None and baseline.failure.stage is Stage.SAVE and fixture_dir is not None:
        # transformers loaded the fixture but could not save it in memory: the source checkpoint judges.
        against = f"source checkpoint: in-memory save raised {baseline.failure.type}: {baseline.failure.message}"
        common |= {"baseline_failure": baseline.failure, "judged_against": against}
        if run.failure is not None:
            detail = str(run.failure)
            return CellResult(
                outcome=Outcome.ERROR, grade=None, classes=(), detail=detail, log_tail=run.log_tail, **common
            )
        # The layout of a save that never succeeded in memory is unknown: named tensors are the standard.
        source = compare(fixture_dir, run.save_dir, weights_only=True)
        return _compared(source, fixture_dir, run, Grade.TENSORS, common)
    if baseline.failure is not None:
        # transformers' own load failed: no correct checkpoint to compare with, whatever the IUT. The
        # root cause comes first, the cell's own error after.
        own = f"; this cell: {run.failure}" if run.failure else ""
        return CellResult(
            outcome=Outcome.ERROR,
            grade=None,
            classes=(),
            detail=f"baseline failed: {baseline.failure}{own}",
            baseline_failure=baseline.failure,
            log_tail=baseline.log_tail,
            **common,
        )
    if run.failure is not None:
        return CellResult(
            outcome=Outcome.ERROR, grade=None, classes=(), detail=str(run.failure), log_tail=run.log_tail, **common
        )
    result = compare(baseline.save_dir, run.save_dir)
    differences = result.differences + tuple((budget or Budget()).violations(run.cost))
    return _verdict(result.grade, differences, require, len(differences) > len(result.differences), common)


def _compared(result: Comparison, source: Path, run: Execution, require: Grade, common: dict[str, Any]) -> CellResult:
    """Against the source checkpoint: its weights, and the config fields a save carries over."""
    differences = result.differences + tuple(config_differences(source, run.save_dir))
    grade = result.grade if len(differences) == len(result.differences) else None
    return _verdict(grade, differences, require, False, common)


def _verdict(
    grade: Grade | None, differences: tuple[Difference, ...], require: Grade, over: bool, common: dict[str, Any]
) -> CellResult:
    detail = "; ".join(d.detail for d in differences[:DETAIL_DIFFERENCES])
    if len(differences) > DETAIL_DIFFERENCES:
        detail += f"; and {len(differences) - DETAIL_DIFFERENCES} more"
    passes = grade is not None and grade.meets(require) and not over
    return CellResult(
        outcome=Outcome.PASS if passes else Outcome.FAIL,
        grade=grade,
        classes=ordered({d.cls for d in differences}),
        detail=detail,
        differences=differences,
        **common,
    )


def baseline_result(fixture_dir: Path, run: Execution) -> BaselineResult:
    if run.unsupported is not None or run.failure is not None:
        return BaselineResult(str(fixture_dir), round(run.seconds, 2), failure=run.failure, unsupported=run.unsupported)
    # Is a plain load -> save round trip already lossless? (weights only: config.json is rewritten)
    rt = compare(fixture_dir, run.save_dir, weights_only=True)
    return BaselineResult(
        str(fixture_dir), round(run.seconds, 2), roundtrip_grade=rt.grade, roundtrip_classes=rt.classes
    )
