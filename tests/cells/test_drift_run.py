"""Drift, run: a transformers release with no known-failures file of its own (a copy of the installed one whose
metadata says 5.99.0, first on the path) is judged by the nearest older release's file. Unchanged it exits 0 with
nothing new; with one injected regression in its offloaded save it exits 1 naming exactly that regression's cells."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from offload_conformance.harness.results import RunResult
from offload_conformance.harness.tools.mutants.overlay import Overlay

pytestmark = pytest.mark.e2e
CELLS = ["--fixture", "llama", "--mode", "in-memory", "--mode", "disk-full", "--impl", "upstream"]
LOADED = "tensor = load_offloaded_parameter(model_to_save, tensor_name)"
# The regression: every offloaded tensor written as zeros (an offloaded-save bug the in-memory save does not share).
ZEROED = "tensor = torch.zeros_like(load_offloaded_parameter(model_to_save, tensor_name))"


def _release(root: Path, version: str, regression: bool) -> Path:
    """A copy of the installed transformers that says it is `version` (its own dist-info), maybe with the bug."""
    overlay = Overlay(root, ("transformers",)).build()
    info = root / f"transformers-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: transformers\nVersion: {version}\n")
    if regression:
        module = overlay.path("transformers/modeling_utils.py")
        text = module.read_text()
        assert text.count(LOADED) == 1, "the offloaded save's load of a meta tensor moved: update the injected bug"
        module.unlink()
        module.write_text(text.replace(LOADED, ZEROED))
    return root


def _run(release: Path, out: Path) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(release), "HF_HUB_OFFLINE": "1"}
    cli = "import sys; from offload_conformance.harness.cli import main; sys.exit(main())"
    command = [sys.executable, "-c", cli, "run", *CELLS, "--xfails", "auto", "--out"]
    done = subprocess.run([*command, str(out)], env=env, capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout + done.stderr


def test_a_new_release_is_judged_by_the_older_file_and_only_a_regression_fails_it(tmp_path: Path) -> None:
    code, output = _run(_release(tmp_path / "clean", "5.99.0", regression=False), tmp_path / "a")
    assert "known failures of 5.25.0 applied to 5.99.0" in output
    assert code == 0, output[-3000:]
    assert "0 new, 0 fixed" in output
    code, output = _run(_release(tmp_path / "broken", "5.99.0", regression=True), tmp_path / "b")
    assert code == 1, output[-3000:]
    result = RunResult.read(tmp_path / "b" / "results.json")
    assert result.drift_from == "5.25.0" and result.environment["transformers"] == "5.99.0"
    new = sorted(c.cell_id for c in result.cells if c.counts_as_failure)
    # its 24KB twin fails too, but 5.25.0 lists it already (shards planned in module order): not new
    assert new == ["llama-disk-full-upstream"], new
    assert "  new: llama-disk-full-upstream: fail meta-or-empty" in output
    assert json.loads((tmp_path / "b" / "results.json").read_text())["drift_from"] == "5.25.0"
