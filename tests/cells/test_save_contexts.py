"""Save contexts, save options and forced shard sizes, run: the reference passes them all byte for byte, and
each fault written for one of them is a correct save everywhere else (the kill table shows it caught in place)."""

from __future__ import annotations

from pathlib import Path

import pytest

from offload_conformance.fixtures import by_name
from offload_conformance.harness.outcomes import Grade, Outcome
from offload_conformance.harness.plan import selection
from offload_conformance.harness.plan.cells import Cell
from offload_conformance.harness.plan.faults import FAULTS
from offload_conformance.harness.plan.modes import by_name as mode
from offload_conformance.harness.run.runner import run_cells
from offload_conformance.harness.tools.killtable import KILL_MODE

NEW_PLACES = (
    "*over-earlier*",
    "*in-place",
    "*variant=*",
    "*save_original_format=*",
    "*state_dict=*",
    "*is_main_process=*",
    "*push_to_hub=*",
    "*rank=*",
    "*=per-tensor*",
)
PLACED = [f for f in FAULTS.values() if f.context != "empty" or f.save_options or f.shard_size]


@pytest.mark.e2e
def test_reference_passes_every_context_option_and_forced_size_byte_for_byte(tmp_path: Path) -> None:
    wanted = selection.Selection(
        fixtures=("qwen3_moe_sharded", "hrm_text"),
        modes=("disk-full+offload_buffers", "experts-on-disk"),
        impls=("reference",),
        cells=(*NEW_PLACES, "*=split-groups*"),
    )
    cells = selection.plan(wanted)
    assert len(cells) >= 20
    result = run_cells(cells, tmp_path, selection.Settings(jobs=2))
    wrong = [
        f"{c.cell_id}: {c.outcome} {c.detail}"
        for c in result.cells
        if (c.outcome, c.grade) != (Outcome.PASS, Grade.BYTES)
    ]
    assert wrong == []
    # split-groups puts a boundary inside every expert group: each is over the limit (saved whole, in a shard of its
    # own, as the in-memory save does); at upstream's default size none is.
    forced = [c.fused_groups for c in result.cells if c.cell_id.endswith("split-groups") and "qwen3" in c.cell_id]
    assert forced and all(g is not None and g.over_limit == g.total > 0 and g.split == 0 for g in forced)
    default = [c.fused_groups for c in result.cells if c.cell_id.endswith("in-place") and "qwen3" in c.cell_id]
    assert default and all(g is not None and g.over_limit == 0 for g in default)


@pytest.mark.e2e
def test_each_placed_fault_saves_correctly_outside_its_place(tmp_path: Path) -> None:
    assert {f.name for f in PLACED} >= {"stale-single-file", "clears-target-first", "groups-planned-apart"}
    cells = [Cell(by_name("qwen3_moe"), mode(KILL_MODE), f"faults:{f.name}") for f in PLACED]
    result = run_cells(cells, tmp_path, selection.Settings(jobs=2))
    assert [f"{c.cell_id}: {c.detail}" for c in result.cells if c.outcome is not Outcome.PASS] == []
