"""One fixture cache shared by runs at the same time, and a run killed while generating: every later run verifies
the cache and uses a correct fixture; none reads a half-written one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from offload_conformance.fixtures import by_name
from offload_conformance.fixtures.generate import fixture_path, generate
from offload_conformance.fixtures.manifest import MANIFEST, verify

GENERATE = (
    "import sys; from pathlib import Path; from offload_conformance.fixtures import by_name, generate; "
    "print(generate(by_name(sys.argv[1]), Path(sys.argv[2])))"
)


def _generating(name: str, root: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", GENERATE, name, str(root)], stdout=subprocess.PIPE, text=True, env=env
    )


def test_two_processes_generating_the_same_fixture_both_get_a_verified_one(tmp_path: Path) -> None:
    procs = [_generating("deepseek_v3", tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    target = fixture_path(by_name("deepseek_v3"), tmp_path)
    assert outs == [str(target)] * 2
    verify(target)  # raises on a file that is not what the manifest says
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # the loser's copy is gone


def test_a_generation_killed_midway_leaves_no_fixture_and_the_next_run_builds_a_correct_one(tmp_path: Path) -> None:
    spec = by_name("deepseek_v4")  # the largest default fixture: time to be killed in the middle
    target = fixture_path(spec, tmp_path)
    proc = _generating(spec.name, tmp_path)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".") for p in target.parent.glob("*")) if target.parent.exists() else True:
        if time.monotonic() > deadline or proc.poll() is not None:
            pytest.skip("generation finished before it could be killed")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (target / MANIFEST).exists()  # nothing under the fixture's own name: only a staging directory
    assert generate(spec, tmp_path) == target
    verify(target)
