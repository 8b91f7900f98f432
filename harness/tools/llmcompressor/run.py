"""Run the llm-compressor cells: every flow in a process of its own, judged against the in-memory flow.

A flow's process is forked from the harness's cell server (harness.run.process) with llmcompressor imported
once; the cell's load is harness.run.cell's, its save is flow.py's (quantize, then save). The oneshot runs
inside the timed save, so the per-cell cost measurement is dropped: it would count the quantization.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from importlib import metadata
from pathlib import Path

from offload_conformance.fixtures import FixtureSpec, generate
from offload_conformance.fixtures.generate import fixture_digest
from offload_conformance.harness.environment import describe_transformers, environment
from offload_conformance.harness.execution import Execution
from offload_conformance.harness.judge.verdict import judge
from offload_conformance.harness.outcomes import FailureClass, Grade, Outcome
from offload_conformance.harness.plan.cells import safe_name
from offload_conformance.harness.report import terminal
from offload_conformance.harness.report.grid import counts
from offload_conformance.harness.results import BaselineResult, CellResult, Difference, RunResult
from offload_conformance.harness.run import process
from offload_conformance.harness.tools.llmcompressor import roundtrip
from offload_conformance.harness.tools.llmcompressor.plan import BASELINE_SAVER, FlowCell

Progress = Callable[[int, int, CellResult], None]
PACKAGES = ("llmcompressor", "compressed-tensors")
# Imported once by the fork server: llmcompressor costs ~2 s per process otherwise.
PRELOAD = (
    "llmcompressor",
    "llmcompressor.modifiers.quantization",
    "compressed_tensors",
    "offload_conformance.harness.tools.llmcompressor.flow",
)


def versions() -> dict[str, str]:
    out = {}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _execute(cell: FlowCell, fixture_dir: Path, out: Path, kind: str, timeout: float) -> Execution:
    workdir = out / kind / safe_name(cell.cell_id)
    return process.execute(cell.as_cell(), fixture_dir, workdir, timeout)


def _result(cell: FlowCell, run: Execution, baseline: Execution) -> CellResult:
    # No fixture_dir: the bf16 source cannot judge a quantized save, so a failed baseline is an error.
    judged = judge(cell.as_cell(), run, baseline, Grade.BYTES)
    judged = dataclasses.replace(judged, cell_id=cell.cell_id, impl=cell.saver, cost=None)
    return _with_round_trip(judged, roundtrip.read(run.save_dir.parent))


def _with_round_trip(judged: CellResult, reloaded: str | None) -> CellResult:
    """A save that does not load back is a failure of the cell (class reload), whatever its bytes."""
    if not reloaded or judged.outcome not in (Outcome.PASS, Outcome.FAIL):
        return judged
    found = Difference(FailureClass.RELOAD, f"loaded back with from_pretrained: {reloaded}")
    classes = tuple(dict.fromkeys((*judged.classes, FailureClass.RELOAD)))
    detail = f"{judged.detail}; {found.detail}" if judged.outcome is Outcome.FAIL else found.detail
    differences = (*judged.differences, found)
    return dataclasses.replace(judged, outcome=Outcome.FAIL, classes=classes, differences=differences, detail=detail)


def _baseline(spec_dir: Path, run: Execution) -> BaselineResult:
    return BaselineResult(str(spec_dir), round(run.seconds, 2), failure=run.failure, unsupported=run.unsupported)


def run_flows(
    cells: list[FlowCell], out: Path, jobs: int = 2, timeout: float = 300.0, progress: Progress | None = None
) -> RunResult:
    """Every cell and its baseline, `jobs` processes at a time; cells in plan order."""
    out.mkdir(parents=True, exist_ok=True)
    specs: dict[FixtureSpec, Path] = {c.fixture: generate(c.fixture) for c in cells}
    process.preload(*PRELOAD)
    controls = list(dict.fromkeys(c.baseline for c in cells))
    judged: dict[FlowCell, CellResult] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        base_futures = {c: pool.submit(_execute, c, specs[c.fixture], out, "baselines", timeout) for c in controls}
        cell_futures = {pool.submit(_execute, c, specs[c.fixture], out, "cells", timeout): c for c in cells}
        for future in as_completed(cell_futures):
            cell = cell_futures[future]
            judged[cell] = _result(cell, future.result(), base_futures[cell.baseline].result())
            if progress:
                progress(len(judged), len(cells), judged[cell])
        baselines = {c: f.result() for c, f in base_futures.items()}
    return RunResult(
        require=Grade.BYTES,
        environment=environment() | versions(),
        cells=tuple(judged[c] for c in cells),
        baselines={c.cell_id: _baseline(specs[c.fixture], e) for c, e in baselines.items()},
        fixtures={spec.name: fixture_digest(spec) for spec in specs},
    )


def render(result: RunResult) -> str:
    """The terminal view: versions, baselines, the cell table and what did not pass."""
    env = result.environment
    head = [
        f"llmcompressor {env.get('llmcompressor')}, compressed-tensors {env.get('compressed-tensors')},"
        f" {describe_transformers(env)}, accelerate {env.get('accelerate')}, torch {env.get('torch')}",
        f"standard: every saved file byte-identical to the in-memory flow's ({BASELINE_SAVER} saver)",
    ]
    for name, b in result.baselines.items():
        head.append(f"baseline {name}: {f'error: {b.failure}' if b.failure else 'saved'}")
    summary = ", ".join(f"{n} {o}" for o, n in counts(result).items() if n)
    more = terminal.details(result)
    return "\n".join([*head, "", terminal.table(result), "", summary, *(["", more] if more else [])])
