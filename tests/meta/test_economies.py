"""The default matrix's economies (harness.plan.selection._default_economies) leave out only what was not asked
for, and never a cell that killed a mutant first in the last full mutation analysis."""

from __future__ import annotations

from pathlib import Path

from offload_conformance.harness.plan import selection
from offload_conformance.harness.plan.selection import ACCELERATE_LOADED_FIXTURES, REFERENCE_SMALL_SHARD_MODES

KILLERS = Path(__file__).parents[2] / "harness" / "tools" / "mutants" / "first_killers.txt"


def _ids(**wanted: tuple[str, ...]) -> set[str]:
    return {c.cell_id for c in selection.plan(selection.Selection(**wanted))}


def test_every_cell_that_killed_a_mutant_first_stays_in_the_default_matrix() -> None:
    killers = {line.split()[0] for line in KILLERS.read_text().splitlines() if line and not line.startswith("#")}
    assert len(killers) > 100
    assert not sorted(killers - _ids())


def test_the_reference_small_shards_run_in_a_few_modes_unless_asked() -> None:
    default = selection.plan(selection.Selection())
    small = {c.mode.name for c in default if c.impl == "reference" and "max_shard_size=24KB" in c.cell_id}
    assert small == set(REFERENCE_SMALL_SHARD_MODES) & small and "disk-full" not in small
    asked = _ids(fixtures=("qwen3_moe",), impls=("reference",), shard_sizes=("24KB",))
    assert "qwen3_moe-disk-full-reference-max_shard_size=24KB" in asked


def test_upstream_after_accelerates_own_offload_runs_on_a_few_fixtures_unless_asked() -> None:
    default = selection.plan(selection.Selection())
    loaded = {c.fixture.name for c in default if c.impl == "upstream" and c.mode.name.startswith("accelerate-")}
    assert loaded and loaded <= ACCELERATE_LOADED_FIXTURES
    assert "mixtral-accelerate-disk-upstream" in _ids(fixtures=("mixtral",))
    assert "mixtral-accelerate-disk-upstream" in _ids(modes=("accelerate-disk",))


def test_quantized_moe_fixtures_run_the_saving_modes_unless_asked() -> None:
    assert "qwen3_moe_fp8-accelerate-cpu-upstream" not in _ids()
    assert "qwen3_moe_fp8-disk-partial-upstream" in _ids()
    assert "qwen3_moe_fp8-accelerate-cpu-upstream" in _ids(modes=("accelerate-cpu",))
