"""llm-compressor's flow end to end, where llmcompressor is installed (`nox -s llmcompressor` installs it with
transformers 5.17; the tests session has transformers 5.24, which llm-compressor 0.14 does not accept)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offload_conformance.harness.outcomes import Grade, Outcome
from offload_conformance.harness.tools.llmcompressor.plan import plan

pytestmark = pytest.mark.e2e
pytest.importorskip("llmcompressor", reason="llmcompressor is not installed here; `nox -s llmcompressor` runs it")


def test_qwen3_moe_fp8_disk_full_matches_the_in_memory_flow(tmp_path: Path) -> None:
    from offload_conformance.harness.tools.llmcompressor.run import run_flows

    cells = plan(("qwen3_moe",), ("fp8_dynamic",), ("disk-full",))
    result = run_flows(cells, tmp_path)
    assert [(c.outcome, c.grade) for c in result.cells] == [(Outcome.PASS, Grade.BYTES)] * 2, result.cells
    assert result.environment["llmcompressor"] != "not installed"
    saved = tmp_path / "cells" / "qwen3_moe-fp8_dynamic-disk-full-reference" / "saved"
    config = json.loads((saved / "config.json").read_text())
    assert config["quantization_config"]["format"] == "float-quantized"
    assert (saved / "recipe.yaml").exists()
