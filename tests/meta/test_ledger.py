"""The ledger's machinery: the data file's rules, the environments it installs, the verdicts it computes.

Verdicts are checked on synthetic run documents: each rule is shown to flip the verdict when broken
(flagged for an unrelated class, not clean on the fixed release, a run of the wrong versions)."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest

from offload_conformance.harness.ledger import entries, environments, report, verdicts
from offload_conformance.harness.ledger.entries import Verdict
from offload_conformance.harness.ledger.replay import runs_dir
from offload_conformance.harness.outcomes import FailureClass
from offload_conformance.harness.plan.selection import Selection, plan
from offload_conformance.harness.results import RunResult
from tests.meta.documents import E, F, P, cell

ROOT = Path(__file__).parents[2]
NEWEST = {"transformers": "5.24.0", "accelerate": "1.15.0", "compressed-tensors": "0.20.0"}


def _ledger(tmp_path: Path, body: str) -> entries.Ledger:
    path = tmp_path / "bugs.toml"
    newest = "\n".join(f'{k} = "{v}"' for k, v in NEWEST.items())
    path.write_text(f"[newest]\n{newest}\n\n{body}")
    return entries.load(path)


BUG = """
[[bug]]
id = "transformers#1"
class = "buffers skipped"
affected = "5.13.1"
fixed = "5.15.1"
cells = ["fx-disk-upstream"]
expect = ["missing-tensor"]
"""


def _run(version: str, *cells: object, **others: str) -> RunResult:
    env = {"transformers": version, "accelerate": "1.15.0", "compressed-tensors": "0.20.0", **others}
    return RunResult("bytes", env, cells)  # type: ignore[arg-type]


def _verdict(ledger: entries.Ledger, runs: dict[str, RunResult]) -> verdicts.Judged:
    return verdicts.judge(ledger.bugs[0], runs, ledger.newest)


def test_shipped_ledger_loads_and_names_the_newest_releases_ci_installs() -> None:
    ledger = entries.load()
    pins = dict(re.findall(r"^([\w-]+)==(\S+)$", (ROOT / "constraints" / "ci.txt").read_text(), re.MULTILINE))
    assert ledger.newest == {p: pins[p] for p in entries.PACKAGES}
    assert len(ledger.bugs) >= 1


def test_shipped_patterns_on_default_fixtures_name_planned_cells() -> None:
    """A typo in a pattern would make an entry replay nothing; generated fixtures are checked by `ledger run`."""
    bugs = entries.load().bugs
    named = tuple(dict.fromkeys(f for b in bugs for f in b.fixtures() if not f.startswith("gen_")))
    ids = [c.cell_id for c in plan(Selection(fixtures=named))]
    for bug in bugs:
        for pattern in bug.cells:
            if not pattern.startswith("gen_"):
                assert any(fnmatch.fnmatchcase(i, pattern) for i in ids), f"{bug.id}: {pattern}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('id = "transformers#1"', 'id = "see the thread"'), "id must look like"),
        (('expect = ["missing-tensor"]', 'expect = ["lost"]'), "not a failure class"),
        (('cells = ["fx-disk-upstream"]', 'cells = ["*-disk-upstream"]'), "whole fixture name"),
        (('fixed = "5.15.1"', 'fixed = "soon"'), "fixed a release"),
        (('class = "buffers skipped"', 'class = "x"\npackage = "torch"'), "package 'torch'"),
        (('cells = ["fx-disk-upstream"]\nexpect = ["missing-tensor"]', ""), "say why none can"),
        (('fixed = "5.15.1"', 'fixed = "5.15.1"\nverdict = "reproduced"'), "unknown field 'verdict'"),
        (('fixed = "5.15.1"', 'fixed = "5.15.1"\noptions = { jobs = 4 }'), "options may set"),
        (('fixed = "5.15.1"', 'fixed = "5.15.1"\noptions = { max_extra_rss = "lots" }'), "options: --max-extra-rss"),
    ],
)
def test_a_malformed_entry_is_one_error_naming_it(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    with pytest.raises(entries.LedgerError, match=re.escape(message)):
        _ledger(tmp_path, BUG.replace(*change))


def test_an_entry_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(entries.LedgerError, match="appears twice"):
        _ledger(tmp_path, BUG + BUG)


def test_reproduced_needs_the_expected_class_before_and_a_clean_fixed_release(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, BUG)
    fixed = _run("5.15.1", cell("fx-disk-upstream", P))
    lost = _run("5.13.1", cell("fx-disk-upstream", F, (FailureClass.MISSING_TENSOR,)))
    judged = _verdict(ledger, {"transformers-5.13.1/default": lost, "transformers-5.15.1/default": fixed})
    assert judged.verdict is Verdict.REPRODUCED
    assert "transformers-5.13.1: 1 fail missing-tensor" in judged.evidence[0]
    # flagged for another reason only: not this bug
    other = _run("5.13.1", cell("fx-disk-upstream", F, (FailureClass.SHARD_LAYOUT,)))
    assert (
        _verdict(ledger, {"transformers-5.13.1/default": other, "transformers-5.15.1/default": fixed}).verdict
        is Verdict.NOT_CAUGHT
    )
    # still failing on the release that claims the fix
    still = _run("5.15.1", cell("fx-disk-upstream", F, (FailureClass.MISSING_TENSOR,)))
    judged = _verdict(ledger, {"transformers-5.13.1/default": lost, "transformers-5.15.1/default": still})
    assert judged.verdict is Verdict.NOT_CAUGHT and any("not clean on the fixed" in e for e in judged.evidence)
    # an error counts only where the entry expects one
    crash = _run("5.13.1", cell("fx-disk-upstream", E))
    assert (
        _verdict(ledger, {"transformers-5.13.1/default": crash, "transformers-5.15.1/default": fixed}).verdict
        is Verdict.NOT_CAUGHT
    )
    erring = _ledger(tmp_path, BUG.replace('expect = ["missing-tensor"]', 'expect = ["error"]'))
    assert (
        _verdict(erring, {"transformers-5.13.1/default": crash, "transformers-5.15.1/default": fixed}).verdict
        is Verdict.REPRODUCED
    )


def test_open_bugs_are_judged_on_the_newest_release(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, BUG.replace('fixed = "5.15.1"', 'fixed = "open"'))
    lost = cell("fx-disk-upstream", F, (FailureClass.MISSING_TENSOR,))
    runs = {"transformers-5.13.1/default": _run("5.13.1", lost), "transformers-5.24.0/default": _run("5.24.0", lost)}
    assert _verdict(ledger, runs).verdict is Verdict.STILL_OPEN
    runs["transformers-5.24.0/default"] = _run("5.24.0", cell("fx-disk-upstream", P))
    assert _verdict(ledger, runs).verdict is Verdict.NOT_CAUGHT


def test_gpu_and_unreplayed_entries(tmp_path: Path) -> None:
    gpu = _ledger(tmp_path, BUG + "gpu = true\n")
    assert _verdict(gpu, {}).verdict is Verdict.NEEDS_GPU
    judged = _verdict(_ledger(tmp_path, BUG), {})
    assert judged.verdict is Verdict.NOT_CAUGHT and "not replayed" in judged.evidence[0]
    assert report.unexplained([judged]) == [judged]  # not caught and no `why`: the session fails on it


def test_a_run_of_other_versions_does_not_judge(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, BUG)
    env = environments.replays(ledger.bugs[0], NEWEST)[0]
    target = runs_dir(tmp_path / "out", env, "default")
    target.mkdir(parents=True)
    lost = cell("fx-disk-upstream", F, (FailureClass.MISSING_TENSOR,))
    _run("5.14.1", lost).write(target / "results.json")  # mislabelled: 5.14.1 in the 5.13.1 slot
    assert verdicts.read_runs(tmp_path / "out", ledger) == {}
    _run("5.13.1", lost).write(target / "results.json")
    assert list(verdicts.read_runs(tmp_path / "out", ledger)) == [f"{env.key}/default"]


def test_environments_are_shared_named_by_what_differs_and_installed_oldest_first(tmp_path: Path) -> None:
    body = (
        BUG
        + BUG.replace("transformers#1", "transformers#2").replace('"5.13.1"', '"5.0.0"')
        + """
[[bug]]
id = "accelerate#3"
class = "hooks"
package = "accelerate"
affected = "1.13.0"
fixed = "1.15.0"
pins = { transformers = "5.15.1" }
cells = ["fx-disk-upstream"]
expect = ["values"]
"""
    )
    ledger = _ledger(tmp_path, body)
    keys = [e.key for e in environments.needed(ledger)]
    assert keys == [
        "transformers-5.0.0",
        "transformers-5.13.1",
        "transformers-5.15.1",
        "transformers-5.15.1+accelerate-1.13.0",
    ]
    assert [b.id for b in environments.bugs_in(ledger, environments.by_key(ledger, "transformers-5.15.1"))] == [
        "transformers#1",
        "transformers#2",
        "accelerate#3",  # its fixed release is the newest accelerate: the plain 5.15.1 environment
    ]
    with pytest.raises(entries.LedgerError, match=re.escape("no ledger environment 'transformers-4.0.0'")):
        environments.by_key(ledger, "transformers-4.0.0")


def test_constraints_take_the_nearest_older_measured_companions(tmp_path: Path) -> None:
    (tmp_path / "transformers-5.13.1.txt").write_text("# c\naccelerate==1.15.0\nhuggingface_hub==1.33.0\n")
    (tmp_path / "transformers-5.24.0.txt").write_text("huggingface_hub==2.4.0\n")
    env = environments.Environment("5.14.0", (("accelerate", "1.13.0"),))
    text = environments.constraints(env, NEWEST, tmp_path)
    lines = text.splitlines()
    assert "huggingface_hub==1.33.0" in lines and "huggingface_hub==2.4.0" not in lines
    assert "accelerate==1.13.0" in lines and "accelerate==1.15.0" not in lines
    assert "transformers==5.14.0" in lines and "compressed-tensors==0.20.0" in lines
    with pytest.raises(entries.LedgerError, match=re.escape("no companion pins at or below transformers 5.0.0")):
        environments.constraints(environments.Environment("5.0.0"), NEWEST, tmp_path)


def test_the_report_has_the_fields_ci_reads(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, BUG)
    judged = [_verdict(ledger, {})]
    report.write(judged, tmp_path)
    doc = json.loads((tmp_path / "ledger.json").read_text())
    assert set(doc["entries"][0]) >= {"id", "class", "gpu", "affected", "fixed", "cells", "verdict", "evidence"}
    assert doc["totals"]["not-caught"] == 1 and doc["cpu_caught"] == 0
    assert "| 0 | transformers#1 | buffers skipped |" in (tmp_path / "ledger.md").read_text()


def test_entries_with_options_are_judged_on_their_own_run(tmp_path: Path) -> None:
    """A memory budget applies to the cells of the entry that sets it: its run is another group of the environment."""
    budgeted = BUG.replace("transformers#1", "transformers#2") + 'options = { max_extra_rss = "2x-largest-tensor" }\n'
    ledger = _ledger(tmp_path, BUG + budgeted)
    plain, budget = ledger.bugs
    assert (plain.group, budget.group) == ("default", "max_extra_rss=2x-largest-tensor")
    fixed = _run("5.15.1", cell("fx-disk-upstream", P))
    over = _run("5.13.1", cell("fx-disk-upstream", F, (FailureClass.MEMORY_BUDGET,)))
    runs = {"transformers-5.13.1/max_extra_rss=2x-largest-tensor": over, "transformers-5.15.1/default": fixed}
    runs["transformers-5.15.1/max_extra_rss=2x-largest-tensor"] = fixed
    assert verdicts.judge(budget, runs, NEWEST).verdict is Verdict.NOT_CAUGHT  # it expects missing-tensor
    assert "not replayed" in verdicts.judge(plain, runs, NEWEST).evidence[0]  # the budgeted run is not its run
