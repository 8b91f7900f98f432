"""The unmutated run kept between analyses, so that a second analysis in the same environment (a `--sample`, a
rerun of survivors with `--mutant`) starts at its mutants instead of spending minutes re-running every cell.

An entry is keyed by everything that decides the run's verdicts and lines: the cells and fixtures, the per-cell
timeout, every installed distribution's version, the content of every file of the packages the overlay copies (so
an edited checkout is a new key, and the same release installed again, as on a fresh CI runner, is the same key:
about a second to hash), and the text of the harness's own modules (so a fresh clone of the same commit hits the
entry). It holds the worker's report and the baselines' saves that mutants reuse as
controls. Lines are recorded under the installed files' real paths, so an entry does not depend on the overlay.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import json
import os
import platform
import shutil
from pathlib import Path
from typing import Any

from offload_conformance.harness.tools.mutants.worker import WORKER_FILE

MEASURED_FILE = "measured.json"
OWN = ("harness", "fixtures", "reference_impl")  # the packages of ours a cell runs
KEEP = 2  # entries kept (each holds its baselines' saves, tens of MB); the oldest used goes first


def root() -> Path:
    from offload_conformance.fixtures.generate import cache_root

    return cache_root() / "mutants-reach"


def key(cells: list[str], fixture_dirs: dict[str, str], timeout: float, packages: dict[str, Path]) -> str:
    digest = hashlib.sha256()

    def add(*parts: object) -> None:
        digest.update(json.dumps(parts, sort_keys=True, default=str).encode())

    add(cells, fixture_dirs, timeout, platform.python_version(), platform.machine())
    add(sorted((d.metadata["Name"] or "", d.version) for d in importlib.metadata.distributions()))
    for name, source in sorted(packages.items()):
        for directory, dirs, files in os.walk(source):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for f in sorted(files):
                if f.endswith((".pyc", ".pyo")):
                    continue
                path = Path(directory) / f
                add(name, os.path.relpath(path, source), hashlib.sha256(path.read_bytes()).hexdigest())
    for part in OWN:
        own = Path(importlib.import_module(f"offload_conformance.{part}").__file__ or "").parent
        for module in sorted(own.rglob("*.py")):
            add(part, str(module.relative_to(own)), hashlib.sha256(module.read_bytes()).hexdigest())
    return digest.hexdigest()[:32]


def load(entry_key: str, measured: set[str]) -> dict[str, Any] | None:
    """The cached run, if there is one for `entry_key` that measured at least the files `measured` (real paths)."""
    entry = root() / entry_key
    try:
        done: dict[str, Any] = json.loads((entry / WORKER_FILE).read_text())
        had = set(json.loads((entry / MEASURED_FILE).read_text()))
    except (OSError, ValueError):
        return None
    if not measured <= had or not all(Path(b["workdir"]).is_dir() for b in done["baselines"].values()):
        return None
    with contextlib.suppress(OSError):
        os.utime(entry)
    return done


def store(entry_key: str, done: dict[str, Any], measured: set[str]) -> None:
    """Keep `done` (a finished reach run) and copies of its baselines' saves; older entries beyond KEEP go.

    Written beside the entry and renamed into place, so a reader never meets half an entry. A cache that cannot be
    written (a full disk, a read-only home) costs the next analysis its time, never this one its result."""
    entry = root() / entry_key
    partial = entry.with_name(f"{entry_key}.partial-{os.getpid()}")
    try:
        shutil.rmtree(partial, ignore_errors=True)
        (partial / "baselines").mkdir(parents=True)
        kept = dict(done, baselines={})
        for baseline, record in done["baselines"].items():
            copy = partial / "baselines" / Path(record["workdir"]).name
            shutil.copytree(record["workdir"], copy, symlinks=True)
            kept["baselines"][baseline] = dict(record, workdir=str(entry / "baselines" / copy.name))
        (partial / WORKER_FILE).write_text(json.dumps(kept))
        (partial / MEASURED_FILE).write_text(json.dumps(sorted(measured)))
        shutil.rmtree(entry, ignore_errors=True)
        partial.rename(entry)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        return
    _evict()


def _evict() -> None:
    entries = [p for p in root().iterdir() if p.is_dir() and "." not in p.name]
    for old in sorted(entries, key=lambda p: p.stat().st_mtime, reverse=True)[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
