"""Detection power: every injectable fault is failed by the runner with exactly its classes."""

from __future__ import annotations

from pathlib import Path

import pytest

from offload_conformance.fixtures import by_name
from offload_conformance.fixtures.catalog import layout_for
from offload_conformance.harness.outcomes import Outcome
from offload_conformance.harness.plan.cells import Cell
from offload_conformance.harness.plan.faults import FAULTS
from offload_conformance.harness.plan.modes import by_name as mode
from offload_conformance.harness.plan.selection import Settings
from offload_conformance.harness.run.runner import run_cells
from offload_conformance.harness.tools.killtable import KILL_MODE, Verdict, applies, kill_table, render

# Between them these fixtures give every fault a place to apply (buffers, shared experts,
# tied weights, renames, fused experts, fine-grained FP8 and NVFP4 scales).
SUBSET = ["qwen3_moe_tied", "mixtral", "deepseek_v3", "deepseek_v3_fp8", "llama_nvfp4"]
# An int64 buffer (tid2eid) only DeepSeek-V4 has: its fault runs there alone (the others are covered above).
INT_BUFFER = ("deepseek_v4", {"cast-int-buffer"})


def test_catalogue_is_large_and_every_fault_applies_somewhere() -> None:
    assert len(FAULTS) >= 15
    specs = [by_name(n) for n in [*SUBSET, INT_BUFFER[0]]]
    for fault in FAULTS.values():
        assert any(applies(fault, s) for s in specs), fault.name
        assert (fault.expected or fault.raises) and fault.description  # raising before writing: no class to show


def test_expected_classes_follow_fixture_kinds() -> None:
    fault = FAULTS["unreverted-fusion"]
    assert "permuted" in fault.expected_for(layout_for(by_name("mixtral")).kinds)  # renamed as well as fused
    assert "permuted" not in fault.expected_for(layout_for(by_name("qwen3_moe")).kinds)


@pytest.mark.e2e
def test_kill_table_catches_every_fault_with_its_class(tmp_path: Path) -> None:
    kills = kill_table(tmp_path / "subset", [by_name(n) for n in SUBSET])
    kills += kill_table(tmp_path / "int", [by_name(INT_BUFFER[0])], faults=INT_BUFFER[1])
    assert {k.fault for k in kills} == set(FAULTS)
    table = render(kills)
    assert [k for k in kills if k.verdict is not Verdict.CAUGHT] == [], table
    assert "(100%)" in table


# A fault of each load path: the hand-written maps and accelerate's own loading (dispatch-* and load_checkpoint-*
# give the same model: one fault stands for both). map-all-disk has none: its model is disk-full's, hf_device_map
# {"": "disk"} either way, so no save can tell them apart.
LOAD_PATHS = {
    "offload-seen-in-layers-only": ("map-head-on-disk", "deepseek_v3"),
    "layers-offloaded-whole": ("map-layer-split", "qwen3_moe_tied"),
    "placed-by-any-tensor": ("map-routers-on-disk", "deepseek_v3"),
    "tied-read-by-own-name": ("dispatch-disk-full+offload_buffers", "qwen3_moe_tied"),
}


def test_every_load_path_has_its_fault() -> None:
    assert {name: FAULTS[name].mode for name in LOAD_PATHS} == {name: m for name, (m, _) in LOAD_PATHS.items()}
    assert {f.name for f in FAULTS.values() if f.mode} == set(LOAD_PATHS)


@pytest.mark.e2e
def test_each_load_path_fault_saves_correctly_in_the_kill_tables_mode(tmp_path: Path) -> None:
    """Caught in its own mode (the kill table above); a correct save where the model is placed as the rest are."""
    cells = [Cell(by_name(fixture), mode(KILL_MODE), f"faults:{name}") for name, (_, fixture) in LOAD_PATHS.items()]
    result = run_cells(cells, tmp_path, Settings(jobs=2))
    assert [f"{c.cell_id}: {c.outcome} {c.detail}" for c in result.cells if c.outcome is not Outcome.PASS] == []
