"""A server that has imported what no mutant changes (torch and the rest: over half a worker's imports), or everything
from an unmutated overlay (a warm server, for workers that patch their mutant in: hot.py), and forks one worker
per job path read on stdin, answering with the worker's pid. multiprocessing's fork server would not do: its
children import the parent's `__main__` (the CLI, which imports huggingface_hub) before the overlay is on the path.

Nothing here may import transformers, accelerate or huggingface_hub at module level (worker.py says why).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from offload_conformance.harness.tools.mutants import worker


def _reap(signum: int, frame: object) -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _learned(packages: tuple[str, ...]) -> list[str]:
    """The modules a worker's imports bring in that are not the target packages' (nor ours, which import them):
    learned by a child importing what a worker imports, from the installed packages, then thrown away."""
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as found:
        pid = os.fork()
        if pid == 0:
            before = set(sys.modules)
            with contextlib.suppress(BaseException):
                from offload_conformance.harness.run.cell import PRELOAD

                for module in PRELOAD:
                    __import__(module)
            skip = (*packages, "offload_conformance", "__mp_main__")
            names = [m for m in sys.modules if m not in before and m.split(".")[0] not in skip]
            Path(found.name).write_text("\n".join(names))
            os._exit(0)
        os.waitpid(pid, 0)
        return found.read().split()


def _independent(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    """Modules whose distribution does not require a target package: importing one that does (transformers 5.25's
    `kernels` requires huggingface_hub) would import the target from site-packages, before the overlay."""
    from importlib.metadata import PackageNotFoundError, distribution, packages_distributions

    owners = packages_distributions()
    targets = {p.replace("_", "-").lower() for p in packages}

    def depends(top: str) -> bool:
        for dist in owners.get(top, ()):
            try:
                requires = distribution(dist).requires or []
            except PackageNotFoundError:
                continue
            hard = [r for r in requires if "extra ==" not in r]  # an optional extra is not imported with it
            names = {re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0].replace("_", "-").lower() for r in hard}
            if names & targets:
                return True
        return False

    tops = {m.split(".")[0] for m in modules}
    dependent = {t for t in tops if depends(t)}
    return [m for m in modules if m.split(".")[0] not in dependent]


def serve(packages: tuple[str, ...], warm: str = "", modules: tuple[str, ...] = ()) -> None:
    """Fork a worker per job path on stdin. With `warm` (an unmutated overlay), the server imports the packages from
    it (the cells' PRELOAD and the target `modules`), for workers that patch their mutant in (hot.py); without, it
    imports only what no mutant changes."""
    # Workers run torch ops (the judge) and then fork cells: an OpenMP pool started in a parent hangs a forked
    # child's first parallel op, so none is ever started (the cells run single-threaded anyway, as in `run`).
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    if warm:
        sys.path.insert(0, warm)  # before anything imports a target package
        os.environ["PYTHONPATH"] = os.pathsep.join([warm, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        from offload_conformance.harness.run.cell import PRELOAD

        preload = [*worker.ZYGOTE_PRELOAD, *PRELOAD, *modules]  # as worker.preloaded measures them
    else:
        preload = [*worker.ZYGOTE_PRELOAD, *_independent(_learned(packages), packages)]
    for module in preload:
        with contextlib.suppress(Exception):
            __import__(module)
    if not warm and (imported := [p for p in packages if p in sys.modules]):
        sys.exit(f"zygote: preloading imported a target package: {', '.join(imported)}")
    signal.signal(signal.SIGCHLD, _reap)
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            code = 0
            try:
                worker.main(line.strip())
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        print(pid, flush=True)


class ZygoteError(RuntimeError):
    pass


class Zygote:
    """The orchestrator's handle: `run(job, limit)` forks a worker and waits for it (or kills it at `limit`)."""

    def __init__(self, packages: tuple[str, ...], warm: Path | None = None, modules: tuple[str, ...] = ()) -> None:
        command = [sys.executable, "-m", "offload_conformance.harness.tools.mutants.zygote", ",".join(packages)]
        if warm is not None:
            command += [str(warm), *modules]
        self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._lock = threading.Lock()

    def run(self, job: Path, limit: float) -> bool:
        """False when the worker ran over `limit` seconds and was killed with everything it started."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        with self._lock:
            try:
                self._proc.stdin.write(f"{job}\n")
                self._proc.stdin.flush()
                pid = int(self._proc.stdout.readline())
            except (OSError, ValueError):
                raise ZygoteError(f"the worker server exited ({self._proc.poll()}): see its message above") from None
        deadline = time.monotonic() + limit
        while _alive(pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)  # the worker leads its own session: its cells go too
                return False
            time.sleep(0.05)
        return True

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        self._proc.wait(timeout=30)


def _alive(pid: int) -> bool:
    """Running (a zombie is not: the zygote reaps it, and reads of its state say so first)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


if __name__ == "__main__":  # PACKAGES (comma-separated) [WARM-OVERLAY MODULE...]
    serve(tuple(sys.argv[1].split(",")), *sys.argv[2:3], modules=tuple(sys.argv[3:]))
