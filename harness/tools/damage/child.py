"""Run one function in a forked child: the loaded model is shared copy-on-write, a damage to its in-memory index dies
with the child, and a signal, a hang or a crash deep in native code becomes a result instead of the end of the run."""

from __future__ import annotations

import json
import os
import select
import signal
import time
from collections.abc import Callable
from typing import Any

from offload_conformance.harness.tools.damage.kinds import NOBODY


def drop_privileges() -> None:
    """Become an unprivileged user, so a chmod 000 file really is unreadable (root reads anything; anyone else is
    already bound by the mode bits)."""
    if os.geteuid() != 0:
        return
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def in_child(fn: Callable[[], dict[str, Any]], timeout: float) -> dict[str, Any]:
    """fn()'s JSON-able result, or {"error": "signal N" | "timeout" | "no result", ...}."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        code = 0
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)  # transformers' warnings; what went wrong comes back in the result
            data = json.dumps(fn()).encode()
            with os.fdopen(w, "wb") as f:
                f.write(data)
        except BaseException:
            code = 3
        os._exit(code)
    os.close(w)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    with os.fdopen(r, "rb", buffering=0) as f:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([f], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"error": "timeout", "message": f"no result after {timeout:.0f} s"}
            chunk = f.read(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status)).name
        return {"error": f"signal {sig}", "message": f"the saving process was killed by {sig}"}
    if not chunks:
        return {"error": "no result", "message": f"the child exited with {os.WEXITSTATUS(status)} and no result"}
    return json.loads(b"".join(chunks))
