"""The differential runner: every cell in its own subprocess, compared with the in-memory baseline."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.context
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fixtures import FixtureSpec, generate
from fixtures.generate import fixture_digest
from harness.budget import Budget
from harness.cell import PRELOAD, serve
from harness.compare import Comparison, compare
from harness.modes import Mode, by_name
from harness.results import CellResult, RunResult, environment

BASELINE_MODE = "in-memory"
BASELINE_IMPL = "upstream"
LOG_TAIL_LINES = 15


@dataclass(frozen=True)
class Cell:
    fixture: FixtureSpec
    mode: Mode
    impl: str
    save_options: tuple[tuple[str, Any], ...] = ()

    @property
    def options_id(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.save_options)

    @property
    def cell_id(self) -> str:
        parts = [self.fixture.name, self.mode.name, self.impl] + ([self.options_id] if self.save_options else [])
        return "-".join(parts)


@dataclass(frozen=True)
class Execution:
    """What a cell subprocess did: its own report, or why there is none."""

    save_dir: Path
    report: dict[str, Any] | None
    failure: str | None
    log_tail: str
    seconds: float

    def _described(self, key: str) -> str | None:
        err = (self.report or {}).get(key)
        if err is None:
            return None
        where = f" ({err['where']})" if err.get("where") else ""
        return f"{err['stage']} raised {err['type']}: {err['message']}{where}"

    @property
    def error(self) -> str | None:
        """Why the cell produced no checkpoint, or None when it saved (or could not run here)."""
        return self._described("error") or self.failure

    @property
    def unsupported(self) -> str | None:
        """Why this environment cannot run the cell at all (e.g. a quantizer's package is missing)."""
        return self._described("unsupported")


def safe_name(name: str) -> str:
    """A cell id as a directory name."""
    return "".join(c if c.isalnum() or c in "-_.+=," else "_" for c in name)


def _tail(log: Path) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 64 * 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-LOG_TAIL_LINES:])


_CONTEXT: multiprocessing.context.ForkServerContext | None = None
_CONTEXT_LOCK = threading.Lock()


def _context() -> multiprocessing.context.ForkServerContext:
    """A fork server with torch and transformers imported; started once, on first use."""
    global _CONTEXT
    with _CONTEXT_LOCK:
        if _CONTEXT is None:
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ.setdefault("OMP_NUM_THREADS", "1")
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            _CONTEXT = ctx
        return _CONTEXT


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _watch(proc: multiprocessing.process.BaseProcess, timeout: float, memory_limit: int | None) -> str | None:
    """Wait for the cell; the reason to kill it (timeout, memory limit), or None when it ended."""
    deadline = time.monotonic() + timeout
    while True:
        proc.join(min(0.05, max(0.0, deadline - time.monotonic())))
        if proc.exitcode is not None:
            return None
        if time.monotonic() >= deadline:
            return f"timed out after {timeout:g}s"
        if memory_limit is not None and (rss := _rss(proc.pid)) > memory_limit:
            return f"exceeded the memory limit: RSS {rss / 2**20:.0f} MiB > {memory_limit / 2**20:.0f} MiB"


def execute(cell: Cell, fixture_dir: Path, workdir: Path, timeout: float, memory_limit: int | None = None) -> Execution:
    """Load and save one cell in a process of its own; never raises for anything the cell does."""
    workdir = workdir.resolve()  # the cell must not depend on the working directory
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    log = workdir / "log.txt"
    request = {
        "fixture_dir": str(fixture_dir),
        "mode": cell.mode.name,
        "impl": cell.impl,
        "save_options": dict(cell.save_options),
        "save_dir": str(workdir / "saved"),
        "offload_dir": str(workdir / "offload"),
        "report": str(workdir / "report.json"),
        "log": str(log),
    }
    (workdir / "request.json").write_text(json.dumps(request, indent=2))
    t0 = time.perf_counter()
    proc = _context().Process(target=serve, args=(str(workdir / "request.json"),), daemon=True)
    proc.start()
    verdict = _watch(proc, timeout, memory_limit)
    if verdict is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the cell and anything it started
        proc.join()
        return Execution(workdir / "saved", None, verdict, _tail(log), time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    code = proc.exitcode
    report_path = workdir / "report.json"
    # The report is the truth: multiprocessing's forkserver occasionally loses a child's exit
    # status (reported as 255) even after the child finished and wrote its report.
    if not report_path.exists():
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return Execution(workdir / "saved", None, f"cell process died ({how}) before reporting", _tail(log), seconds)
    return Execution(workdir / "saved", json.loads(report_path.read_text()), None, _tail(log), seconds)


def judge(cell: Cell, run: Execution, baseline: Execution, require: str, budget: Budget | None = None) -> CellResult:
    common = {
        "cell_id": cell.cell_id,
        "fixture": cell.fixture.name,
        "mode": cell.mode.name,
        "impl": cell.impl,
        "save_options": dict(cell.save_options),
        "seconds": round(run.seconds, 2),
        "hf_device_map": (run.report or {}).get("hf_device_map"),
        "cost": (run.report or {}).get("cost"),
    }
    for execution, prefix in ((baseline, "baseline "), (run, "")):
        if execution.unsupported is not None:
            return CellResult(
                outcome="unsupported", grade=None, classes=(), detail=f"{prefix}{execution.unsupported}", **common
            )
    if baseline.error is not None:
        # No correct checkpoint to compare with: the root cause comes first, the cell's own error after.
        own = f"; this cell: {run.error}" if run.error else ""
        return CellResult(
            outcome="error",
            grade=None,
            classes=(),
            detail=f"baseline failed: {baseline.error}{own}",
            log_tail=baseline.log_tail,
            **common,
        )
    if run.error is not None:
        return CellResult(outcome="error", grade=None, classes=(), detail=run.error, log_tail=run.log_tail, **common)
    result: Comparison = compare(baseline.save_dir, run.save_dir)
    over = (budget or Budget()).violations(common["cost"])
    differences = [{"cls": d.cls, "detail": d.detail, "tensor": d.tensor, "file": d.file} for d in result.differences]
    differences += [{"cls": cls, "detail": what, "tensor": None, "file": None} for cls, what in over]
    outcome = "pass" if result.meets(require) and not over else "fail"
    detail = "; ".join(d["detail"] for d in differences[:3])
    if len(differences) > 3:
        detail += f"; and {len(differences) - 3} more"
    return CellResult(
        outcome=outcome,
        grade=result.grade,
        classes=result.classes + tuple(cls for cls, _ in over),
        detail=detail,
        differences=tuple(differences),
        **common,
    )


def plan(
    fixtures: Iterable[FixtureSpec],
    modes: Iterable[Mode],
    impls: Iterable[str],
    save_options: Iterable[tuple[tuple[str, Any], ...]] = ((),),
) -> list[Cell]:
    return [Cell(f, m, i, o) for f in fixtures for o in save_options for m in modes for i in impls]


def baseline_of(cell: Cell) -> Cell:
    """The control a cell is compared with: the installed transformers saving the in-memory model."""
    return Cell(cell.fixture, by_name(BASELINE_MODE), BASELINE_IMPL, cell.save_options)


def _baseline_info(cell: Cell, fixture_dir: Path, run: Execution) -> dict[str, Any]:
    info: dict[str, Any] = {"fixture_dir": str(fixture_dir), "seconds": round(run.seconds, 2)}
    if run.unsupported is not None:
        info["unsupported"] = run.unsupported
    elif run.error is not None:
        info["error"] = run.error
    else:
        # Is a plain load -> save round trip already lossless? (weights only: config.json is rewritten)
        rt = compare(fixture_dir, run.save_dir, weights_only=True)
        info["roundtrip_grade"] = rt.grade
        info["roundtrip_classes"] = list(rt.classes)
    return info


def run_cells(
    cells: list[Cell],
    out: Path,
    *,
    require: str = "bytes",
    timeout: float = 600,
    jobs: int = 1,
    progress: Callable[[int, int, CellResult], None] | None = None,
    budget: Budget | None = None,
    memory_limit: int | None = None,
    fixture_dirs: dict[FixtureSpec, Path] | None = None,
) -> RunResult:
    out.mkdir(parents=True, exist_ok=True)
    # The caller may have generated (and so verified) the fixtures already.
    fixture_dirs = fixture_dirs or {c.fixture: generate(c.fixture) for c in cells}
    controls = sorted({baseline_of(c) for c in cells}, key=lambda c: c.cell_id)
    # Baselines and cells are independent executions: all go to the pool at once, and a cell is
    # judged (in this thread) once both its own run and its baseline are done.
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        base_futures = {
            c: pool.submit(
                execute, c, fixture_dirs[c.fixture], out / "baselines" / safe_name(c.cell_id), timeout, memory_limit
            )
            for c in controls
        }
        cell_futures = {
            pool.submit(
                execute, c, fixture_dirs[c.fixture], out / "cells" / safe_name(c.cell_id), timeout, memory_limit
            ): c
            for c in cells
        }
        judged: dict[Cell, CellResult] = {}
        for future in as_completed(cell_futures):
            cell = cell_futures[future]
            judged[cell] = judge(cell, future.result(), base_futures[baseline_of(cell)].result(), require, budget)
            if progress:
                progress(len(judged), len(cells), judged[cell])
        baselines = {c: f.result() for c, f in base_futures.items()}
    results = [judged[c] for c in cells]
    info = {c.cell_id: _baseline_info(c, fixture_dirs[c.fixture], r) for c, r in baselines.items()}
    digests = {spec.name: fixture_digest(spec) for spec in fixture_dirs}
    return RunResult(require=require, environment=environment(), cells=tuple(results), baselines=info, fixtures=digests)
