"""The llm-compressor run's plan: cell ids, which cells apply, their baselines and schemes; no llmcompressor needed
(`nox -s llmcompressor` is the end-to-end proof, tests/cells/test_llmcompressor.py where it is installed)."""

from __future__ import annotations

import importlib.util

import pytest

from offload_conformance.harness.cli import main
from offload_conformance.harness.plan.impls import resolve
from offload_conformance.harness.plan.selection import PlanError
from offload_conformance.harness.run import process
from offload_conformance.harness.tools.llmcompressor import flow
from offload_conformance.harness.tools.llmcompressor.plan import (
    MODE_NAMES,
    ROUND_TRIP_SCHEMES,
    SCHEMES,
    WORKFLOW_MODES,
    plan,
    scheme_by_name,
)


def test_every_fixture_scheme_mode_and_saver_once() -> None:
    cells = plan()
    ids = [c.cell_id for c in cells]
    # 23 modes on the two MoE fixtures; llama (dense) without experts-on-disk, map-routers-on-disk (both with
    # offload_buffers both ways) and load_checkpoint-experts-on-disk+offload_buffers: 18. The DeepSeek-V4 / GLM-5
    # workflow: its 2 schemes in its 7 modes.
    assert len(ids) == len(set(ids)) == 2 * 2 * 23 * 2 + 2 * 18 * 2 + 2 * 2 * 7 * 2
    assert ids[:3] == [
        "qwen3_moe-fp8_dynamic-in-memory-upstream",
        "qwen3_moe-fp8_dynamic-in-memory-reference",
        "qwen3_moe-fp8_dynamic-disk-full-upstream",
    ]
    assert "deepseek_v3-w4a16_g32-experts-on-disk+offload_buffers-reference" in ids
    assert "llama-w4a16_g32-disk-partial+offload_buffers-upstream" in ids
    assert "llama-fp8_dynamic-accelerate-disk+offload_buffers-reference" in ids
    assert not [i for i in ids if i.startswith("llama-") and ("experts-on-disk" in i or "routers" in i)]
    assert "qwen3_moe-fp8_dynamic-map-routers-on-disk-upstream" in ids
    assert "llama-w4a16_g32-dispatch-disk-partial+offload_buffers-reference" in ids
    assert set(MODE_NAMES) == {c.mode.name for c in cells}
    workflow = [c for c in cells if c.fixture.name in ("deepseek_v4", "glm5")]
    assert {c.scheme.name for c in workflow} == {"nvfp4", "nvfp4_fp8_mixed"}
    assert {c.mode.name for c in workflow} == set(WORKFLOW_MODES)
    assert "glm5-nvfp4_fp8_mixed-disk-full-upstream" in ids
    assert not [c for c in cells if c.fixture.name == "llama" and c.scheme.name in ROUND_TRIP_SCHEMES]


def test_baseline_is_the_in_memory_flow_saved_by_llmcompressor() -> None:
    cell = plan(("deepseek_v3",), ("w4a16_g32",), ("disk-partial",), ("reference",))[0]
    assert cell.baseline.cell_id == "deepseek_v3-w4a16_g32-in-memory-upstream"
    harness_cell = cell.as_cell()
    assert dict(harness_cell.save_options) == {"scheme": "w4a16_g32"}
    # What the cell process resolves: flow.py imports llmcompressor only when a flow runs.
    assert resolve(harness_cell.impl) is flow.reference
    assert resolve(cell.baseline.as_cell().impl) is flow.upstream


def test_schemes_are_data_free_quantization_modifiers() -> None:
    fp8 = scheme_by_name("fp8_dynamic").modifier_kwargs()
    assert fp8 == {"targets": "Linear", "scheme": "FP8_DYNAMIC", "ignore": ["lm_head"]}
    w4 = scheme_by_name("w4a16_g32").modifier_kwargs()
    weights = w4["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["strategy"], weights["group_size"]) == (4, "group", 32)
    assert "lm_head" in w4["ignore"] and len(SCHEMES) == 4
    assert scheme_by_name("nvfp4").modifier_kwargs()["scheme"] == "NVFP4A16"
    mixed = scheme_by_name("nvfp4_fp8_mixed").modifier_kwargs()
    assert set(mixed["scheme"]) == {"NVFP4A16", "FP8_BLOCK"} and "targets" not in mixed


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ((("nope",), (), (), ()), "unknown fixture 'nope'"),
        (((), ("W4A16",), (), ()), "unknown scheme 'W4A16'"),
        (((), (), ("ram",), ()), "unknown mode 'ram'"),
        (((), (), (), ("faults:x",)), "unknown saver 'faults:x'"),
    ],
)
def test_unknown_names(axes: tuple[tuple[str, ...], ...], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        plan(*axes)


def test_cli_lists_and_refuses_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["llmcompressor", "--list", "--fixture", "llama", "--scheme", "fp8_dynamic"]) == 0
    assert capsys.readouterr().out.split() == [c.cell_id for c in plan(("llama",), ("fp8_dynamic",))]
    assert main(["llmcompressor", "--list", "--saver", "nope"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    if importlib.util.find_spec("llmcompressor") is None:
        assert main(["llmcompressor", "--out", "/nonexistent/never-written"]) == 2
        assert "nox -s llmcompressor" in capsys.readouterr().err


def test_preload_after_the_server_started_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "_CONTEXT", object())
    monkeypatch.setattr(process, "_EXTRA_PRELOAD", [])
    assert process.preload("llmcompressor") is False
