"""The modes that save a model the conversion engine never loaded (from-config, custom-code) in the plan: asked for
by name only, never in the default matrix or the sweep, judged against the plain in-memory save."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from offload_conformance.harness.plan.modes import MODES, Placement, by_name
from offload_conformance.harness.plan.selection import Selection, plan
from offload_conformance.harness.run.custom_code import _place

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = ("from-config", "custom-code")


@pytest.mark.parametrize("name", OUTSIDE)
def test_asked_for_by_name_only(name: str) -> None:
    mode = by_name(name)
    assert mode.placement is Placement(name) and not mode.default and not mode.step
    assert mode.load_kwargs(None, Path("unused")) == {}  # type: ignore[arg-type]  # loaded in memory first
    assert [m for m in MODES if m.placement is mode.placement] == [mode]  # no +forward or +offload_buffers twin
    assert not any(c.mode is mode for c in plan(Selection(fixtures=("qwen3_moe",))))
    asked = plan(Selection(fixtures=("qwen3_moe",), modes=(name,)))
    assert [c.cell_id for c in asked] == [
        f"qwen3_moe-{name}-upstream",
        f"qwen3_moe-{name}-reference",
        f"qwen3_moe-{name}-upstream-max_shard_size=24KB",
        f"qwen3_moe-{name}-reference-max_shard_size=24KB",
    ]
    assert all(c.baseline.mode.name == "in-memory" for c in asked)  # judged against the plain in-memory save


def test_the_sweep_does_not_run_them() -> None:
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    sweep = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "SWEEP_MODES")
    assert not set(ast.literal_eval(sweep.value)) & set(OUTSIDE)


def test_custom_code_modules_are_the_checkpoint_names() -> None:
    root = torch.nn.Module()
    a, b = torch.ones(2), torch.zeros(3)
    _place(root, "encoder.layers.0.attn.Wqkv.weight", a)
    _place(root, "encoder.layers.0.norm1.weight", b)
    state = root.state_dict()
    assert list(state) == ["encoder.layers.0.attn.Wqkv.weight", "encoder.layers.0.norm1.weight"]
    assert state["encoder.layers.0.attn.Wqkv.weight"].data_ptr() == a.data_ptr()  # the tensor itself, not a copy
