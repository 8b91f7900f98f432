"""`--reach-from DIR`: an earlier analysis's unmutated run is reused only for the very same cells, fixtures and
target files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offload_conformance.harness.tools.mutants.analysis import AnalysisError, _reused

CELLS = ["a-in-memory-upstream", "a-disk-full-upstream"]
DIRS = {"a": "/cache/a-123"}


def _previous(tmp_path: Path, cells: list[str], measure: list[str]) -> Path:
    reach = tmp_path / "work" / "reach"
    reach.mkdir(parents=True)
    (reach / "job.json").write_text(json.dumps({"cells": cells, "fixture_dirs": DIRS, "measure": measure}))
    (reach / "worker.json").write_text(json.dumps({"cells": [], "baselines": {}}))
    return reach


def test_the_same_run_is_reused(tmp_path: Path) -> None:
    target = tmp_path / "t.py"
    target.write_text("")
    assert _reused(_previous(tmp_path, CELLS, [str(target)]), CELLS, [str(target)], DIRS) == {
        "cells": [],
        "baselines": {},
    }


@pytest.mark.parametrize(
    ("cells", "measured", "message"),
    [
        (CELLS[:1], True, "other cells or fixtures"),
        (CELLS, False, "did not measure every target file"),
    ],
)
def test_another_run_is_refused_naming_why(tmp_path: Path, cells: list[str], measured: bool, message: str) -> None:
    target = tmp_path / "t.py"
    target.write_text("")
    previous = _previous(tmp_path, cells, [str(target)] if measured else [])
    with pytest.raises(AnalysisError, match=message):
        _reused(previous, CELLS, [str(target)], DIRS)


def test_a_directory_without_a_reach_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AnalysisError, match="no reach run"):
        _reused(tmp_path / "work" / "reach", CELLS, [], DIRS)
