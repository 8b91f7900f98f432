"""A built wheel, installed in a fresh venv, works away from this repository: the CLI runs a cell with
the known failures shipped inside the wheel, and the pytest plugin runs cells, from another folder.

The fresh venv gets the wheel alone (--no-deps); its dependencies (torch, transformers, ...) come from
this test's environment through a .pth line, which puts their folder on sys.path without running that
folder's own .pth files, so the editable install of this checkout stays invisible."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from offload_conformance.harness.results import RunResult

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp / "dist").glob("offload_conformance-*.whl")
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True)
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "deps-from-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir


def _run(fresh: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{fresh / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_the_installed_package_is_the_wheel(fresh: Path, tmp_path: Path) -> None:
    code = "import offload_conformance.harness as h, offload_conformance.fixtures as f; print(h.__file__, f.__file__)"
    done = _run(fresh, tmp_path, str(fresh / "bin" / "python"), "-c", code)
    assert done.returncode == 0, done.stderr
    assert all(path.startswith(str(fresh)) for path in done.stdout.split()), done.stdout


def test_the_cli_runs_a_cell_with_the_shipped_known_failures(fresh: Path, tmp_path: Path) -> None:
    args = ["--fixture", "qwen3_moe", "--mode", "disk-full", "--max-shard-size", "default", "--out", "out"]
    done = _run(fresh, tmp_path, "offload-conformance", "run", "--xfails", "auto", *args)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "no known-failures file" not in done.stderr  # the file shipped inside the wheel was found
    result = RunResult.read(tmp_path / "out" / "results.json")
    assert [c.outcome for c in result.cells] == ["pass", "pass"]


def test_the_pytest_plugin_runs_cells_from_another_folder(fresh: Path, tmp_path: Path) -> None:
    done = _run(
        fresh,
        tmp_path,
        str(fresh / "bin" / "python"),
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--offload-impl=reference",
        "--offload-fixture=mixtral",
        "--offload-mode=experts-on-disk",
        "--offload-max-shard-size=default",
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "1 passed" in done.stdout
