"""A cell's verdict: its execution against its baseline's, under the run's standard and budget."""

from __future__ import annotations

from pathlib import Path

from offload_conformance.harness.judge.budget import Budget
from offload_conformance.harness.judge.compare import compare
from offload_conformance.harness.outcomes import Grade, Outcome, ordered
from offload_conformance.harness.plan.cells import Cell
from offload_conformance.harness.results import BaselineResult, CellResult
from offload_conformance.harness.run.process import Execution

DETAIL_DIFFERENCES = 3  # differences spelled out in a cell's one-line detail


def judge(cell: Cell, run: Execution, baseline: Execution, require: Grade, budget: Budget | None = None) -> CellResult:
    common = {
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
    if baseline.failure is not None:
        # No correct checkpoint to compare with: the root cause comes first, the cell's own error after.
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
    over = len(differences) > len(result.differences)
    detail = "; ".join(d.detail for d in differences[:DETAIL_DIFFERENCES])
    if len(differences) > DETAIL_DIFFERENCES:
        detail += f"; and {len(differences) - DETAIL_DIFFERENCES} more"
    return CellResult(
        outcome=Outcome.PASS if result.meets(require) and not over else Outcome.FAIL,
        grade=result.grade,
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
