"""Gate, merge, xfails and report formats, on synthetic result documents."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness import gate, junit, summary, xfails
from harness.cli import main
from harness.merge import MergeError, merge
from harness.results import CellResult, RunResult


def _cell(cell_id: str, outcome: str, classes: tuple[str, ...] = (), **kw: object) -> CellResult:
    fixture, mode, impl = cell_id.split("-", 2)
    return CellResult(
        cell_id=cell_id,
        fixture=fixture,
        mode=mode,
        impl=impl,
        save_options={},
        outcome=outcome,
        grade="bytes" if outcome == "pass" else None,
        classes=classes,
        detail=f"{outcome} detail",
        seconds=0.1,
        **kw,
    )  # type: ignore[arg-type]


def _doc(version: str, *cells: CellResult, digest: str = "d1") -> RunResult:
    return RunResult("bytes", {"transformers": version}, cells, fixtures={"fx": digest})


BASE = _doc(
    "5.14.1",
    _cell("fx-full-upstream", "pass"),
    _cell("fx-part-upstream", "fail", ("index",)),
    _cell("fx-acc-upstream", "error"),
    _cell("fx-old-upstream", "pass"),
)
CAND = _doc(
    "5.15.1",
    _cell("fx-full-upstream", "fail", ("shard-layout",)),
    _cell("fx-part-upstream", "pass"),
    _cell("fx-acc-upstream", "error"),
    _cell("fx-new-upstream", "pass"),
)


def test_gate_sorts_changes() -> None:
    v = gate.gate(BASE, CAND)
    assert [c.cell_id for c in v.regressions] == ["fx-full-upstream"]
    assert v.regressions[0].candidate == "fail shard-layout"
    assert [c.cell_id for c in v.fixes] == ["fx-part-upstream"]
    assert [c.cell_id for c in v.unchanged_failures] == ["fx-acc-upstream"]
    assert (v.only_in_base, v.only_in_candidate) == (("fx-old-upstream",), ("fx-new-upstream",))
    assert not v.passed
    assert gate.gate(BASE, BASE).passed


def test_gate_cli_writes_files_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    BASE.write(tmp_path / "base.json")
    CAND.write(tmp_path / "cand.json")
    assert main(["gate", str(tmp_path / "base.json"), str(tmp_path / "cand.json"), "--out", str(tmp_path)]) == 1
    assert json.loads((tmp_path / "gate.json").read_text())["verdict"] == "fail"
    md = (tmp_path / "gate.md").read_text()
    assert "FAIL: 1 regression(s)" in md and "`fx-full-upstream`" in md and "transformers 5.15.1" in md
    assert main(["gate", str(tmp_path / "cand.json"), str(tmp_path / "cand.json"), "--out", str(tmp_path)]) == 0
    assert main(["gate", str(tmp_path / "missing.json"), str(tmp_path / "cand.json")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_mismatched_fixture_sets_are_refused(tmp_path: Path) -> None:
    other = dataclasses.replace(CAND, fixtures={"fx": "d2"})
    with pytest.raises(MergeError, match="mismatched fixture sets: fx"):
        gate.gate(BASE, other)
    with pytest.raises(MergeError, match="mismatched fixture sets"):
        merge([("a", BASE), ("b", other)])


def test_merge_keeps_versions_apart_and_refuses_duplicates() -> None:
    merged = merge([("a", BASE), ("b", CAND)])
    assert len(merged.cells) == 8
    assert {c.transformers for c in merged.cells} == {"transformers 5.14.1", "transformers 5.15.1"}
    with pytest.raises(MergeError, match="is in both a and b"):
        merge([("a", BASE), ("b", BASE)])


def test_xfails_mark_known_and_stale(tmp_path: Path) -> None:
    f = tmp_path / "xfails.txt"
    f.write_text("# known\nfx-acc-*  # accelerate offload crash\nfx-full-upstream  # stale now\n")
    marked = xfails.apply(BASE, xfails.read(f))
    by = marked.key()
    assert by["fx-acc-upstream"].xfail == "accelerate offload crash" and not by["fx-acc-upstream"].counts_as_failure
    assert by["fx-full-upstream"].stale_xfail
    assert not marked.ok  # fx-part still fails unlisted
    f.write_text("fx-acc-*\n")
    with pytest.raises(xfails.XfailsError, match="has no '# reason'"):
        xfails.read(f)


def test_junit_one_case_per_cell_with_classes() -> None:
    root = junit.junit(CAND).getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == 4
    failure = next(c for c in cases if c.get("name") == "fx-full-upstream").find("failure")
    assert failure is not None and failure.get("message", "").startswith("shard-layout")
    assert next(c for c in cases if c.get("name") == "fx-acc-upstream").find("error") is not None
    ET.tostring(root)  # serializable


def test_markdown_and_html_matrix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    step = tmp_path / "step.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    summary.write_all(CAND, tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert "| fx | ✗ shard-layout | ✓ | ! | ✓ |" in md
    assert "--require bytes" in md and step.read_text().strip() == md.strip()
    page = (tmp_path / "report.html").read_text()
    assert page.count("<td style=") == 4 and "fx-full-upstream" in page


def test_history_table_rows_by_mode_columns_by_release() -> None:
    from harness import history

    text = history.table(merge([("a", BASE), ("b", CAND)]))
    lines = text.splitlines()
    assert lines[0] == "| impl | mode | save options | 5.14.1 | 5.15.1 |"
    full = next(line for line in lines if "| full |" in line)
    assert full == "| upstream | full | default shards | ✓ 1 | ✗ 1/1: shard-layout |"
    acc = next(line for line in lines if "| acc |" in line)
    assert "✗ 1/1: error detail" in acc


def test_known_failures_file_for_the_pinned_release_parses() -> None:
    from importlib.metadata import version

    path = xfails.KNOWN / "transformers-5.24.0.txt"
    entries = xfails.read(path)
    assert entries and all(reason for _, reason in entries)
    if version("transformers") == "5.24.0":
        assert xfails.for_installed() == path
