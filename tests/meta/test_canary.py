"""The canary: drift.md / drift.json from runs judged by an older release's known failures, and the workflow
that runs `nox -s canary` every day."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import yaml

from offload_conformance.harness.cli import main
from offload_conformance.harness.plan import known_failures as kf
from offload_conformance.harness.report import drift
from offload_conformance.harness.results import RunResult
from tests.meta.documents import BASE

ROOT = Path(__file__).resolve().parents[2]


def _older(text: str) -> kf.KnownFailures:
    """A file of 5.24.0 applied to 5.99."""
    return kf.KnownFailures("x", kf.parse(text, "x").entries, listed_for="5.24.0", installed="5.99")


def _judged() -> RunResult:
    # fx-part fails unlisted (new); fx-full is listed and passes (fixed); fx-acc is listed and fails (known).
    return _older("fx-acc-*  # crash\nfx-full-*  # was broken\n").apply(BASE)


def test_pins_are_read_from_a_constraints_file(tmp_path: Path) -> None:
    pins = tmp_path / "ci.txt"
    pins.write_text("# pins\ntorch==2.13.0\ntransformers==5.24.0  # newest\nhuggingface-hub==2.4.0\nnumpy==2.4.6\n")
    assert drift.pins(pins) == {"torch": "2.13.0", "transformers": "5.24.0", "huggingface_hub": "2.4.0"}
    assert drift.pins(ROOT / "constraints" / "ci.txt").keys() >= {"transformers", "accelerate", "safetensors"}


def test_drift_lists_new_and_fixed_cells_by_cause_with_the_versions_on_both_sides(tmp_path: Path) -> None:
    found = drift.drift([_judged()], {"transformers": "5.24.0"})
    assert [(g.cause, g.cells) for g in found.new] == [("differs: index", ("fx-part-upstream",))]
    assert [(g.cause, g.cells) for g in found.fixed] == [("was broken", ("fx-full-upstream",))]
    assert found.versions["pinned"]["transformers"] == "5.24.0" and found.versions["newest"]["transformers"] == "5.14.1"
    assert found.known_failures_of == "5.24.0" and not found.ok
    drift.write(found, tmp_path)
    saved = json.loads((tmp_path / "drift.json").read_text())
    assert saved["new"][0]["cells"] == ["fx-part-upstream"] and saved["fixed"][0]["cells"] == ["fx-full-upstream"]
    assert saved["versions"]["pinned"]["transformers"] == "5.24.0" and saved["ok"] is False
    text = (tmp_path / "drift.md").read_text()
    assert "**1 new** failures, 1 fixed" in text and "| transformers | 5.24.0 | 5.14.1 |" in text


def test_the_drift_command_fails_only_on_new_failures(tmp_path: Path) -> None:
    judged = _judged()
    judged.write(tmp_path / "results.json")
    assert main(["drift", str(tmp_path / "results.json"), "--out", str(tmp_path / "out")]) == 1
    assert (tmp_path / "out" / "drift.json").exists()
    clean = _older("fx-*  # all\n").apply(BASE)
    clean.write(tmp_path / "clean.json")
    assert main(["drift", str(tmp_path / "clean.json"), "--out", str(tmp_path / "out2")]) == 0
    assert main(["drift", str(tmp_path / "clean.json"), "--pinned", str(tmp_path / "none.txt")]) == 2


def test_the_workflow_runs_the_canary_session_daily() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "canary.yml").read_text())
    assert workflow[True]["schedule"][0]["cron"]  # `on:` reads as True in YAML 1.1
    runs = [step["run"] for step in workflow["jobs"]["canary"]["steps"] if "run" in step]
    assert "nox -s canary" in runs
    sessions = {n.name for n in ast.parse((ROOT / "noxfile.py").read_text()).body if isinstance(n, ast.FunctionDef)}
    assert "canary" in sessions
