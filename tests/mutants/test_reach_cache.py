"""reach_cache: an unmutated run is reused only under the key of the very same cells, fixtures and installed files,
only if it measured every file asked for and its baselines' saves are still there; an entry appears whole or not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from offload_conformance.harness.tools.mutants import reach_cache

CELLS = ["a-in-memory-upstream", "a-disk-full-upstream"]
DIRS = {"a": "/cache/a-123"}


@pytest.fixture()
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OFFLOAD_CONFORMANCE_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "site" / "pkg"
    source.mkdir(parents=True)
    (source / "mod.py").write_text("x = 1\n")
    return source


def _done(tmp_path: Path, name: str = "b") -> dict:
    workdir = tmp_path / "run" / "baselines" / name
    (workdir / "saved").mkdir(parents=True)
    (workdir / "saved" / "model.safetensors").write_bytes(b"weights")
    return {"cells": [{"cell": c} for c in CELLS], "baselines": {name: {"workdir": str(workdir), "reach": {}}}}


def test_a_stored_run_is_found_under_its_key_with_its_own_copy_of_the_baselines(package: Path, tmp_path: Path) -> None:
    key = reach_cache.key(CELLS, DIRS, 30.0, {"pkg": package})
    assert reach_cache.load(key, {"/f.py"}) is None
    reach_cache.store(key, _done(tmp_path), {"/f.py", "/g.py"})
    done = reach_cache.load(key, {"/f.py"})
    assert done is not None and done["cells"] == [{"cell": c} for c in CELLS]
    copy = Path(done["baselines"]["b"]["workdir"])
    assert copy.is_relative_to(reach_cache.root()) and (copy / "saved" / "model.safetensors").read_bytes() == b"weights"


def test_what_decides_the_run_changes_the_key(package: Path) -> None:
    key = reach_cache.key(CELLS, DIRS, 30.0, {"pkg": package})
    assert key == reach_cache.key(CELLS, DIRS, 30.0, {"pkg": package})
    assert key != reach_cache.key(CELLS[:1], DIRS, 30.0, {"pkg": package})
    assert key != reach_cache.key(CELLS, {"a": "/cache/a-456"}, 30.0, {"pkg": package})
    assert key != reach_cache.key(CELLS, DIRS, 60.0, {"pkg": package})
    before = (package / "mod.py").stat()
    os.utime(package / "mod.py", ns=(1, 1))  # the same release installed again: other times, same bytes
    assert key == reach_cache.key(CELLS, DIRS, 30.0, {"pkg": package})
    (package / "mod.py").write_text("x = 2\n")  # an edited checkout: same size, another text
    assert (package / "mod.py").stat().st_size == before.st_size
    assert key != reach_cache.key(CELLS, DIRS, 30.0, {"pkg": package})


def test_a_run_that_measured_fewer_files_or_lost_its_baselines_is_not_reused(package: Path, tmp_path: Path) -> None:
    key = reach_cache.key(CELLS, DIRS, 30.0, {"pkg": package})
    reach_cache.store(key, _done(tmp_path), {"/f.py"})
    assert reach_cache.load(key, {"/f.py", "/g.py"}) is None
    done = reach_cache.load(key, {"/f.py"})
    assert done is not None
    for record in done["baselines"].values():
        (Path(record["workdir"]) / "saved" / "model.safetensors").unlink()
        (Path(record["workdir"]) / "saved").rmdir()
        Path(record["workdir"]).rmdir()
    assert reach_cache.load(key, {"/f.py"}) is None


def test_only_the_newest_entries_are_kept(package: Path, tmp_path: Path) -> None:
    keys = [reach_cache.key([f"c{i}"], DIRS, 30.0, {"pkg": package}) for i in range(reach_cache.KEEP + 1)]
    for i, key in enumerate(keys):
        reach_cache.store(key, _done(tmp_path, f"b{i}"), {"/f.py"})
        os.utime(reach_cache.root() / key, (i + 1, i + 1))
    kept = sorted(p.name for p in reach_cache.root().iterdir())
    assert kept == sorted(keys[1:])


def test_a_cache_that_cannot_be_written_costs_nothing_but_time(package: Path, tmp_path: Path) -> None:
    key = reach_cache.key(CELLS, DIRS, 30.0, {"pkg": package})
    reach_cache.root().parent.mkdir(parents=True)
    reach_cache.root().write_text("a file where the cache directory belongs")
    reach_cache.store(key, _done(tmp_path), {"/f.py"})  # no exception
    assert reach_cache.load(key, {"/f.py"}) is None
