"""One run of the cells under the overlay (one mutant applied, or none), in a process of its own.

The analysis forks workers from a server that has torch imported (the part of the imports no mutant
touches); a worker puts the overlay first on its path before anything imports transformers, accelerate or
huggingface_hub, so it, and every cell process it starts, runs the overlay's code. Nothing from those
packages may be imported at module level here: this module is imported before the overlay is on the path.

Two kinds of run:
- reach (the unmutated run): every cell and baseline, in parallel through the runner's fork server, with
  coverage of the target files and the alternative oracles; the verdicts every mutant is compared with.
- mutant: the cells that reach the mutated line, one at a time, each forked from this process (which has
  imported what the fork server would: a second interpreter's imports would cost more than the cells; or, forked
  from a server that imported the unmutated packages, has patched the mutant's function in: hot.py);
  baselines that do not reach the line are the reach run's, read back. It stops at the first confirmed
  verdict change.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Imported by the server every worker is forked from, with what it learns a worker imports besides the targets.
ZYGOTE_PRELOAD = ["torch", "numpy", "safetensors.torch", "psutil", "yaml", "tokenizers"]
WORKER_FILE = "worker.json"
CRASH_CELLS = 3  # after a change to `error`, cells run to tell a crash of every cell from a detection


def main(job_path: str) -> None:
    """Entry point of a forked worker; everything it finds goes to WORKER_FILE beside the job."""
    job = json.loads(Path(job_path).read_text())
    out = Path(job["out"])
    log = os.open(out / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.setsid()
    os.chdir(out)  # a mutated save writing to a relative path (a swapped save_directory) writes here, not in a cwd
    t0 = time.perf_counter()
    if hot := job.get("hot"):  # forked from a server that imported the unmutated packages (hot.py)
        from offload_conformance.harness.tools.mutants.hot import patch

        if reason := patch(hot["qualname"], hot["file"], hot["mutated"]):
            _write(out, {"not_hot": reason})
            return
    elif stale := [p for p in job["packages"] if p in sys.modules]:
        _write(out, {"crash": f"imported before the overlay was on the path: {', '.join(stale)}"})
        return
    sys.path.insert(0, job["overlay"])
    os.environ["PYTHONPATH"] = os.pathsep.join([job["overlay"], os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    try:
        from offload_conformance.harness.run import process
        from offload_conformance.harness.run.cell import PRELOAD

        for module in PRELOAD:
            __import__(module)
    except BaseException as e:  # the mutated package does not import: nothing below can run
        _write(out, {"crash": f"import failed: {type(e).__name__}: {str(e).strip()[:300]}"})
        return
    imported = time.perf_counter() - t0
    if job["reach"]:
        result = _reach(job)
    else:
        process.fork_from_here()
        result = _mutant(job)
    _write(out, {"import_seconds": imported, **result})


def _write(out: Path, result: dict[str, Any]) -> None:
    tmp = out / (WORKER_FILE + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out / WORKER_FILE)


def _runner(job: dict[str, Any], jobs: int) -> tuple[Any, dict[str, Any]]:
    from offload_conformance.fixtures import FixtureSpec
    from offload_conformance.harness.plan import selection
    from offload_conformance.harness.run.runner import Runner

    settings = selection.Settings(timeout=job["timeout"], jobs=jobs, oracles=True)
    wanted = {k: tuple(v) if isinstance(v, list) else v for k, v in job["selection"].items()}
    cells = {c.cell_id: c for c in selection.plan(selection.Selection(**wanted))}
    dirs: dict[FixtureSpec, Path] = {}
    for c in cells.values():
        dirs.setdefault(c.fixture, Path(job["fixture_dirs"][c.fixture.name]))
    return Runner(Path(job["out"]), settings, dirs), cells


def _record(result: Any, execution: Any, seconds: float) -> dict[str, Any]:
    from offload_conformance.harness.outcomes import Stage

    failure = result.failure
    return {
        "cell": result.cell_id,
        "state": result.state,
        "classes": list(result.classes),
        "oracles": execution.oracles or {},
        "timeout": bool(failure and failure.stage is Stage.PROCESS and failure.type == "timeout"),
        "failure": str(failure) if failure else "",
        "seconds": round(seconds, 3),
    }


def _reach(job: dict[str, Any]) -> dict[str, Any]:
    """Every cell and baseline, with coverage of the target files: verdicts, oracles and lines executed."""
    from offload_conformance.harness.run.reach import REACH_ENV
    from offload_conformance.harness.run.reach import read as read_reach

    os.environ[REACH_ENV] = json.dumps(job["measure"])
    runner, cells = _runner(job, job["jobs"])
    planned = [cells[c] for c in job["cells"]]
    t0 = time.perf_counter()
    executions: dict[str, Any] = {}
    original = runner.execute

    def execute(cell: Any, kind: str = "cells", earlier: Any = None) -> Any:  # each execution kept: oracles, reach
        execution = original(cell, kind, earlier)
        executions[f"{kind}/{cell.cell_id}"] = execution
        return execution

    runner.execute = execute  # type: ignore[method-assign]
    result = runner.run(planned)
    shared = preloaded(job["measure"], job["modules"])
    records = [_record(r, executions[f"cells/{r.cell_id}"], r.seconds) for r in result.cells]
    for record in records:
        record["reach"] = _lines(read_reach(executions[f"cells/{record['cell']}"].save_dir.parent), shared)
    baselines = {}
    for control, execution in runner.controls().items():
        workdir = execution.save_dir.parent
        baselines[control.cell_id] = {"workdir": str(workdir), "reach": _lines(read_reach(workdir), shared)}
    return {
        "cells": records,
        "baselines": baselines,
        "preloaded": {f: sorted(lines) for f, lines in shared.items()},
        "cell_seconds": time.perf_counter() - t0,
    }


# Run in a fresh interpreter, under reach.recorded (REACH_ENV set): what the fork server every cell is forked from
# executes before any fork.
_PRELOAD_REACH = """
import sys
from pathlib import Path
from offload_conformance.harness.run.reach import recorded
with recorded(Path(sys.argv[1])):
    from offload_conformance.harness.run.cell import PRELOAD
    for module in [*PRELOAD, *sys.argv[2:]]:
        try:
            __import__(module)
        except Exception:
            pass
"""


def preloaded(measure: list[str], modules: Sequence[str] = ()) -> dict[str, frozenset[int]]:
    """The lines of `measure` executed before a cell forks: the imports of the fork server (a default argument, a
    decorator) and its warm-up (harness.run.warm builds transformers' conversion mapping once, so the ops' __init__
    run there), then of the target modules `modules` (which the server a patched mutant forks from imports too,
    zygote.py). Every cell inherits that work, and a mutant there changes every cell; a cell's own coverage, started
    after the fork, does not see it. Nothing when it cannot be measured."""
    import subprocess
    import tempfile

    from offload_conformance.harness.run.reach import REACH_ENV
    from offload_conformance.harness.run.reach import read as read_reach

    with tempfile.TemporaryDirectory() as workdir:
        env = {**os.environ, REACH_ENV: json.dumps(measure)}
        command = [sys.executable, "-c", _PRELOAD_REACH, workdir, *modules]
        subprocess.run(command, env=env, capture_output=True, timeout=600)
        return read_reach(Path(workdir))


def _lines(reach: dict[str, frozenset[int]], shared: dict[str, frozenset[int]]) -> dict[str, list[int]]:
    files = set(reach) | set(shared) if reach else set()  # a cell that recorded nothing died first: none of it ran
    return {f: sorted(reach.get(f, frozenset()) | shared.get(f, frozenset())) for f in files}


def _mutant(job: dict[str, Any]) -> dict[str, Any]:
    """The reaching cells one at a time; stop at the first verdict change a rerun confirms."""
    from offload_conformance.harness.results import erred
    from offload_conformance.harness.run.process import read_execution

    runner, cells = _runner(job, 1)
    before: dict[str, str] = job["before"]
    bases: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def baseline(cell: Any) -> Any:
        control = cell.baseline.cell_id
        if control not in bases:
            reused = job["reuse"].get(control)
            bases[control] = read_execution(Path(reused)) if reused else runner.execute(cell.baseline, "baselines")
        return bases[control]

    def judged(cell: Any) -> dict[str, Any]:
        start = time.perf_counter()
        execution = runner.execute(cell)
        return _record(runner.judge(cell, execution, baseline(cell)), execution, time.perf_counter() - start)

    changed = False
    for cell_id in job["cells"]:
        cell = cells[cell_id]
        record = judged(cell)
        if record["state"] != before[cell_id]:
            again = judged(cell)  # a flaky cell would not give the same changed verdict twice
            record["confirmed"] = again["state"] == record["state"]
            changed = changed or record["confirmed"]
        records.append(record)
        crashing = all(erred(r["state"]) for r in records)
        if changed and not (crashing and len(records) < CRASH_CELLS):
            break
    return {"cells": records, "cell_seconds": time.perf_counter() - t0}


if __name__ == "__main__":
    main(sys.argv[1])
