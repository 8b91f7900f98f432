"""Which target lines a cell executes: coverage.py, started in the cell process for the reach run only.

The run that measures reach sets REACH_ENV to a JSON list of the overlay files to measure; every cell and
baseline process it forks records the lines of those files it executes (after the fork: the imports of the
server are not any cell's) into `reach.json` beside its execution.json.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

REACH_ENV = "OFFLOAD_CONFORMANCE_REACH"
REACH_FILE = "reach.json"


@contextlib.contextmanager
def recorded(workdir: Path) -> Iterator[None]:
    """Record executed lines of the files REACH_ENV names into workdir/reach.json; nothing when it is unset."""
    files = json.loads(os.environ.get(REACH_ENV) or "[]")
    if not files:
        yield
        return
    import coverage

    cov = coverage.Coverage(data_file=None, include=files, config_file=False, branch=False)
    cov.start()
    try:
        yield
    finally:
        cov.stop()
        data = cov.get_data()
        lines = {f: sorted(data.lines(f) or ()) for f in data.measured_files()}
        (workdir / REACH_FILE).write_text(json.dumps(lines))


def read(workdir: Path) -> dict[str, frozenset[int]]:
    """The lines a cell executed, per file; empty when it recorded nothing (it died first)."""
    try:
        data = json.loads((workdir / REACH_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {f: frozenset(lines) for f, lines in data.items()}


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Lines run here are not the cell's reach: the alternative oracles' own loads are not what the harness judges,
    and a mutant only they execute must not count as reached by the cell."""
    import sys

    cov = sys.modules["coverage"].Coverage.current() if "coverage" in sys.modules else None
    if cov is None:
        yield
        return
    cov.stop()
    try:
        yield
    finally:
        cov.start()
