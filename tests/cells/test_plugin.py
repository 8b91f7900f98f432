"""The pytest plugin: cells as pytest items, planned by the CLI's core, selectable, reported, parallel."""

from __future__ import annotations

import pytest

from offload_conformance.harness.plan.modes import MODES

pytestmark = pytest.mark.e2e
BASE = ["-p", "no:cacheprovider", "--offload-fixture=deepseek_v3", "--offload-max-shard-size=default"]


def test_reference_cells_pass_and_are_named_by_cell_id(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        *BASE, "--offload-impl=reference", "--offload-mode=disk-full", "--offload-mode=in-memory", "-v"
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_conformance?deepseek_v3-disk-full-reference? PASSED*"])


def test_fault_fails_with_its_class_and_k_selects(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        *BASE,
        "--offload-impl=faults:skip-persistent-buffers",
        "-k",
        "disk-full and offload_buffers",
        "--junitxml=out.xml",
    )
    # disk-full+offload_buffers and its +forward and +train-eval twins (the ones in the default matrix)
    result.assert_outcomes(failed=3, deselected=sum(m.default for m in MODES) - 3)
    result.stdout.fnmatch_lines(["*fail: missing-tensor: *e_score_correction_bias*"])
    assert 'message="fail: missing-tensor' in (pytester.path / "out.xml").read_text()


def test_known_failures_cell_patterns_and_unmatched_entries(pytester: pytest.Pytester) -> None:
    """The same planning core as the CLI: --offload-cell selects, --offload-xfails marks a listed failure
    xfail, a listed cell that passes fails as stale, and a pattern matching nothing is named."""
    known = pytester.path / "known.txt"
    known.write_text(
        "deepseek_v3-disk-full-*  # offloaded weights written as zeros\n"
        "deepseek_v3-in-memory-*  # nothing offloaded: passes, so stale\n"
        "deepseek_v3_typo-*  # matches nothing\n"
    )
    result = pytester.runpytest_subprocess(
        *BASE,
        "--offload-impl=faults:offloaded-as-zeros",
        "--offload-cell=deepseek_v3-disk-full-*",
        "--offload-cell=deepseek_v3-in-memory-*",
        f"--offload-xfails={known}",
        "-rA",
    )
    result.assert_outcomes(xfailed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*passes now but is listed as a known failure (nothing offloaded: passes, so stale)*",
            f"*warning: {known}:3: pattern 'deepseek_v3_typo-*' matches no cell of this run*",
            "*known failure: offloaded weights written as zeros*",
        ]
    )


def test_xdist_spreads_cells_over_workers(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    result = pytester.runpytest_subprocess(
        *BASE,
        "--offload-impl=reference",
        "--offload-mode=disk-partial",
        "--offload-mode=experts-on-disk",
        "-n",
        "2",
        "-v",
    )
    result.assert_outcomes(passed=2)
    # Each worker ran one of the two cells: they were run in parallel, not one after the other.
    workers = {w for w in ("[gw0]", "[gw1]") if any(w in line and "PASSED" in line for line in result.outlines)}
    assert workers == {"[gw0]", "[gw1]"}, result.outlines


def test_without_the_option_nothing_is_added(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_one():\n    assert True\n")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--offload-impl=no_such_module:save", "*cannot import no_such_module*"),
        ("--offload-mode=ram", "*unknown mode 'ram'*"),
        ("--offload-cell=nothing-like-this", "*matches no cell of the planned matrix*"),
    ],
)
def test_bad_options_are_usage_errors(pytester: pytest.Pytester, option: str, message: str) -> None:
    impl = [] if option.startswith("--offload-impl") else ["--offload-impl=reference"]
    result = pytester.runpytest_subprocess(*impl, option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
