"""kill -9 the reference save at every step: the target is always the old save or the new one."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from offload_conformance.fixtures import by_name, generate
from offload_conformance.harness.judge.compare import compare
from offload_conformance.harness.plan.modes import by_name as mode
from offload_conformance.reference_impl import atomic, save_pretrained
from offload_conformance.reference_impl.writer import StreamingWriter
from tests.reference.test_reliability import _digest

SHARDS = "24KB"


def _kill_at(k: int, model: Any, target: str) -> None:
    """Save, and SIGKILL this process at its k-th write, shard close or directory step."""
    count = [0]

    def counted(fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            if count[0] == k:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kwargs)

        return wrapper

    StreamingWriter.write = counted(StreamingWriter.write)  # type: ignore[method-assign]
    StreamingWriter.write_parts = counted(StreamingWriter.write_parts)  # type: ignore[method-assign]
    StreamingWriter.close = counted(StreamingWriter.close)  # type: ignore[method-assign]
    atomic._exchange = counted(atomic._exchange)
    atomic.fsync_dir = counted(atomic.fsync_dir)
    atomic.shutil.rmtree = counted(atomic.shutil.rmtree)  # type: ignore[attr-defined]
    save_pretrained(model, target, max_shard_size=SHARDS)
    os._exit(0)


@pytest.mark.e2e
def test_kill_at_every_step_leaves_old_or_new(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    spec = by_name("qwen3_moe")
    offload = tmp_path / "offload"
    disk_full = mode("disk-full+offload_buffers")
    model = AutoModelForCausalLM.from_pretrained(
        generate(spec), dtype=torch.bfloat16, **disk_full.load_kwargs(None, offload)
    )  # type: ignore[arg-type]
    old = tmp_path / "old"
    AutoModelForCausalLM.from_pretrained(generate(spec), dtype=torch.bfloat16).save_pretrained(old)  # 1 file
    (old / "tokenizer.json").write_text("{}")
    new = tmp_path / "new"
    shutil.copytree(old, new)
    save_pretrained(model, new, max_shard_size=SHARDS)  # the complete new save: 10 shards + index
    offload_before = _digest(offload)

    ctx = multiprocessing.get_context("fork")
    verdicts: dict[str, int] = {"old": 0, "new": 0}
    k = 0
    while True:
        k += 1
        target = tmp_path / f"target-{k}"
        shutil.copytree(old, target)
        proc = ctx.Process(target=_kill_at, args=(k, model, str(target)))
        proc.start()
        proc.join(60)
        killed = proc.exitcode == -signal.SIGKILL
        state = (
            "old" if compare(old, target).grade == "bytes" else "new" if compare(new, target).grade == "bytes" else None
        )
        assert state is not None, f"kill point {k}: target is neither the old nor the new save"
        assert (target / "tokenizer.json").read_text() == "{}"
        assert _digest(offload) == offload_before
        verdicts[state] += 1
        if killed:  # the next save into the same target clears what the killed one left
            save_pretrained(model, target, max_shard_size=SHARDS)
            assert compare(new, target).grade == "bytes"
            assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".target-{k}.")]
        shutil.rmtree(target)
        if not killed:  # k is past the last step: the save completed
            assert state == "new"
            break
    kill_points = k - 1
    print(f"kill points: {kill_points}, target old: {verdicts['old']}, new: {verdicts['new']}")
    assert kill_points >= 50, kill_points
    assert verdicts["old"] > 0 and verdicts["new"] > 0
