"""The from-config mode in the plan: a mode of its own, asked for by name, never in the default matrix or the sweep."""

from __future__ import annotations

import ast
from pathlib import Path

from offload_conformance.harness.plan.modes import MODES, Placement, by_name
from offload_conformance.harness.plan.selection import Selection, plan

ROOT = Path(__file__).resolve().parents[2]


def test_from_config_is_asked_for_by_name_only() -> None:
    mode = by_name("from-config")
    assert mode.placement is Placement.FROM_CONFIG and not mode.default and not mode.forward
    assert mode.load_kwargs(None, Path("unused")) == {}  # type: ignore[arg-type]  # loaded in memory first
    assert not any(m.placement is Placement.FROM_CONFIG for m in MODES if m is not mode)  # no +forward twin
    assert not any(c.mode is mode for c in plan(Selection(fixtures=("qwen3_moe",))))
    asked = plan(Selection(fixtures=("qwen3_moe",), modes=("from-config",)))
    assert [c.cell_id for c in asked] == [
        "qwen3_moe-from-config-upstream",
        "qwen3_moe-from-config-reference",
        "qwen3_moe-from-config-upstream-max_shard_size=24KB",
        "qwen3_moe-from-config-reference-max_shard_size=24KB",
    ]
    assert all(c.baseline.mode.name == "in-memory" for c in asked)  # judged against the plain in-memory save


def test_the_sweep_does_not_run_it() -> None:
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    sweep = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "SWEEP_MODES")
    assert "from-config" not in ast.literal_eval(sweep.value)
