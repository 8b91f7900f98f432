"""Cost budgets: parsing, and a bad budget as a one-line usage error."""

from __future__ import annotations

from pathlib import Path

import pytest

from offload_conformance.harness.outcomes import FailureClass
from offload_conformance.harness.plan.budget import Budget, BudgetError
from offload_conformance.harness.results import SaveCost


def test_budget_parsing() -> None:
    assert Budget.parse(None, "2x-largest-tensor").max_extra_rss_tensors == 2.0
    assert Budget.parse(None, "500MB").max_extra_rss_bytes == 500 * 10**6
    with pytest.raises(BudgetError, match="NUMx-largest-tensor"):
        Budget.parse(None, "lots")
    with pytest.raises(BudgetError, match="> 0"):
        Budget.parse(0, None)


def test_cli_budget_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from offload_conformance.harness.cli import main

    assert main(["run", "--max-extra-rss", "lots", "--out", str(tmp_path / "o")]) == 2
    assert "--max-extra-rss 'lots'" in capsys.readouterr().err


def test_violations_name_their_class() -> None:
    cost = SaveCost(offloaded_bytes=100, largest_tensor_bytes=10, bytes_read=250, rss_before=0, peak_rss=50)
    over = Budget.parse(2.0, "4x-largest-tensor").violations(cost)
    assert [d.cls for d in over] == [FailureClass.READ_AMPLIFICATION, FailureClass.MEMORY_BUDGET]
    assert Budget.parse(3.0, "5x-largest-tensor").violations(cost) == []
