"""The GitHub Action's shell step, run here as the action runs it: action.yml's `run:` script with the
action's inputs as environment variables (GITHUB_ACTION_PATH at this repository, a workspace of its
own), on a tiny cell set. `uses:` steps (setup-python, upload-artifact) are GitHub's, not ours."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from offload_conformance.harness.results import RunResult

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
TINY = {"fixtures": "deepseek_v3", "modes": "disk-full+offload_buffers", "impl": "reference"}


def _run_steps(inputs: dict[str, str], workspace: Path) -> tuple[int, str]:
    """Every `run:` step of the action, with `${{ inputs.X }}` resolved from `inputs` over the defaults."""
    values = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()} | inputs
    summary = workspace / "step-summary.md"
    code, output = 0, ""
    for step in ACTION["runs"]["steps"]:
        if "run" not in step:
            continue
        env = dict(os.environ, GITHUB_ACTION_PATH=str(ROOT), GITHUB_STEP_SUMMARY=str(summary))
        for key, expr in step.get("env", {}).items():
            env[key] = re.sub(r"\$\{\{\s*inputs\.(\w+)\s*\}\}", lambda m: values[m.group(1)], expr)
        done = subprocess.run(
            ["bash", "-c", step["run"]], cwd=workspace, env=env, capture_output=True, text=True, timeout=1800
        )
        code, output = done.returncode, output + done.stdout + done.stderr
        if code:
            break
    return code, output


def test_every_input_the_step_reads_is_declared() -> None:
    step = next(s for s in ACTION["runs"]["steps"] if "run" in s)
    used = set(re.findall(r"inputs\.(\w+)", str(step["env"])))
    assert used <= set(ACTION["inputs"]) and {"transformers", "base", "impl", "shard", "require"} <= used


def test_the_action_gates_a_shard_and_writes_the_job_summary(tmp_path: Path) -> None:
    from importlib.metadata import version

    installed = version("transformers")
    inputs = TINY | {"transformers": installed, "base": installed, "shard": "1/2", "out": "reports"}
    code, output = _run_steps(inputs, tmp_path)
    assert code == 0, output[-3000:]
    out = tmp_path / "reports"
    assert (out / "gate.md").exists() and (out / "gate.json").exists()
    candidate = RunResult.read(out / "candidate" / "results.json")
    assert candidate.shard is not None and (candidate.shard.index, candidate.shard.count) == (1, 2)
    assert candidate.cells and all(c.outcome == "pass" for c in candidate.cells)
    summary = (tmp_path / "step-summary.md").read_text()
    assert summary.startswith("## offload-conformance gate: PASS") and "matrix" not in summary.lower()
