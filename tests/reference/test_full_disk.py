"""A disk that fills up mid-save, at every cut point: the target holds the old checkpoint or the new one, never a
mix, and the error says in one line that the disk is full (or the file too large).

Two disks: RLIMIT_FSIZE (any file past N bytes fails with EFBIG; SIGXFSZ ignored, as a process that handles it
would; runs anywhere) at each file's boundaries and inside the largest, and, where `mount` works (root, not in most
CI containers), a tmpfs of N pages holding the earlier save, where the save's total bytes run out (ENOSPC).
"""

from __future__ import annotations

import hashlib
import resource
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

from offload_conformance.fixtures import by_name, generate
from offload_conformance.harness.plan.modes import by_name as mode
from offload_conformance.harness.tools.damage.child import in_child
from offload_conformance.reference_impl import save_pretrained

SHARDS = "24KB"
PAGE = 4096
FULL = ("No space left on device", "File too large")


def _digest(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))}


def _saved(model: Any, target: Path, before: Callable[[], None]) -> dict[str, str]:
    """Save in a forked child after `before()` (which limits the disk); its error, if any."""

    def run() -> dict[str, str]:
        before()
        try:
            save_pretrained(model, target, max_shard_size=SHARDS)
        except Exception as e:
            return {"error": type(e).__name__, "message": str(e)}
        return {"error": ""}

    return in_child(run, timeout=120)


def _fsize(limit: int) -> Callable[[], None]:
    def before() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process at the limit
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return before


@pytest.fixture(scope="module")
def saves(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, Path]:
    """The offloaded model, an earlier save of another shape (one file, and a file of the user's) and the new save."""
    from transformers import AutoModelForCausalLM

    tmp = tmp_path_factory.mktemp("full-disk")
    spec = by_name("qwen3_moe")
    placement = mode("disk-full+offload_buffers")
    model = AutoModelForCausalLM.from_pretrained(
        generate(spec), dtype=torch.bfloat16, **placement.load_kwargs(None, tmp / "offload")
    )  # type: ignore[arg-type]
    old = tmp / "old"
    AutoModelForCausalLM.from_pretrained(generate(spec), dtype=torch.bfloat16).save_pretrained(old)
    (old / "tokenizer.json").write_text("{}")
    new = tmp / "new"
    shutil.copytree(old, new)
    save_pretrained(model, new, max_shard_size=SHARDS)
    return model, old, new


def _state(target: Path, old: Path, new: Path) -> str:
    found = _digest(target)
    return "old" if found == _digest(old) else "new" if found == _digest(new) else "mix"


def _cut_points(new: Path) -> list[int]:
    sizes = sorted({p.stat().st_size for p in new.iterdir()})
    points = {0, 1, 4095, 4096, max(sizes) // 2, max(sizes) * 2}
    points |= {s + d for s in sizes for d in (-1, 0)} - {-1}
    return sorted(points)


def test_file_size_limit_at_every_file_boundary(saves: tuple[Any, Path, Path], tmp_path: Path) -> None:
    model, old, new = saves
    seen = {"old": 0, "new": 0}
    for limit in _cut_points(new):
        target = tmp_path / f"at-{limit}"
        shutil.copytree(old, target)
        result = _saved(model, target, _fsize(limit))
        state = _state(target, old, new)
        assert state != "mix", f"cut at {limit} bytes a file: the target is neither the old save nor the new one"
        seen[state] += 1
        if result["error"]:
            assert state == "old", (limit, result)
            message = result["message"]
            assert "\n" not in message and any(f in message for f in FULL), (limit, result)
        else:
            assert state == "new", (limit, result)
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], f"cut at {limit}: staging left behind"
    assert seen["old"] > 5 and seen["new"] >= 1, seen  # the cuts really fell inside the save, and past it


@contextmanager
def _tmpfs(where: Path, size: int) -> Iterator[Path]:
    where.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]
    if subprocess.run(mount, capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_a_full_tmpfs_at_every_page(saves: tuple[Any, Path, Path], tmp_path: Path) -> None:
    model, old, new = saves
    pages = lambda d: sum(-(-p.stat().st_size // PAGE) for p in d.iterdir())  # noqa: E731
    # The old save, then every page the new save needs beside it (it is staged whole before the swap), sampled.
    start, total = pages(old) + 1, pages(old) + pages(new) + 2
    seen = {"old": 0, "new": 0}
    for n in sorted({*range(start, total + 1, 4), total - 1, total, total + 4}):
        with _tmpfs(tmp_path / f"disk-{n}", n * PAGE) as disk:
            target = disk / "target"
            shutil.copytree(old, target)
            result = _saved(model, target, lambda: None)
            state = _state(target, old, new)
            assert state != "mix", f"disk of {n} pages: the target is neither the old save nor the new one"
            seen[state] += 1
            if result["error"]:
                assert state == "old" and "\n" not in result["message"], (n, result)
                assert FULL[0] in result["message"], (n, result)
            assert [p.name for p in disk.iterdir()] == ["target"], f"disk of {n} pages: staging left behind"
    assert seen["old"] > 5 and seen["new"] >= 1, seen
