"""Run one cell in a process of its own, forked from a server with torch and transformers imported.

A timeout, a memory limit and a child that dies are all reasons the cell has no checkpoint,
recorded as a `Failure` of stage `process`; nothing a cell does can raise here.
"""

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
from pathlib import Path

from offload_conformance.harness.execution import Execution
from offload_conformance.harness.judge.checkpoint import file_digests
from offload_conformance.harness.outcomes import Fp8OnCpu, Stage
from offload_conformance.harness.plan.cells import Cell
from offload_conformance.harness.plan.contexts import OTHER_FORMATS, Context
from offload_conformance.harness.plan.shards import ShardSizeError, resolve
from offload_conformance.harness.results import Difference, Failure, Lifecycle, SaveCost
from offload_conformance.harness.run.cell import PRELOAD, serve

LOG_TAIL_LINES = 15
EXECUTION = "execution.json"  # what the cell process did (see harness.run.cell)
BEFORE = "before.json"  # the save directory's files (name -> sha256) before the save, in a context not empty


def _tail(log: Path) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 64 * 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-LOG_TAIL_LINES:])


_CONTEXT: multiprocessing.context.BaseContext | None = None
_CONTEXT_LOCK = threading.Lock()
_EXTRA_PRELOAD: list[str] = []


def preload(*modules: str) -> bool:
    """Modules the fork server imports as well, so that no cell pays for them (llm-compressor: ~2 s each).
    False when the server has started already (its imports are fixed then): each cell imports them itself."""
    with _CONTEXT_LOCK:
        if _CONTEXT is not None:
            return all(m in _EXTRA_PRELOAD for m in modules)
        _EXTRA_PRELOAD.extend(m for m in modules if m not in _EXTRA_PRELOAD)
        return True


def fork_from_here() -> None:
    """Cells fork from this process itself, which has imported PRELOAD (a mutants worker: a fork server would be
    a second interpreter importing it all again). Only for a single-threaded caller running one cell at a time."""
    global _CONTEXT
    with _CONTEXT_LOCK:
        _CONTEXT = multiprocessing.get_context("fork")


def _context() -> multiprocessing.context.BaseContext:
    """A fork server with torch and transformers imported; started once, on first use."""
    global _CONTEXT
    with _CONTEXT_LOCK:
        if _CONTEXT is None:
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ.setdefault("OMP_NUM_THREADS", "1")
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload([*PRELOAD, *_EXTRA_PRELOAD])
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


def _watch(proc: multiprocessing.process.BaseProcess, timeout: float, memory_limit: int | None) -> Failure | None:
    """Wait for the cell; why it was killed (timeout, memory limit), or None when it ended."""
    deadline = time.monotonic() + timeout
    while True:
        proc.join(min(0.05, max(0.0, deadline - time.monotonic())))
        if proc.exitcode is not None:
            return None
        if time.monotonic() >= deadline:
            return Failure(Stage.PROCESS, "timeout", f"timed out after {timeout:g}s")
        if memory_limit is not None and (rss := _rss(proc.pid)) > memory_limit:
            what = f"exceeded the memory limit: RSS {rss / 2**20:.0f} MiB > {memory_limit / 2**20:.0f} MiB"
            return Failure(Stage.PROCESS, "memory-limit", what)


def execute(
    cell: Cell,
    fixture_dir: Path,
    workdir: Path,
    timeout: float,
    memory_limit: int | None = None,
    fp8_on_cpu: Fp8OnCpu = Fp8OnCpu.KEEP,
    sync_before_save: bool = False,
    lifecycle: bool = False,
    source_dir: Path | None = None,
    oracles: bool = False,
    earlier: Path | None = None,
    logits: bool = False,
) -> Execution:
    """Load and save one cell in a process of its own; never raises for anything the cell does.
    `sync_before_save`: write back all dirty data between the load and the save (the bench).
    `lifecycle`: compare the model before and after the save (model-changed). `source_dir`: load this
    checkpoint instead of the fixture (a resave), still as the fixture's manifest says. `oracles`: judge the save
    with the alternative oracles too (harness.run.oracles). `earlier`: a save the target holds before this one
    (the cell's context says which); an in-place cell saves into a copy of the fixture it loads. `logits`: report
    the digest of the loaded model's logits before the save (a baseline's: what an offloaded model's must equal)."""
    workdir = workdir.resolve()  # the cell must not depend on the working directory
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    log, done = workdir / "log.txt", workdir / EXECUTION
    save_dir = workdir / "saved"
    try:
        options = {k: resolve(v, fixture_dir) if k == "max_shard_size" else v for k, v in cell.save_options}
    except ShardSizeError as e:
        return Execution(save_dir, "", 0.0, unsupported=Failure(Stage.SAVE, type(e).__name__, str(e)))
    if cell.context is Context.IN_PLACE:
        shutil.copytree(source_dir or fixture_dir, save_dir)
        source_dir = save_dir
    elif earlier is not None:
        shutil.copytree(earlier, save_dir)
    elif cell.context is Context.BESIDE_OTHER_FORMATS:
        save_dir.mkdir()
        for name, text in OTHER_FORMATS.items():
            (save_dir / name).write_text(text)
    if cell.context is not Context.EMPTY:
        (workdir / BEFORE).write_text(json.dumps(file_digests(save_dir), indent=1))
    request = {
        "fixture_dir": str(fixture_dir),
        "mode": cell.mode.name,
        "impl": cell.impl,
        "save_options": options,
        "reload": cell.context is not Context.EMPTY,
        "in_place": cell.context is Context.IN_PLACE,
        "fp8_on_cpu": str(fp8_on_cpu),
        "save_dir": str(save_dir),
        "offload_dir": str(workdir / "offload"),
        "execution": str(done),
        "log": str(log),
        "sync_before_save": sync_before_save,
        "lifecycle": lifecycle,
        "source_dir": str(source_dir) if source_dir is not None else None,
        "oracles": oracles,
        "logits": logits,
    }
    (workdir / "request.json").write_text(json.dumps(request, indent=2))
    t0 = time.perf_counter()
    proc = _context().Process(target=serve, args=(str(workdir / "request.json"),), daemon=True)
    proc.start()
    killed = _watch(proc, timeout, memory_limit)
    if killed is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the cell and anything it started
        proc.join()
        return Execution(workdir / "saved", _tail(log), time.perf_counter() - t0, failure=killed)
    seconds = time.perf_counter() - t0
    # The file is the truth: multiprocessing's forkserver occasionally loses a child's exit
    # status (reported as 255) even after the child finished and wrote it.
    if not done.exists():
        code = proc.exitcode or 0
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        died = Failure(Stage.PROCESS, "died", f"cell process died ({how}) before reporting")
        return Execution(workdir / "saved", _tail(log), seconds, failure=died)
    return read_execution(workdir, seconds)  # type: ignore[return-value]  # done exists


def read_execution(workdir: Path, seconds: float = 0.0) -> Execution | None:
    """What the cell process in `workdir` reported, or None when it reported nothing."""
    done = workdir / EXECUTION
    if not done.exists():
        return None
    report = json.loads(done.read_text())
    checked = report.get("lifecycle")
    before = workdir / BEFORE
    return Execution(
        workdir / "saved",
        _tail(workdir / "log.txt"),
        seconds,
        failure=Failure.from_json(report.get("failure")),
        unsupported=Failure.from_json(report.get("unsupported")),
        hf_device_map=report.get("hf_device_map"),
        cost=SaveCost(**report["cost"]) if report.get("cost") else None,
        save_seconds=report.get("save_seconds"),
        lifecycle=Lifecycle.from_json(checked),
        model_changes=tuple(Difference.from_json(d) for d in (checked or {}).get("changes", ())),
        parameters=report.get("parameters"),
        oracles=report.get("oracles"),
        before=json.loads(before.read_text()) if before.exists() else None,
        reloaded=report.get("reloaded"),
        offload_dir=workdir / "offload",
        logits=report.get("logits"),
        hub=report.get("hub"),
    )
