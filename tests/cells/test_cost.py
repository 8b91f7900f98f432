"""The cost instrumentation measures what it claims, and budgets fail cells with cost classes."""

from __future__ import annotations

import pytest

from offload_conformance.fixtures import by_name
from offload_conformance.harness.plan.budget import Budget
from offload_conformance.harness.plan.cells import matrix as plan
from offload_conformance.harness.plan.modes import by_name as mode
from offload_conformance.harness.plan.selection import Settings
from offload_conformance.harness.run.runner import run_cells

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def costs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cells = plan(
        [by_name("deepseek_v3")],
        [mode("disk-full+offload_buffers"), mode("in-memory")],
        ["reference", "upstream", "tests.broken_impls:read_twice", "tests.broken_impls:hoard_memory"],
    )
    budget = Budget.parse(1.0, "32MB")
    result = run_cells(cells, tmp_path_factory.mktemp("cost"), Settings(jobs=2, budget=budget))
    return {(c.mode, c.impl): c for c in result.cells}


def test_read_amplification_is_counted(costs: dict) -> None:
    ref = costs[("disk-full+offload_buffers", "reference")].cost
    assert ref is not None and ref.offloaded_bytes > 0 and ref.read_amplification == 1.0
    twice = costs[("disk-full+offload_buffers", "tests.broken_impls:read_twice")]
    assert twice.cost.read_amplification == 2.0
    assert twice.classes == ("read-amplification",) and "amplification 2.00 > 1" in twice.detail
    assert costs[("in-memory", "reference")].cost.read_amplification is None  # nothing offloaded


def test_peak_rss_of_the_save_is_measured(costs: dict) -> None:
    hoard = costs[("disk-full+offload_buffers", "tests.broken_impls:hoard_memory")]
    # 64 MiB held, less what the process frees meanwhile (CI measured 80 KiB less once, under load): 63 MiB at least.
    assert hoard.cost.extra_rss >= 63 * 2**20
    assert hoard.cost.extra_anon >= 63 * 2**20  # the sampler sees anonymous memory too
    assert hoard.classes == ("memory-budget",)
    ref = costs[("disk-full+offload_buffers", "reference")]
    assert ref.outcome == "pass" and ref.cost.extra_rss < 32 * 2**20
