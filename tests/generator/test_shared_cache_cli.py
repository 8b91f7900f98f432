"""Two `offload-conformance run` processes sharing one fixture cache, generating the same fixture at once, and a run
killed while generating: each later run verifies the cache and runs on a correct fixture, none reads a half-written
one (test_shared_cache.py does the same with bare generate() calls).

The interleaving is forced, not hoped for: a sitecustomize on PYTHONPATH turns one run's fixture writes into a slow
disk that opens a checkpoint file only once the other run has published the fixture, writes half of it, and holds
there until the other run has finished (or it is killed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from offload_conformance.fixtures import by_name
from offload_conformance.fixtures.generate import fixture_path
from offload_conformance.fixtures.manifest import MANIFEST, verify

FIXTURE = "qwen3_moe"
SLOW_DISK = """
import os, time
from pathlib import Path
import safetensors.torch as st

original = st.save_file


def _wait_for(path, timeout=120.0):
    deadline = time.monotonic() + timeout
    while path and not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def save_file(tensors, filename, metadata=None):
    if not str(filename).startswith(os.environ["OFFLOAD_CONFORMANCE_CACHE"]):  # only the fixture cache's disk is slow
        return original(tensors, filename, metadata=metadata)
    data = st.save(tensors, metadata=metadata)
    Path(os.environ["SLOW_MARK"] + ".started").touch()
    _wait_for(os.environ.get("SLOW_AFTER"))
    with open(filename, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        Path(os.environ["SLOW_MARK"]).touch()
        _wait_for(os.environ.get("SLOW_HOLD"))
        f.write(data[len(data) // 2 :])


st.save_file = save_file
"""


def _run(cache: Path, out: Path, slow: dict[str, Path] | None = None) -> subprocess.Popen[str]:
    """`offload-conformance run` of one cell; with `slow`, its fixture writes go through SLOW_DISK."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OFFLOAD_CONFORMANCE_CACHE": str(cache)}
    if slow is not None:
        shim = out.parent / "slow-disk"
        shim.mkdir(exist_ok=True)
        (shim / "sitecustomize.py").write_text(SLOW_DISK)
        env |= {f"SLOW_{k}": str(v) for k, v in slow.items()}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shim), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "offload_conformance.harness", "run", "--fixture", FIXTURE, "--mode", "disk-full"]
    command += ["--impl", "reference", "--cell", f"{FIXTURE}-disk-full-reference", "--jobs", "1", "--out", str(out)]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def _outcomes(out: Path) -> list[str]:
    return [c["outcome"] for c in json.loads((out / "results.json").read_text())["cells"]]


def _wait_for(path: Path, run: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert run.poll() is None and time.monotonic() < deadline, f"the run ended before {path.name} appeared"
        time.sleep(0.02)


def test_two_runs_generating_the_same_fixture_at_once_both_pass(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    target = fixture_path(by_name(FIXTURE), cache)
    # The slow run starts generating first, then the fast one, which finds no fixture either. The slow run opens its
    # checkpoint file only once the fast run has published the fixture, and holds it half-written until the fast run
    # has its results. Without an atomic publish the slow run truncates and half-writes the very file the fast run
    # is loading for its baseline and cell.
    half = tmp_path / "half-written"
    slow = _run(
        cache, tmp_path / "slow", {"AFTER": target / MANIFEST, "HOLD": tmp_path / "fast" / "results.json", "MARK": half}
    )
    _wait_for(Path(f"{half}.started"), slow)
    fast = _run(cache, tmp_path / "fast")
    logs = [p.communicate(timeout=300)[0] for p in (fast, slow)]
    assert half.exists(), logs  # the slow write did happen while the fast run ran
    assert [fast.returncode, slow.returncode] == [0, 0], logs
    assert _outcomes(tmp_path / "fast") == ["pass"] and _outcomes(tmp_path / "slow") == ["pass"], logs
    verify(target)
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # the loser's staging copy is gone


def test_a_run_killed_while_generating_then_a_run_that_verifies_and_passes(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    target = fixture_path(by_name(FIXTURE), cache)
    half = tmp_path / "half-written"
    killed = _run(cache, tmp_path / "killed", {"HOLD": tmp_path / "never", "MARK": half})
    _wait_for(half, killed)
    os.killpg(killed.pid, signal.SIGKILL)  # with its checkpoint half-written
    killed.wait()
    assert not (target / MANIFEST).exists()  # nothing under the fixture's own name says it is complete
    after = _run(cache, tmp_path / "after")
    log = after.communicate(timeout=300)[0]
    assert after.returncode == 0 and _outcomes(tmp_path / "after") == ["pass"], log
    verify(target)
