"""Detection power: every injectable fault is failed by the runner with exactly its classes."""

from __future__ import annotations

from pathlib import Path

import pytest

from offload_conformance.fixtures import by_name
from offload_conformance.fixtures.catalog import layout_for
from offload_conformance.harness.plan.faults import FAULTS
from offload_conformance.harness.tools.killtable import Verdict, applies, kill_table, render

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
        assert fault.expected and fault.description


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
