"""The lifecycle checks on real cells: dropped-on-load, an offloaded int64 buffer, the +forward modes, resave."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import transformers

from offload_conformance.fixtures import by_name, generate
from offload_conformance.fixtures.manifest import read_manifest
from offload_conformance.harness.plan.cells import matrix as plan
from offload_conformance.harness.plan.modes import by_name as mode
from offload_conformance.harness.plan.selection import Settings
from offload_conformance.harness.run.lifecycle import snapshot
from offload_conformance.harness.run.runner import run_cells

pytestmark = pytest.mark.e2e


def test_the_mtp_layer_is_dropped_on_load_so_no_save_has_it(tmp_path: Path) -> None:
    result = run_cells(plan([by_name("deepseek_v3_mtp")], [mode("disk-full")], ["upstream", "reference"]), tmp_path)
    for cell in result.cells:
        # The save is the in-memory save byte for byte; the MTP layer (model.layers.3.*) is in neither.
        assert (cell.outcome, cell.grade, cell.classes) == ("fail", "bytes", ("dropped-on-load",)), cell.detail
        assert cell.differences[0].tensor is not None and cell.differences[0].tensor.startswith("model.layers.3.")


def test_deepseek_v4_int64_buffer_is_offloaded_and_keeps_its_dtype(tmp_path: Path) -> None:
    fixture = generate(by_name("deepseek_v4"))
    m = mode("disk-full+offload_buffers")
    config = transformers.AutoConfig.from_pretrained(fixture)
    with torch.device("meta"):
        skeleton = transformers.AutoModelForCausalLM.from_config(config)
    kwargs = m.load_kwargs(skeleton, tmp_path / "offload")
    model = transformers.AutoModelForCausalLM.from_pretrained(fixture, dtype=torch.bfloat16, **kwargs)
    name = "model.layers.0.mlp.gate.tid2eid"
    state = snapshot(model).tensors[name]
    assert (state.device, state.dtype) == ("meta", "int64")  # offloaded, and read back from storage as int64
    source = read_manifest(fixture)["tensors"]["layers.0.ffn.gate.tid2eid"]  # type: ignore[index]
    assert state.sha256 == source["sha256"]


def test_forward_modes_and_resave(tmp_path: Path) -> None:
    plain, forward = mode("disk-full+offload_buffers"), mode("disk-full+offload_buffers+forward")
    assert forward.default
    cells = plan([by_name("qwen3_moe"), by_name("deepseek_v3_fp8")], [plain, forward], ["reference"])
    result = {c.cell_id: c for c in run_cells(cells, tmp_path, Settings(jobs=2, resave_everywhere=True)).cells}
    qwen, qwen_fwd = (
        result["qwen3_moe-disk-full+offload_buffers-reference"],
        result["qwen3_moe-disk-full+offload_buffers+forward-reference"],
    )
    assert qwen.outcome == "pass" and qwen.lifecycle is not None
    assert (qwen.lifecycle.model_checked, qwen.lifecycle.forward_skipped, qwen.lifecycle.resaved) == (True, None, True)
    assert qwen_fwd.outcome == "pass" and qwen_fwd.lifecycle is not None and qwen_fwd.lifecycle.resaved
    # FP8 kept on CPU has no CPU kernels: the forward part is skipped and said why; a +forward cell cannot run.
    fp8 = result["deepseek_v3_fp8-disk-full+offload_buffers-reference"]
    assert fp8.outcome == "pass" and fp8.lifecycle is not None
    assert fp8.lifecycle.forward_skipped is not None and fp8.lifecycle.forward_skipped.startswith("forward pass raised")
    fp8_fwd = result["deepseek_v3_fp8-disk-full+offload_buffers+forward-reference"]
    assert fp8_fwd.outcome == "unsupported" and "forward raised" in fp8_fwd.detail


def test_load_fidelity_holds_the_in_memory_load_to_the_model_that_wrote_the_fixture(tmp_path: Path) -> None:
    """gen_bert's recipe records the writer's logits, which its in-memory load reproduces bit for bit. Its checkpoint
    with one embedding row changed (as a load conversion would change it, the manifest left as it was) is loaded and
    saved back byte for byte, so round-trip and the offloaded cells see nothing: load-fidelity fails it."""
    from safetensors.torch import load_file, save_file

    spec = by_name("gen_bert")
    fixture = generate(spec)
    assert read_manifest(fixture)["recipe"]["logits"]  # type: ignore[index]
    changed = tmp_path / "changed"
    shutil.copytree(fixture, changed)
    tensors = load_file(changed / "model.safetensors")
    tensors["bert.embeddings.word_embeddings.weight"][3] += 0.5  # token id 3 is the fixed input's first
    save_file(tensors, changed / "model.safetensors", metadata={"format": "pt"})
    cells = plan([spec], [mode("in-memory")], ["upstream"])
    for fixture_dir, expected in ((fixture, ()), (changed, ("load-fidelity",))):
        out = tmp_path / fixture_dir.name
        (cell,) = run_cells(cells, out, fixture_dirs={spec: fixture_dir}).cells
        assert cell.classes == expected, cell.detail
