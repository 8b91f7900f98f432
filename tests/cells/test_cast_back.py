"""A model loaded in float32 and cast back to bf16 before its save (fixture qwen3_moe_cast_back): the saved config
must name the dtype saved, and an offloaded model, which refuses the cast, is reported unsupported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from offload_conformance.harness.outcomes import FailureClass, Outcome
from offload_conformance.harness.plan import selection
from offload_conformance.harness.plan.cells import safe_name
from offload_conformance.harness.run.runner import run_cells

STALE = "tests.broken_impls:stale_config_dtype"


@pytest.mark.e2e
def test_a_cast_back_save_names_its_dtype_and_a_stale_dtype_fails(tmp_path: Path) -> None:
    wanted = selection.Selection(
        fixtures=("qwen3_moe_cast_back",), modes=("in-memory", "disk-full"), impls=("reference", STALE)
    )
    result = run_cells(selection.plan(wanted), tmp_path, selection.Settings(jobs=2))
    by = {(c.mode, c.impl): c for c in result.cells}
    good = by[("in-memory", "reference")]
    assert good.outcome is Outcome.PASS, good.detail
    stale = by[("in-memory", STALE)]
    assert stale.outcome is Outcome.FAIL and FailureClass.OTHER_FILE in stale.classes, stale.detail
    refused = by[("disk-full", "reference")]
    assert refused.outcome is Outcome.UNSUPPORTED and "CastRefused" in refused.detail, refused.detail
    saved = tmp_path / "cells" / safe_name(good.cell_id) / "saved"
    assert json.loads((saved / "config.json").read_text())["dtype"] == "bfloat16"
    with safe_open(next(saved.glob("*.safetensors")), "pt") as f:
        assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} == {"BF16"}  # noqa: SIM118 (safe_open has no __iter__)
