"""`ledger plan | run | report` end to end in the installed environment (nox -s ledger loops it over releases)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import transformers

from offload_conformance.harness.cli import main
from offload_conformance.harness.environment import environment
from offload_conformance.harness.ledger.entries import PACKAGES

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parents[2]


def test_replay_in_the_installed_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    installed = environment()
    newest = "\n".join(f'{p} = "{installed[p]}"' for p in PACKAGES)
    ledger = tmp_path / "bugs.toml"
    ledger.write_text(f"""[newest]
{newest}

[[bug]]
id = "compressed-tensors#357"
class = "accelerate's own offload leaves no hf_device_map: transformers saves meta tensors"
affected = "{transformers.__version__}"
fixed = "open"
cells = ["qwen3_moe-accelerate-disk-upstream"]
expect = ["error", "meta-or-empty"]

[[bug]]
id = "example#1"
class = "a bug the reference does not have: must not be reported caught"
affected = "{transformers.__version__}"
fixed = "open"
cells = ["qwen3_moe-disk-full-reference"]
expect = ["missing-tensor"]
""")
    out = tmp_path / "out"
    args = ["--ledger", str(ledger), "--out", str(out)]
    assert main(["ledger", "plan", *args, "--pins", str(ROOT / "constraints")]) == 0
    [env] = json.loads((out / "environments.json").read_text())
    assert env["requirements"] == [f"{p}=={installed[p]}" for p in sorted(PACKAGES)]
    assert main(["ledger", "run", *args, "--env", "transformers-4.0.0"]) == 2  # not an environment of this ledger
    assert main(["ledger", "run", *args, "--env", env["key"], "--jobs", "1"]) == 0
    assert main(["ledger", "report", *args]) == 1  # example#1: not caught, and it does not say why
    doc = {e["id"]: e for e in json.loads((out / "ledger.json").read_text())["entries"]}
    assert doc["compressed-tensors#357"]["verdict"] == "still-open"
    assert doc["example#1"]["verdict"] == "not-caught"
    assert "1 pass" in doc["example#1"]["evidence"][0]
    assert "not caught and not explained: example#1" in capsys.readouterr().err
