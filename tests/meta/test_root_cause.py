"""Root causes, not wrappers: what a cell's failure says it was caused by, and reports grouped by it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from offload_conformance.harness.outcomes import Outcome, Stage
from offload_conformance.harness.report.grid import by_root_cause
from offload_conformance.harness.report.markdown import markdown
from offload_conformance.harness.results import Failure
from offload_conformance.harness.run.cell import _failure
from tests.meta.documents import cell, doc


def _raised(make) -> BaseException:  # type: ignore[no-untyped-def]
    try:
        make()
    except Exception as e:
        return e
    raise AssertionError("nothing raised")


def _wrapped_from() -> None:
    try:
        {}["model.layers.0.mlp.experts.gate_up_proj"]
    except KeyError as e:
        raise RuntimeError("could not revert some weight conversions") from e


def _report_then_wrapper() -> None:
    # What transformers' log_state_dict_report does: the errors are in its loading info, the raise only points there.
    trace = "Traceback (most recent call last):\n  File 'x.py', line 1, in f\n    g()\nValueError: Expected 2D\n"
    trace += (
        "Expected 2D\nError: Chunk on tensors destined for model.layers.0.mlp.experts.gate_up_proj. Ckpt contains: 2\n"
    )
    loading_info = SimpleNamespace(conversion_errors={"model.layers.0.mlp.experts.0.up_proj.weight": trace})
    assert loading_info
    raise RuntimeError("We encountered some issues during automatic conversion of the weights.")


def _suppressed() -> None:
    try:
        raise KeyError("inner")
    except KeyError:
        raise ValueError("outer") from None


@pytest.mark.parametrize(
    ("make", "cause"),
    [
        (_wrapped_from, "KeyError: 'model.layers.0.mlp.experts.gate_up_proj' (test_root_cause.py:"),
        (
            _report_then_wrapper,
            "conversion of model.layers.0.mlp.experts.0.up_proj.weight: ValueError: Expected 2D (Chunk on tensors",
        ),
        (_suppressed, ""),
    ],
)
def test_the_cause_behind_a_wrapper_is_kept(make, cause: str) -> None:  # type: ignore[no-untyped-def]
    failure = Failure.from_json(_failure(Stage.LOAD, _raised(make)))
    assert failure is not None and failure.cause.startswith(cause) and bool(failure.cause) == bool(cause)
    assert (f"caused by {cause}" in str(failure)) == bool(cause)


def test_failing_cells_are_grouped_by_root_cause_in_the_summary() -> None:
    def wrapped(cell_id: str, cause: str):  # type: ignore[no-untyped-def]
        return cell(cell_id, Outcome.ERROR, failure=Failure(Stage.LOAD, "RuntimeError", "conversion", "", cause))

    result = doc("5.24.0", wrapped("a-m-upstream", "X"), wrapped("b-m-upstream", "X"), wrapped("c-m-upstream", "Y"))
    groups = [(cause, [c.cell_id for c in cells]) for cause, cells in by_root_cause(result)]
    assert groups == [("load raised X", ["a-m-upstream", "b-m-upstream"]), ("load raised Y", ["c-m-upstream"])]
    assert "| 2 | 0 | load raised X | `a-m-upstream` |" in markdown(result)
