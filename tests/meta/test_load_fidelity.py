"""load-fidelity: the fixture loaded in memory against the logits its writer recorded (judge.verdict)."""

from __future__ import annotations

import json
from pathlib import Path

from offload_conformance.harness.execution import Execution
from offload_conformance.harness.judge.verdict import load_fidelity
from offload_conformance.harness.outcomes import FailureClass as C
from offload_conformance.harness.results import Lifecycle

RAN = Lifecycle(model_checked=True)


def _fixture(tmp_path: Path, recipe: dict | None) -> Path:
    manifest = {"files": {}} | ({"recipe": recipe} if recipe is not None else {})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def _run(logits: str | None, lifecycle: Lifecycle | None = RAN) -> Execution:
    return Execution(Path("saved"), "", 0.0, lifecycle=lifecycle, logits=logits)


def test_other_logits_than_the_writers_fail(tmp_path: Path) -> None:
    fixture = _fixture(tmp_path, {"logits": "a" * 64})
    assert load_fidelity(fixture, _run("a" * 64)) == []
    (difference,) = load_fidelity(fixture, _run("b" * 64))
    assert difference.cls is C.LOAD_FIDELITY and "model that wrote the fixture" in difference.detail


def test_a_forward_pass_that_fails_only_after_the_load_fails(tmp_path: Path) -> None:
    fixture = _fixture(tmp_path, {"logits": "a" * 64})
    (difference,) = load_fidelity(fixture, _run(None, Lifecycle(True, forward_skipped="forward pass raised X")))
    assert difference.cls is C.LOAD_FIDELITY and difference.detail.endswith("forward pass raised X")


def test_nothing_to_hold_it_to_passes(tmp_path: Path) -> None:
    """No record (a hand-written fixture, a model the fixed input does not fit), no lifecycle check, or a forward
    pass the harness refused: not judged."""
    (tmp_path / "hand-written").mkdir()
    assert load_fidelity(_fixture(tmp_path / "hand-written", None), _run("b" * 64)) == []
    no_logits = _fixture(tmp_path, {"logits": None, "no_logits": "TypeError: CLIPOutput has no logits"})
    assert load_fidelity(no_logits, _run("b" * 64)) == []
    recorded = _fixture(tmp_path, {"logits": "a" * 64})
    assert load_fidelity(recorded, _run("b" * 64, None)) == []
    assert load_fidelity(recorded, _run(None, Lifecycle(True, "refused", forward_refused=True))) == []
    assert load_fidelity(tmp_path / "missing", _run("b" * 64)) == []
