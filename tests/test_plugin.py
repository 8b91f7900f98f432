"""The pytest plugin: cells as pytest items, selectable, reported, parallel."""

from __future__ import annotations

import pytest

from harness.modes import MODES

pytestmark = pytest.mark.e2e
BASE = ["-p", "no:cacheprovider", "--offload-fixture=deepseek_v3", "--offload-max-shard-size=default"]


def test_reference_cells_pass_and_are_named(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        *BASE, "--offload-impl=reference", "--offload-mode=disk-full", "--offload-mode=in-memory", "-v"
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_conformance?deepseek_v3-disk-full? PASSED*"])


def test_fault_fails_with_its_class_and_k_selects(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        *BASE,
        "--offload-impl=faults:skip-persistent-buffers",
        "-k",
        "disk-full and offload_buffers",
        "--junitxml=out.xml",
    )
    result.assert_outcomes(failed=1, deselected=len(MODES) - 1)
    result.stdout.fnmatch_lines(["*fail: missing-tensor: *e_score_correction_bias*"])
    assert 'message="fail: missing-tensor' in (pytester.path / "out.xml").read_text()


def test_xdist_runs_cells_in_parallel(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    result = pytester.runpytest_subprocess(
        *BASE, "--offload-impl=reference", "--offload-mode=disk-partial", "--offload-mode=experts-on-disk", "-n", "2"
    )
    result.assert_outcomes(passed=2)


def test_without_the_option_nothing_is_added(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_one():\n    assert True\n")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_bad_impl_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--offload-impl=no_such_module:save")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cannot import no_such_module*"])
