"""The from-config and custom-code modes on real cells. On a correct transformers each saves the in-memory save byte
for byte. Given a rename rule the checkpoint never had (transformers#48075's class), the in-memory cell cannot see it
(the load matched no such rule, so the save does not revert it) and both modes show it: from_config's save reverts
the whole mapping, and a rule the user registers applies to custom code too (what 5.12.1 did with every mapping,
transformers#46650)."""

from __future__ import annotations

from pathlib import Path

import pytest

from offload_conformance.fixtures import DEFAULT_FIXTURES
from offload_conformance.harness.plan.cells import matrix as plan
from offload_conformance.harness.plan.modes import by_name
from offload_conformance.harness.plan.selection import Settings
from offload_conformance.harness.run.runner import run_cells
from tests.broken_impls import UNUSED_RULE

pytestmark = pytest.mark.e2e
QWEN = DEFAULT_FIXTURES[0]
UNUSED = "tests.broken_impls:unused_rename"
MODES = ("from-config", "custom-code")


def test_both_modes_catch_a_rule_the_checkpoint_never_had(tmp_path: Path) -> None:
    cells = plan([QWEN], [by_name("in-memory"), *map(by_name, MODES)], ["upstream", UNUSED])
    result = {c.cell_id: c for c in run_cells(cells, tmp_path, Settings(jobs=1)).cells}
    loaded = result[f"{QWEN.name}-in-memory-{UNUSED}"]
    assert (loaded.outcome, loaded.grade) == ("pass", "bytes"), loaded.detail
    singular, plural = (f"model.{n}" for n in UNUSED_RULE)  # the rule's checkpoint side, then the model's
    for mode in MODES:
        good = result[f"{QWEN.name}-{mode}-upstream"]
        assert (good.outcome, good.grade, good.classes) == ("pass", "bytes", ()), good.detail
        assert good.hf_device_map is None and good.lifecycle is not None and good.lifecycle.model_checked
        broken = result[f"{QWEN.name}-{mode}-{UNUSED}"]
        assert (broken.outcome, broken.classes) == ("fail", ("missing-tensor", "extra-tensor", "permuted")), mode
        assert {(d.cls, d.tensor) for d in broken.differences} == {
            ("missing-tensor", plural),
            ("extra-tensor", singular),
            ("permuted", singular),
        }, broken.detail
