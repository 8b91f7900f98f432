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
    from offload_conformance.fixtures.registry import EXTRA_FIXTURES

    names = {s.name for s in DEFAULT_FIXTURES + EXTRA_FIXTURES}  # plan.extras puts the extra ones in the matrix
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
    own = kf.SHIPPED / f"transformers-{version('transformers')}.txt"
    if own.exists():  # the pinned releases (5.24.0, 5.25.0) ship their own
        assert kf.for_installed() == own


# --- drift: a release with no file of its own is judged by the nearest older release's ---------------------------


@pytest.fixture
def shipped(tmp_path):  # type: ignore[no-untyped-def]
    for name in ("5.13.1", "5.24.0", "5.24.0.all"):
        (tmp_path / f"transformers-{name}.txt").write_text("fx-acc-*  # crash\n")
    return tmp_path


@pytest.mark.parametrize(
    ("installed", "fixture_set", "release"),
    [
        ("5.24.0", "default", "5.24.0"),
        ("5.25.0", "default", "5.24.0"),
        ("5.26.0.dev0", "default", "5.24.0"),  # a checkout of main
        ("5.20.0", "default", "5.13.1"),
        ("5.0.0", "default", None),
        ("5.25.0", "all", "5.24.0"),
        ("5.13.1", "all", None),
    ],
)
def test_the_nearest_release_at_or_below_the_installed_one_applies(
    shipped, installed: str, fixture_set: str, release: str | None
) -> None:  # type: ignore[no-untyped-def]
    assert kf.nearest(installed, fixture_set, shipped) == release


def test_auto_on_a_release_without_its_own_file_applies_an_older_one_and_says_so(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(kf, "installed_transformers", lambda: "5.99.0")
    known = kf.load(kf.AUTO)
    assert known.listed_for == "5.25.0" and known.drift == "known failures of 5.25.0 applied to 5.99.0"
    monkeypatch.setattr(kf, "installed_transformers", lambda: "5.24.0")
    assert kf.load(kf.AUTO).drift is None


def _older(text: str) -> kf.KnownFailures:
    """A file of 5.24.0 applied to 5.99."""
    return kf.KnownFailures("x", kf.parse(text, "x").entries, listed_for="5.24.0", installed="5.99")


def test_drift_names_new_and_fixed_cells_and_only_new_ones_fail_the_run() -> None:
    from offload_conformance.harness.report.markdown import markdown
    from offload_conformance.harness.report.terminal import render

    # fx-part fails unlisted (new); fx-full is listed and passes (fixed); fx-acc is listed and fails (known).
    known = kf.KnownFailures(
        "x", kf.parse("fx-acc-*  # crash\nfx-full-*  # was broken\n", "x").entries, "5.24.0", "5.99"
    )
    judged = known.apply(BASE)
    assert judged.drift_from == "5.24.0" and not judged.ok
    text = render(judged)
    assert "drift: known failures of 5.24.0 applied to" in text and "1 new, 1 fixed" in text
    assert "  new: fx-part-upstream: fail index" in text and "  fixed: fx-full-upstream: pass" in text
    assert "remove the entry" not in text  # fixed since the older release, not a stale entry of this one
    assert "1 new, 1 fixed" in markdown(judged)
    only_fixed = kf.KnownFailures(
        "x", kf.parse("fx-acc-*  # c\nfx-full-*  # b\nfx-part-*  # a\n", "x").entries, "5.24.0", "5.99"
    )
    assert only_fixed.apply(BASE).ok  # a fixed cell does not fail the run
