"""Synthetic result documents for the meta-tests of gate, merge, known failures and reports."""

from __future__ import annotations

from offload_conformance.harness.outcomes import FailureClass, Grade, Outcome, Stage
from offload_conformance.harness.results import CellResult, Difference, Failure, RunResult, TensorFacts

SAVE_CRASH = Failure(Stage.SAVE, "NotImplementedError", "Cannot copy out of meta tensor; no data!", "torch.py:479")


def cell(cell_id: str, outcome: Outcome, classes: tuple[FailureClass, ...] = (), **kw: object) -> CellResult:
    fixture, mode, impl = cell_id.split("-", 2)
    if outcome is Outcome.ERROR and "failure" not in kw and "baseline_failure" not in kw:
        kw["failure"] = SAVE_CRASH
    return CellResult(
        cell_id=cell_id,
        fixture=fixture,
        mode=mode,
        impl=impl,
        save_options={},
        outcome=outcome,
        grade=Grade.BYTES if outcome is Outcome.PASS else None,
        classes=classes,
        detail=f"{outcome} detail",
        seconds=0.1,
        differences=tuple(
            Difference(
                c,
                f"{c} here",
                "model.norm.weight",
                "model-00002-of-00002.safetensors",
                expected=TensorFacts("model-00001-of-00002.safetensors", "BF16", (8,), "e" * 64),
                actual=TensorFacts("model-00002-of-00002.safetensors", "BF16", (8,), "e" * 64),
            )
            for c in classes
        ),
        **kw,
    )  # type: ignore[arg-type]


def doc(version: str, *cells: CellResult, digest: str = "d1") -> RunResult:
    return RunResult(Grade.BYTES, {"transformers": version}, cells, fixtures={"fx": digest})


P, F, E = Outcome.PASS, Outcome.FAIL, Outcome.ERROR
BASE = doc(
    "5.14.1",
    cell("fx-full-upstream", P),
    cell("fx-part-upstream", F, (FailureClass.INDEX,)),
    cell("fx-acc-upstream", E),
    cell("fx-old-upstream", P),
)
CAND = doc(
    "5.15.1",
    cell("fx-full-upstream", F, (FailureClass.SHARD_LAYOUT,)),
    cell("fx-part-upstream", P),
    cell("fx-acc-upstream", E),
    cell("fx-new-upstream", P),
)
