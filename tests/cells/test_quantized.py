"""Quantized fixtures keep their quantized bytes through the cells: what is compared is float8, packed
int and their scales, and the reference saves them (or says in one line why it cannot)."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors import safe_open

from offload_conformance.fixtures import by_name
from offload_conformance.harness.outcomes import Fp8OnCpu, Grade, Outcome
from offload_conformance.harness.plan.cells import matrix
from offload_conformance.harness.plan.modes import by_name as mode
from offload_conformance.harness.plan.selection import Settings
from offload_conformance.harness.run.runner import run_cells

pytestmark = pytest.mark.e2e
pytest.importorskip("compressed_tensors")  # the tests session installs it (extra "quant")


def _dtypes(saved: Path) -> dict[str, str]:
    out = {}
    for path in saved.glob("*.safetensors"):
        with safe_open(path, "pt") as f:
            out.update({k: str(f.get_slice(k).get_dtype()) for k in f.keys()})  # noqa: SIM118
    return out


def test_reference_saves_quantized_models_byte_identical(tmp_path: Path) -> None:
    fixtures = [by_name("llama_fp8"), by_name("llama_nvfp4"), by_name("deepseek_v3_fp8")]
    result = run_cells(matrix(fixtures, [mode("disk-full+offload_buffers")], ["reference"]), tmp_path, Settings(jobs=2))
    assert [(c.outcome, c.grade) for c in result.cells] == [(Outcome.PASS, Grade.BYTES)] * 3, result.cells
    fp8 = _dtypes(tmp_path / "cells" / "llama_fp8-disk-full+offload_buffers-reference" / "saved")
    assert (
        fp8["model.layers.0.mlp.down_proj.weight"] == "F8_E4M3" and "model.layers.0.mlp.down_proj.weight_scale" in fp8
    )
    nvfp4 = _dtypes(tmp_path / "cells" / "llama_nvfp4-disk-full+offload_buffers-reference" / "saved")
    assert (
        nvfp4["model.layers.0.mlp.up_proj.weight_packed"] == "U8"
        and "model.layers.0.mlp.up_proj.weight_global_scale" in nvfp4
    )
    ds = _dtypes(tmp_path / "cells" / "deepseek_v3_fp8-disk-full+offload_buffers-reference" / "saved")
    assert ds["model.layers.1.mlp.experts.0.up_proj.weight"] == "F8_E4M3"
    assert ds["model.layers.1.mlp.experts.0.up_proj.weight_scale_inv"] == "F32"


def test_fp8_on_cpu_dequantize_saves_bf16(tmp_path: Path) -> None:
    """Without --fp8-on-cpu keep, transformers dequantizes FP8 on a CPU machine: no quantized byte is saved."""
    cells = matrix([by_name("deepseek_v3_fp8")], [mode("in-memory")], ["reference"])
    run_cells(cells, tmp_path, Settings(fp8_on_cpu=Fp8OnCpu.DEQUANTIZE))
    saved = _dtypes(tmp_path / "cells" / "deepseek_v3_fp8-in-memory-reference" / "saved")
    assert "F8_E4M3" not in saved.values() and not any(k.endswith("_scale_inv") for k in saved)


def test_weights_dequantized_on_load_are_refused_in_one_line(tmp_path: Path) -> None:
    cells = matrix([by_name("qwen3_moe_int4")], [mode("disk-full")], ["reference"])
    (cell,) = run_cells(cells, tmp_path).cells
    assert cell.outcome is Outcome.ERROR and cell.failure is not None and cell.failure.type == "SaveError"
    assert "dequantized on load" in cell.failure.message
    assert cell.judged_against.startswith("source checkpoint: in-memory save raised ValueError")
