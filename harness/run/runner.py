"""The differential runner: every cell and every baseline in a process of its own, then judged."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from offload_conformance.fixtures import FixtureSpec, generate
from offload_conformance.fixtures.generate import fixture_digest
from offload_conformance.harness.environment import environment
from offload_conformance.harness.judge.verdict import baseline_result, judge
from offload_conformance.harness.plan.cells import Cell, safe_name
from offload_conformance.harness.plan.selection import Settings
from offload_conformance.harness.results import CellResult, RunResult
from offload_conformance.harness.run.process import Execution, execute

Progress = Callable[[int, int, CellResult], None]


class Runner:
    """Runs cells into `out`, each baseline once per (fixture, save options); reusable across calls
    (the pytest plugin runs one cell per item)."""

    def __init__(self, out: Path, settings: Settings, fixture_dirs: dict[FixtureSpec, Path] | None = None) -> None:
        self.out = out
        self.settings = settings
        self._fixture_dirs: dict[FixtureSpec, Path] = dict(fixture_dirs or {})
        self._baselines: dict[Cell, Execution] = {}

    def fixture_dir(self, spec: FixtureSpec) -> Path:
        """Generated, or verified, once per runner."""
        if spec not in self._fixture_dirs:
            self._fixture_dirs[spec] = generate(spec)
        return self._fixture_dirs[spec]

    def execute(self, cell: Cell, kind: str = "cells") -> Execution:
        s = self.settings
        workdir = self.out / kind / safe_name(cell.cell_id)
        return execute(cell, self.fixture_dir(cell.fixture), workdir, s.timeout, s.memory_limit, s.fp8_on_cpu)

    def baseline(self, cell: Cell) -> Execution:
        control = cell.baseline
        if control not in self._baselines:
            self._baselines[control] = self.execute(control, "baselines")
        return self._baselines[control]

    def judge(self, cell: Cell, execution: Execution) -> CellResult:
        s = self.settings
        return judge(cell, execution, self.baseline(cell), s.require, s.budget, self.fixture_dir(cell.fixture))

    def run_one(self, cell: Cell) -> CellResult:
        return self.judge(cell, self.execute(cell))

    def run(self, cells: list[Cell], progress: Progress | None = None) -> RunResult:
        """All cells and their baselines, `settings.jobs` at a time."""
        self.out.mkdir(parents=True, exist_ok=True)
        for spec in dict.fromkeys(c.fixture for c in cells):
            self.fixture_dir(spec)
        controls = sorted({c.baseline for c in cells} - self._baselines.keys(), key=lambda c: c.cell_id)
        # Baselines and cells are independent executions: all go to the pool at once, and a cell is
        # judged (in this thread) once both its own run and its baseline are done.
        with ThreadPoolExecutor(max_workers=self.settings.jobs) as pool:
            base_futures = {c: pool.submit(self.execute, c, "baselines") for c in controls}
            cell_futures = {pool.submit(self.execute, c): c for c in cells}
            judged: dict[Cell, CellResult] = {}
            for future in as_completed(cell_futures):
                cell = cell_futures[future]
                if cell.baseline in base_futures:
                    self._baselines[cell.baseline] = base_futures[cell.baseline].result()
                judged[cell] = self.judge(cell, future.result())
                if progress:
                    progress(len(judged), len(cells), judged[cell])
        used = {c.baseline for c in cells}
        baselines = {c.cell_id: baseline_result(self.fixture_dir(c.fixture), self._baselines[c]) for c in used}
        return RunResult(
            require=self.settings.require,
            environment=environment(),
            fp8_on_cpu=self.settings.fp8_on_cpu,
            cells=tuple(judged[c] for c in cells),
            baselines=dict(sorted(baselines.items())),
            fixtures={spec.name: fixture_digest(spec) for spec in dict.fromkeys(c.fixture for c in cells)},
        )


def run_cells(
    cells: list[Cell],
    out: Path,
    settings: Settings | None = None,
    progress: Progress | None = None,
    fixture_dirs: dict[FixtureSpec, Path] | None = None,
) -> RunResult:
    return Runner(out, settings or Settings(), fixture_dirs).run(cells, progress)
