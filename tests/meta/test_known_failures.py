"""Known-failures files: matching, reasons, stale entries and patterns that match nothing."""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest

from offload_conformance.harness.plan import known_failures as kf
from tests.meta.documents import BASE


def test_listed_failures_are_known_and_listed_passes_stale() -> None:
    known = kf.parse("# known\nfx-acc-*  # accelerate offload crash\nfx-full-upstream  # stale now\n", "x.txt")
    by = known.apply(BASE).key()
    assert by["fx-acc-upstream"].xfail == "accelerate offload crash" and not by["fx-acc-upstream"].counts_as_failure
    assert by["fx-full-upstream"].stale_xfail
    assert not known.apply(BASE).ok  # fx-part still fails unlisted


def test_a_pattern_without_reason_is_refused() -> None:
    with pytest.raises(kf.KnownFailuresError, match=r"x.txt:1: 'fx-acc-\*' has no '# reason'"):
        kf.parse("fx-acc-*\n", "x.txt")


def test_line_order_does_not_change_the_meaning() -> None:
    lines = ["fx-acc-*  # crash", "*-upstream  # every upstream cell"]
    forward = kf.parse("\n".join(lines), "a").apply(BASE).key()["fx-acc-upstream"].xfail
    backward = kf.parse("\n".join(reversed(lines)), "b").apply(BASE).key()["fx-acc-upstream"].xfail
    assert forward is not None and backward is not None
    assert set(forward.split("; ")) == set(backward.split("; ")) == {"crash", "every upstream cell"}


def test_patterns_matching_no_cell_are_named() -> None:
    known = kf.parse("fx-acc-*  # crash\nfx_typo-*  # gone\n", "x.txt")
    unmatched = known.unmatched([c.cell_id for c in BASE.cells])
    assert [(e.pattern, e.line) for e in unmatched] == [("fx_typo-*", 2)]


def test_unmatched_patterns_are_reported_with_file_and_line() -> None:
    from offload_conformance.harness.report.terminal import unmatched_lines

    known = kf.parse("fx_typo-*  # gone\n", "known.txt")
    assert unmatched_lines(known.unmatched(["fx-acc-upstream"]), known.source) == [
        "known.txt:1: pattern 'fx_typo-*' matches no cell of this run"
    ]


def test_shipped_files_parse_and_name_fixtures_in_full() -> None:
    """Every shipped pattern starts with a whole fixture name (or '*'), so a fixture added later is
    never listed by accident."""
    from offload_conformance.fixtures import DEFAULT_FIXTURES

    names = {s.name for s in DEFAULT_FIXTURES}
    files = sorted(kf.SHIPPED.glob("transformers-*.txt"))
    assert files
    for path in files:
        known = kf.load(path)
        assert known.entries and all(e.reason for e in known.entries)
        generated = path.name.endswith(".all.txt")  # the set `all`: gen_<model_type> fixtures
        for e in known.entries:
            head = e.pattern.split("-", 1)[0]
            ok = re.fullmatch(r"gen_[a-z0-9_]+", head) if generated else head == "*" or head in names
            assert ok, f"{path.name}:{e.line}: {e.pattern!r} does not name a fixture"
    if version("transformers") == "5.24.0":
        assert kf.for_installed() == kf.SHIPPED / "transformers-5.24.0.txt"
