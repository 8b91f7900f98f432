"""rank=1: the cell's save on rank 1 of a torch.distributed group of two, held to writing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch.distributed as dist

from offload_conformance.fixtures import DEFAULT_FIXTURES
from offload_conformance.harness.execution import Execution
from offload_conformance.harness.judge.checkpoint import file_digests
from offload_conformance.harness.judge.verdict import judge
from offload_conformance.harness.outcomes import Grade, Outcome
from offload_conformance.harness.plan.cells import Cell
from offload_conformance.harness.plan.modes import by_name
from offload_conformance.harness.plan.options import OptionError, parse_set, writes
from offload_conformance.harness.run.distributed import as_rank
from tests.ckpt import base_tensors, write


def test_inside_rank_1_torch_distributed_says_so_and_the_group_is_gone_after(tmp_path: Path) -> None:
    with as_rank(1, tmp_path / "rendezvous"):
        assert (dist.is_initialized(), dist.get_rank(), dist.get_world_size()) == (True, 1, 2)
    assert not dist.is_initialized()
    with as_rank(0, tmp_path / "unused"):
        assert not dist.is_initialized()
    with pytest.raises(ValueError, match="rank 0 or 1"), as_rank(2, tmp_path / "other"):
        pass


def test_only_the_main_process_of_rank_0_writes() -> None:
    assert writes({}) and writes({"rank": 0, "is_main_process": True})
    assert not writes({"rank": 1}) and not writes({"is_main_process": False})
    assert parse_set("rank=1") == (("rank", 1),)
    with pytest.raises(OptionError, match="rank 0 or 1"):
        parse_set("rank=2")


def test_a_save_on_rank_1_must_leave_the_directory_as_it_was(tmp_path: Path) -> None:
    cell = Cell(DEFAULT_FIXTURES[0], by_name("disk-full"), "upstream", (("rank", 1),))
    earlier = write(tmp_path / "earlier", base_tensors())
    baseline = Execution(write(tmp_path / "baseline", base_tensors()), "", 1.0)
    kept = Execution(earlier, "", 1.0, before=file_digests(earlier))
    assert judge(cell, kept, baseline, Grade.BYTES).outcome is Outcome.PASS
    changed = Execution(earlier, "", 1.0, before={p.name: "x" for p in earlier.iterdir()})
    result = judge(cell, changed, baseline, Grade.BYTES)
    assert (result.outcome, result.classes) == (Outcome.FAIL, ("directory-changed",))
