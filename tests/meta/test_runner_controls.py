"""The runner's controls: each baseline and earlier save executed once, a planned in-memory cell serving as its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from offload_conformance.fixtures import by_name as fixture
from offload_conformance.harness.execution import Execution
from offload_conformance.harness.plan.cells import Cell
from offload_conformance.harness.plan.contexts import Context
from offload_conformance.harness.plan.modes import by_name as mode
from offload_conformance.harness.plan.selection import Settings
from offload_conformance.harness.run import runner as runner_module
from offload_conformance.harness.run.runner import Runner

QWEN = fixture("qwen3_moe")
SHARDS = (("max_shard_size", "24KB"),)


def _run(cells: list[Cell], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[list[str], dict, dict]:
    """Run `cells` with executions recorded instead of made; (what was executed, cell -> (execution, baseline), the
    runner's controls)."""
    executed: list[str] = []
    judged: dict[str, tuple[Execution, Execution | None]] = {}

    def execute(self: Runner, cell: Cell, kind: str = "cells", earlier: Execution | None = None) -> Execution:
        executed.append(f"{kind}/{cell.cell_id}")
        return Execution(tmp_path / kind / cell.cell_id / "saved", "", 0.0)

    def judge(self: Runner, cell: Cell, execution: Execution, baseline: Execution | None = None) -> object:
        judged[cell.cell_id] = (execution, baseline)
        return cell.cell_id

    monkeypatch.setattr(Runner, "execute", execute)
    monkeypatch.setattr(Runner, "judge", judge)
    monkeypatch.setattr(runner_module, "baseline_result", lambda fixture_dir, execution: execution)
    runner = Runner(tmp_path, Settings(jobs=2), {QWEN: tmp_path})
    runner.run(cells)
    return executed, judged, runner.controls()


def test_an_in_memory_cell_is_its_cells_baseline_and_runs_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    in_memory = Cell(QWEN, mode("in-memory"), "upstream")
    disk = Cell(QWEN, mode("disk-full"), "upstream")
    executed, judged, controls = _run([disk, in_memory], monkeypatch, tmp_path)
    assert sorted(executed) == [f"cells/{disk.cell_id}", f"cells/{in_memory.cell_id}"]
    mine = judged[in_memory.cell_id][0]
    assert controls == {in_memory: mine}  # what the mutants' reach run records as the baseline's
    assert judged[disk.cell_id][1] is mine
    assert judged[in_memory.cell_id][1] is mine


def test_a_control_not_planned_runs_as_a_baseline_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A sharded cell's baseline and a context's earlier save are in-memory saves no planned cell makes."""
    cells = [
        Cell(QWEN, mode("disk-full"), "upstream", SHARDS),
        Cell(QWEN, mode("disk-partial"), "upstream", SHARDS),
        Cell(QWEN, mode("disk-full"), "upstream", SHARDS, Context.OVER_SINGLE),
    ]
    executed, judged, controls = _run(cells, monkeypatch, tmp_path)
    baseline, earlier = cells[0].baseline, cells[2].earlier
    assert earlier is not None
    assert sorted(e for e in executed if e.startswith("baselines/")) == sorted(
        [f"baselines/{baseline.cell_id}", f"baselines/{earlier.cell_id}"]
    )
    assert len({id(judged[c.cell_id][1]) for c in cells}) == 1
    assert set(controls) == {baseline, earlier}
