"""The differential runner: every cell and every baseline in a process of its own, then judged."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path

from offload_conformance.fixtures import FixtureSpec, generate
from offload_conformance.fixtures.generate import fixture_digest
from offload_conformance.harness.environment import environment
from offload_conformance.harness.execution import Execution
from offload_conformance.harness.judge.verdict import baseline_result, judge, resave_verdict
from offload_conformance.harness.outcomes import Outcome, Stage
from offload_conformance.harness.plan.cells import Cell, safe_name
from offload_conformance.harness.plan.selection import Settings, resaves
from offload_conformance.harness.results import CellResult, Failure, RunResult
from offload_conformance.harness.run.fp8_on_cpu import dequantized_on_load
from offload_conformance.harness.run.process import execute

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

    def execute(self, cell: Cell, kind: str = "cells", earlier: Execution | None = None) -> Execution:
        """`earlier`: the execution of `cell.earlier`, the save its target holds before the cell's save."""
        s = self.settings
        workdir = self.out / kind / safe_name(cell.cell_id)
        fixture = self.fixture_dir(cell.fixture)
        if cell.earlier is not None:
            earlier = earlier or self.control(cell.earlier)
            problem = earlier.failure or earlier.unsupported
            if problem is not None:
                why = f"no earlier save to save over: {cell.earlier.cell_id}: {problem}"
                return Execution(workdir / "saved", "", 0.0, unsupported=Failure(Stage.SAVE, "NoEarlierSave", why))
        # The model is compared before and after the save in every cell; a baseline is only a reference save.
        lifecycle = kind == "cells"
        oracles = s.oracles and kind == "cells"
        return execute(
            cell,
            fixture,
            workdir,
            s.timeout,
            s.memory_limit,
            s.fp8_on_cpu,
            lifecycle=lifecycle,
            oracles=oracles,
            earlier=earlier.save_dir if cell.earlier is not None and earlier is not None else None,
            logits=kind == "baselines",  # a cell's come from its lifecycle check
        )

    def resave(self, cell: Cell, first: Execution) -> Execution:
        """The cell's save loaded back in the same mode and saved again by the same IUT."""
        s = self.settings
        workdir = first.save_dir.parent / "resave"
        fixture = self.fixture_dir(cell.fixture)
        return execute(cell, fixture, workdir, s.timeout, s.memory_limit, s.fp8_on_cpu, source_dir=first.save_dir)

    def baseline(self, cell: Cell) -> Execution:
        return self.control(cell.baseline)

    def control(self, control: Cell) -> Execution:
        """An in-memory save into an empty directory (a baseline, or an earlier save), run once per runner."""
        if control not in self._baselines:
            self._baselines[control] = self.execute(control, "baselines")
        return self._baselines[control]

    def controls(self) -> dict[Cell, Execution]:
        """Every control executed so far (baselines, earlier saves): for one that is a planned cell, that cell's
        execution (run)."""
        return dict(self._baselines)

    def judge(self, cell: Cell, execution: Execution, baseline: Execution | None = None) -> CellResult:
        s = self.settings
        baseline = baseline or self.baseline(cell)
        # Weights the load turns into others on purpose (dequantized, or cast to the dtype asked for) are not the
        # fixture's own files, so those are no standard for the save.
        converted = dequantized_on_load(cell.fixture, s.fp8_on_cpu) or bool(getattr(cell.fixture, "load_dtype", ""))
        result = judge(cell, execution, baseline, s.require, s.budget, self.fixture_dir(cell.fixture), converted)
        if result.outcome is Outcome.PASS and resaves(cell, s):
            result = resave_verdict(result, execution.save_dir, self.resave(cell, execution))
        return result

    def run_one(self, cell: Cell) -> CellResult:
        return self.judge(cell, self.execute(cell))

    def _cell(
        self,
        cell: Cell,
        baseline: Future[Execution] | None,
        earlier: Future[Execution] | None = None,
        ran: Future[Execution] | None = None,
    ) -> CellResult:
        """Run and judge one cell (in a pool thread: its resave, if any, follows at once); `ran`: the cell already
        runs as a control."""
        if ran is not None:
            execution = ran.result()
        else:
            execution = self.execute(cell, earlier=earlier.result() if earlier is not None else None)
        return self.judge(cell, execution, baseline.result() if baseline is not None else None)

    def run(self, cells: list[Cell], progress: Progress | None = None) -> RunResult:
        """All cells and their baselines, `settings.jobs` at a time."""
        self.out.mkdir(parents=True, exist_ok=True)
        for spec in dict.fromkeys(c.fixture for c in cells):
            self.fixture_dir(spec)
        wanted = {c.baseline for c in cells} | {c.earlier for c in cells if c.earlier is not None}
        controls = sorted(wanted - self._baselines.keys(), key=lambda c: c.cell_id)
        # A control that is a planned cell too (the in-memory upstream save into an empty directory) runs once, as
        # the cell: the same load and save, and its lifecycle check reports the logits a baseline does.
        planned = set(cells)
        # Baselines and cells are independent executions: all go to the pool at once, and a cell is
        # judged in the pool thread that ran it, once its baseline is done. Baselines are submitted first, so a
        # cell that waits for one waits for a baseline that is running or done, never for a queued one.
        with ThreadPoolExecutor(max_workers=self.settings.jobs) as pool:
            base_futures = {c: pool.submit(self.execute, c, "cells" if c in planned else "baselines") for c in controls}
            cell_futures = {
                pool.submit(
                    self._cell,
                    c,
                    base_futures.get(c.baseline),
                    c.earlier and base_futures.get(c.earlier),
                    base_futures.get(c),
                ): c
                for c in cells
            }
            judged: dict[Cell, CellResult] = {}
            for future in as_completed(cell_futures):
                cell = cell_futures[future]
                judged[cell] = future.result()
                if progress:
                    progress(len(judged), len(cells), judged[cell])
        self._baselines.update({c: f.result() for c, f in base_futures.items()})
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
