"""The mutation analysis's own machinery, on a module of our own (meta-test, like array-api-tests' meta_tests/).

A tiny IUT package is mutated instead of transformers: it wraps upstream's save, with one line whose mutants the
cells must kill (the shard size it passes on), one branch no cell takes (a hub upload), and one statement whose
removal changes nothing (listed equivalent). The analysis runs through the real CLI, overlay, workers and cells.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

TOY = """\
def save(model, save_directory, **options):
    kwargs = dict(options)
    copied = dict(options)
    if kwargs.get("push_to_hub"):
        kwargs["commit_message"] = "never taken: no cell uploads"
    shard = kwargs.pop("max_shard_size", "50GB")
    model.save_pretrained(save_directory, max_shard_size=shard, **kwargs)
"""
KILLABLE = "toy_offload_save.save:7:remove-stmt:0"  # the save itself removed: nothing is written
UNREACHED_LINE = 5
EQUIVALENT = "toy_offload_save.save:3:remove-stmt:0"  # `copied` is never read


def _analyse(root: Path, out: str, *more: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root / "site"), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "offload_conformance.harness", "mutants", "--target", "toy_offload_save.save"]
    command += ["--impl", "toy_offload_save:save", "--fixture", "qwen3_moe", "--mode", "disk-full"]
    command += ["--equivalents", str(root / "equivalent.txt"), "--out", str(root / out), *more]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((root / out / "mutants.json").read_text())


@pytest.fixture(scope="module")
def analysis(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp("mutants")
    site = root / "site" / "toy_offload_save"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text(TOY)
    (root / "equivalent.txt").write_text(f"{EQUIVALENT}  # `copied` is never read\n")
    doc = _analyse(root, "out")
    assert (site / "__init__.py").read_text() == TOY, "the installed package was edited"
    return doc, root


def _by_id(doc: dict) -> dict[str, dict]:
    return {m["id"]: m for m in doc["mutants"]}


def test_a_mutant_that_changes_the_save_is_killed_with_the_cell_and_classes(analysis: tuple[dict, Path]) -> None:
    mutant = _by_id(analysis[0])[KILLABLE]
    assert mutant["status"] == "killed"
    assert mutant["cells"] and all("disk-full" in c for c in mutant["cells"])
    (change,) = mutant["changes"]  # the first changed verdict stops the run (after a rerun confirms it)
    assert change["before"] == "pass" and change["after"].startswith("fail")
    assert "file-set" in mutant["classes"], "a killed mutant names the classes of the changed verdict"


def test_an_equivalent_mutant_is_not_counted(analysis: tuple[dict, Path]) -> None:
    doc = analysis[0]
    assert _by_id(doc)[EQUIVALENT]["status"] == "equivalent"
    killed = sum(m["status"] == "killed" for m in doc["mutants"])
    survived = sum(m["status"] == "survived" for m in doc["mutants"])
    assert doc["score"] == pytest.approx(killed / (killed + survived))
    assert doc["counts"]["equivalent"] == 1


def test_a_line_no_cell_executes_is_unreached_with_its_condition(analysis: tuple[dict, Path]) -> None:
    doc = analysis[0]
    on_line = [m for m in doc["mutants"] if m["line"] == UNREACHED_LINE]
    assert on_line and all(m["status"] == "unreached" for m in on_line)
    (line,) = [u for u in doc["unreached"] if u["line"] == UNREACHED_LINE]
    assert line["mutants"] == len(on_line)
    assert "push_to_hub" in line["reason"]


def test_mutants_on_lines_every_cell_runs_are_never_unreached(analysis: tuple[dict, Path]) -> None:
    reached = [m for m in analysis[0]["mutants"] if m["line"] in (2, 6, 7)]
    assert reached and not [m["id"] for m in reached if m["status"] == "unreached"]


def test_a_second_analysis_takes_the_reach_run_from_the_cache_and_judges_alike(analysis: tuple[dict, Path]) -> None:
    doc, root = analysis
    assert not doc["timing"]["reach_cached"], "the first analysis of a new package text ran its reach run"
    again = _analyse(root, "again", "--mutant", KILLABLE)
    assert again["timing"]["reach_cached"]
    (mutant,) = again["mutants"]
    assert (mutant["status"], mutant["changes"]) == ("killed", _by_id(doc)[KILLABLE]["changes"])


def test_a_mutant_patched_into_the_imported_package_is_judged_as_one_imported_from_the_overlay(
    analysis: tuple[dict, Path],
) -> None:
    """hot.py: by default each mutant of the toy's body is patched into a server that imported the toy unmutated.
    `--compare-patching` runs each both ways, patched and importing the mutated overlay (as `--reimport` does):
    the imported runs give every mutant the status the patched analysis gave it."""
    doc, root = analysis
    assert doc["timing"]["patched"] == doc["timing"]["mutants_run"] > 0
    compared = _analyse(root, "compared", "--compare-patching")
    rows = json.loads((root / "compared" / "patching.json").read_text())
    ran = {m["id"]: m for m in doc["mutants"] if m["status"] not in ("unreached", "equivalent")}
    assert sorted(r["mutant"] for r in rows) == sorted(ran)
    for row in rows:
        assert row["imported_verdict"]["status"] == ran[row["mutant"]]["status"], row
        assert row["imported_verdict"]["changes"] == [[c["cell"], c["after"]] for c in ran[row["mutant"]]["changes"]]

    def verdicts(d: dict) -> list[tuple]:
        return [(m["id"], m["status"], m["cells"], m["classes"], m["changes"]) for m in d["mutants"]]

    assert verdicts(compared) == verdicts(doc)
