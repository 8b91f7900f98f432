"""Gate, merge, xfails and report formats, on synthetic result documents."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from offload_conformance.harness.cli import main
from offload_conformance.harness.judge import gate
from offload_conformance.harness.merge import MergeError, merge
from offload_conformance.harness.outcomes import Outcome, Stage
from offload_conformance.harness.report import history, junit, write_reports
from offload_conformance.harness.results import Failure, RunResult
from tests.meta.documents import BASE, CAND, E, cell, doc


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
    # As a PR comment: regressions, then fixes, then the unchanged failures folded away.
    regressions, fixes, folded = (md.index(s) for s in ("### Regressions", "### Fixes", "<details>"))
    assert regressions < fixes < folded and md.index("`fx-acc-upstream`") > folded
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
    write_reports(CAND, tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert "| fx | ✗ shard-layout | ✓ | ! | ✓ |" in md
    assert "--require bytes" in md and step.read_text().strip() == md.strip()
    page = (tmp_path / "report.html").read_text()
    assert page.count("<td style=") == 4 and "fx-full-upstream" in page


def test_history_table_rows_by_mode_columns_by_release() -> None:
    text = history.table(merge([("a", BASE), ("b", CAND)]))
    lines = text.splitlines()
    assert lines[0] == "| impl | mode | save options | 5.14.1 | 5.15.1 |"
    full = next(line for line in lines if "| full |" in line)
    assert full == "| upstream | full | default shards | ✓ 1 | ✗ 1/1: shard-layout |"
    acc = next(line for line in lines if "| acc |" in line)
    assert "✗ 1/1: save: NotImplementedError" in acc


def test_history_reads_fields_not_the_detail_text() -> None:
    """Rewording a detail message changes nothing; which side failed comes from the fields."""
    crash = Failure(Stage.SAVE, "ValueError", "Undefined Operation encountered!")
    reworded = cell("fx-acc-upstream", E, baseline_failure=crash)
    reworded = dataclasses.replace(reworded, detail="the in-memory save could not be made")
    line = next(row for row in history.table(merge([("a", doc("5.0.0", reworded))])).splitlines() if "acc" in row)
    assert "baseline save: ValueError" in line


def test_results_round_trip_through_json(tmp_path: Path) -> None:
    crash = Failure(Stage.LOAD, "ImportError", "no compressed_tensors", "x.py:1")
    original = doc("5.24.0", *CAND.cells, cell("fx-other-upstream", E, baseline_failure=crash))
    original.write(tmp_path / "results.json")
    again = RunResult.read(tmp_path / "results.json")
    assert again == original
    assert again.cells[0].outcome is Outcome.FAIL and again.cells[-1].baseline_failure == crash
    assert json.loads((tmp_path / "results.json").read_text())["cells"][0]["classes"] == ["shard-layout"]


def test_the_page_embeds_the_matrix_png_it_writes_beside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The picture is drawn once (a second drawing cost the default matrix's run about 16 s): report.html carries
    matrix.png's own bytes, and says the extra is missing where none was drawn."""
    import base64

    from offload_conformance.harness.report import picture

    def png(result: RunResult, path: Path) -> bool:
        path.write_bytes(b"\x89PNG drawn once")
        return True

    monkeypatch.setattr(picture, "png", png)
    write_reports(CAND, tmp_path)
    embedded = (tmp_path / "report.html").read_text().split("data:image/png;base64,")[1].split("'")[0]
    assert base64.b64decode(embedded) == (tmp_path / "matrix.png").read_bytes() == b"\x89PNG drawn once"
    monkeypatch.setattr(picture, "png", lambda result, path: False)
    (tmp_path / "none").mkdir()
    write_reports(CAND, tmp_path / "none")
    assert "needs matplotlib" in (tmp_path / "none" / "report.html").read_text()
