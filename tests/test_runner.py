"""How the runner judges executions, without running any cell."""

from __future__ import annotations

from pathlib import Path

from fixtures import DEFAULT_FIXTURES
from harness.modes import by_name
from harness.runner import Cell, Execution, judge
from tests.ckpt import base_tensors, write

CELL = Cell(DEFAULT_FIXTURES[0], by_name("disk-full"), "upstream")


def _saved(tmp: Path, name: str) -> Execution:
    return Execution(write(tmp / name, base_tensors()), {"hf_device_map": {"": "disk"}}, None, "", 1.0)


def _raised(tmp: Path, key: str, stage: str = "load") -> Execution:
    err = {"stage": stage, "type": "ImportError", "message": "compressed_tensors is not installed", "where": "x.py:1"}
    return Execution(tmp / "none", {key: err}, None, "log", 1.0)


def test_saved_and_identical_passes(tmp_path: Path) -> None:
    result = judge(CELL, _saved(tmp_path, "a"), _saved(tmp_path, "b"), "bytes")
    assert (result.outcome, result.grade, result.hf_device_map) == ("pass", "bytes", {"": "disk"})


def test_unsupported_cell_and_unsupported_baseline(tmp_path: Path) -> None:
    cell = judge(CELL, _raised(tmp_path, "unsupported"), _saved(tmp_path, "b"), "bytes")
    assert cell.outcome == "unsupported"
    assert cell.detail == "load raised ImportError: compressed_tensors is not installed (x.py:1)"
    base = judge(CELL, _saved(tmp_path, "a"), _raised(tmp_path, "unsupported"), "bytes")
    assert base.outcome == "unsupported" and base.detail.startswith("baseline load raised ImportError")


def test_error_cell_and_error_baseline(tmp_path: Path) -> None:
    cell = judge(CELL, _raised(tmp_path, "error", "save"), _saved(tmp_path, "b"), "bytes")
    assert (cell.outcome, cell.log_tail) == ("error", "log")
    assert cell.detail.startswith("save raised ImportError")
    base = judge(CELL, _saved(tmp_path, "a"), _raised(tmp_path, "error"), "bytes")
    assert base.outcome == "error" and base.detail.startswith("baseline failed: load raised")


def test_process_death_is_error(tmp_path: Path) -> None:
    died = Execution(tmp_path / "none", None, "cell process died (killed by SIGSEGV) before reporting", "tail", 1.0)
    result = judge(CELL, died, _saved(tmp_path, "b"), "bytes")
    assert (result.outcome, result.detail) == ("error", "cell process died (killed by SIGSEGV) before reporting")
