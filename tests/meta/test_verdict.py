"""How a cell's execution is judged against its baseline's, without running any cell."""

from __future__ import annotations

from pathlib import Path

from offload_conformance.fixtures import DEFAULT_FIXTURES
from offload_conformance.harness.execution import Execution
from offload_conformance.harness.judge.checkpoint import file_digests
from offload_conformance.harness.judge.verdict import judge
from offload_conformance.harness.outcomes import Grade, Outcome, Stage
from offload_conformance.harness.plan.cells import Cell
from offload_conformance.harness.plan.modes import by_name
from offload_conformance.harness.results import Failure
from tests.ckpt import base_tensors, write

CELL = Cell(DEFAULT_FIXTURES[0], by_name("disk-full"), "upstream")


def _saved(tmp: Path, name: str) -> Execution:
    return Execution(write(tmp / name, base_tensors()), "", 1.0, hf_device_map={"": "disk"})


def _raised(tmp: Path, key: str, stage: Stage = Stage.LOAD) -> Execution:
    err = Failure(stage, "ImportError", "compressed_tensors is not installed", "x.py:1")
    return Execution(tmp / "none", "log", 1.0, **{key: err})


def test_saved_and_identical_passes(tmp_path: Path) -> None:
    result = judge(CELL, _saved(tmp_path, "a"), _saved(tmp_path, "b"), Grade.BYTES)
    assert (result.outcome, result.grade, result.hf_device_map) == (Outcome.PASS, Grade.BYTES, {"": "disk"})


def test_unsupported_cell_and_unsupported_baseline(tmp_path: Path) -> None:
    cell = judge(CELL, _raised(tmp_path, "unsupported"), _saved(tmp_path, "b"), Grade.BYTES)
    assert cell.outcome is Outcome.UNSUPPORTED
    assert cell.detail == "load raised ImportError: compressed_tensors is not installed (x.py:1)"
    base = judge(CELL, _saved(tmp_path, "a"), _raised(tmp_path, "unsupported"), Grade.BYTES)
    assert base.outcome is Outcome.UNSUPPORTED and base.detail.startswith("baseline load raised ImportError")


def test_error_cell_and_error_baseline(tmp_path: Path) -> None:
    cell = judge(CELL, _raised(tmp_path, "failure", Stage.SAVE), _saved(tmp_path, "b"), Grade.BYTES)
    assert (cell.outcome, cell.log_tail, cell.baseline_failure) == (Outcome.ERROR, "log", None)
    assert cell.failure is not None and (cell.failure.stage, cell.failure.type) == (Stage.SAVE, "ImportError")
    assert cell.detail.startswith("save raised ImportError")
    base = judge(CELL, _saved(tmp_path, "a"), _raised(tmp_path, "failure"), Grade.BYTES)
    assert base.outcome is Outcome.ERROR and base.detail.startswith("baseline failed: load raised")
    # Whether the baseline failed is a field, not a phrase of the detail.
    assert base.baseline_failure is not None and base.baseline_failure.stage is Stage.LOAD and base.failure is None


def test_process_death_is_error(tmp_path: Path) -> None:
    what = "cell process died (killed by SIGSEGV) before reporting"
    died = Execution(tmp_path / "none", "tail", 1.0, failure=Failure(Stage.PROCESS, "died", what))
    result = judge(CELL, died, _saved(tmp_path, "b"), Grade.BYTES)
    assert (result.outcome, result.detail) == (Outcome.ERROR, what)


def test_where_the_in_memory_save_raised_the_source_checkpoint_judges(tmp_path: Path) -> None:
    source = write(tmp_path / "fixture", base_tensors())
    crashed = Execution(tmp_path / "none", "log", 1.0, failure=Failure(Stage.SAVE, "ValueError", "Undefined Operation"))
    same = judge(CELL, _saved(tmp_path, "a"), crashed, Grade.BYTES, fixture_dir=source)
    assert (same.outcome, same.grade) == (Outcome.PASS, Grade.BYTES)
    assert same.judged_against == "source checkpoint: in-memory save raised ValueError: Undefined Operation"
    assert same.baseline_failure is not None
    # The source judges tensors and the config fields a save carries over; a lost tensor still fails.
    tensors = base_tensors()
    del tensors["model.norm.weight"]
    lost = judge(CELL, Execution(write(tmp_path / "b", tensors), "", 1.0), crashed, Grade.BYTES, fixture_dir=source)
    assert (lost.outcome, lost.classes) == (Outcome.FAIL, ("missing-tensor",))
    other = Execution(write(tmp_path / "c", base_tensors(), config='{"model_type": "other"}\n'), "", 1.0)
    changed = judge(CELL, other, crashed, Grade.BYTES, fixture_dir=source)
    assert changed.outcome is Outcome.FAIL and changed.classes == ("other-file",) and "model_type" in changed.detail


def test_where_the_in_memory_load_failed_nothing_is_compared(tmp_path: Path) -> None:
    source = write(tmp_path / "fixture", base_tensors())
    no_load = Execution(tmp_path / "none", "log", 1.0, failure=Failure(Stage.LOAD, "RuntimeError", "int8"))
    result = judge(CELL, _saved(tmp_path, "a"), no_load, Grade.BYTES, fixture_dir=source)
    assert result.outcome is Outcome.ERROR and result.detail.startswith("baseline failed: load raised RuntimeError")
    assert result.judged_against == "in-memory save"


def test_a_save_that_is_not_the_main_process_s_must_leave_the_directory_as_it_was(tmp_path: Path) -> None:
    """is_main_process=False: nothing written, removed or changed, whatever the in-memory save did (a baseline that
    raised at save sent the cell to be judged against the source checkpoint: `pass shard-layout`)."""
    cell = Cell(DEFAULT_FIXTURES[0], by_name("disk-full"), "upstream", (("is_main_process", False),))
    earlier = write(tmp_path / "earlier", base_tensors())
    before = {p.name: "x" for p in earlier.iterdir()}
    crashed = Execution(tmp_path / "none", "log", 1.0, failure=Failure(Stage.SAVE, "FileNotFoundError", "no dir"))
    source = base_tensors()
    del source["model.norm.weight"]  # the checkpoint loaded is not the one the directory holds
    fixture = write(tmp_path / "fixture", source)
    kept = Execution(earlier, "", 1.0, before=file_digests(earlier))
    result = judge(cell, kept, crashed, Grade.BYTES, fixture_dir=fixture)
    assert (result.outcome, result.classes) == (Outcome.PASS, ())
    changed = Execution(earlier, "", 1.0, before=before)  # every file rewritten since
    result = judge(cell, changed, _saved(tmp_path, "b"), Grade.BYTES, fixture_dir=earlier)
    assert (result.outcome, result.classes) == (Outcome.FAIL, ("directory-changed",))
    assert "a save on a process that must not write and left the directory changed" in result.detail
