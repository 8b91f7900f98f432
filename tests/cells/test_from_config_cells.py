"""The from-config mode on real cells: on a correct transformers its save is the in-memory save byte for byte; given a
rename rule the checkpoint never had (transformers#48075's class), only the from-config cell shows it."""

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


def test_from_config_catches_a_rule_the_checkpoint_never_had(tmp_path: Path) -> None:
    cells = plan([QWEN], [by_name("in-memory"), by_name("from-config")], ["upstream", UNUSED])
    result = {c.cell_id: c for c in run_cells(cells, tmp_path, Settings(jobs=2)).cells}
    fc = result[f"{QWEN.name}-from-config-upstream"]
    assert (fc.outcome, fc.grade, fc.classes) == ("pass", "bytes", ()), fc.detail  # no load, same checkpoint
    assert fc.hf_device_map is None and fc.lifecycle is not None and fc.lifecycle.model_checked
    # The load matched no such rule, so the in-memory save does not revert it: a load-based cell cannot see it.
    loaded = result[f"{QWEN.name}-in-memory-{UNUSED}"]
    assert (loaded.outcome, loaded.grade) == ("pass", "bytes"), loaded.detail
    broken = result[f"{QWEN.name}-from-config-{UNUSED}"]
    assert (broken.outcome, broken.classes) == ("fail", ("missing-tensor", "extra-tensor", "permuted")), broken.detail
    singular, plural = (f"model.{n}" for n in UNUSED_RULE)  # the rule's checkpoint side, then the model's
    assert {(d.cls, d.tensor) for d in broken.differences} >= {
        ("missing-tensor", plural),
        ("extra-tensor", singular),
        ("permuted", singular),
    }
