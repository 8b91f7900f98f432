"""Standalone repro (a full disk mid-save loses the earlier checkpoint): save_pretrained of a disk-offloaded model
into a directory holding an earlier save, on a disk that fills up part way, leaves neither the old checkpoint nor
the new one.

The save writes straight into the target, and removes the earlier save's weight file it does not overwrite: a
disk full (here RLIMIT_FSIZE, every file limited to N bytes, SIGXFSZ ignored so the write fails with EFBIG) at
most cut points leaves some new shards, a truncated one, no index or the old single file gone. The save raises,
so it is not silent, but what the directory held is lost. Measured with `tests/reference/test_full_disk.py`'s cut
points (docs/reliability.md); the reference stages the save beside the target and swaps it in whole.

Needs torch, transformers, accelerate; the tiny checkpoint is written by this repo's fixtures package. Exit 1 while
the bug is present.
"""

import hashlib
import os
import resource
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from offload_conformance.fixtures import by_name, generate


def digest(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def save_limited(model, target: Path, limit: int) -> str:
    """Save in a forked child with every file limited to `limit` bytes; its error's first line, or ''."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        try:
            model.save_pretrained(target, max_shard_size="24KB")
            message = ""
        except Exception as e:
            message = f"{type(e).__name__}: {e}".splitlines()[0]
        os.write(w, message.encode()[:500])
        os._exit(0)
    os.close(w)
    message = os.read(r, 500).decode()
    os.close(r)
    os.waitpid(pid, 0)
    return message


os.environ["HF_HUB_OFFLINE"] = "1"
src = generate(by_name("qwen3_moe"))
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    model = AutoModelForCausalLM.from_pretrained(
        src, dtype=torch.bfloat16, device_map="auto", max_memory={"cpu": 1}, offload_folder=str(tmp / "off")
    )
    old = tmp / "old"
    AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16).save_pretrained(old)  # one file
    (old / "tokenizer.json").write_text("{}")
    new = tmp / "new"
    shutil.copytree(old, new)
    model.save_pretrained(new, max_shard_size="24KB")  # the complete save over it
    sizes = sorted({p.stat().st_size for p in new.iterdir()})
    states: dict[str, list[int]] = {"old": [], "new": [], "mix": []}
    example = ""
    # tests/reference/test_full_disk.py's cut points: each file's size and one byte less, and a few more
    for limit in sorted(
        {0, 1, 4095, 4096, max(sizes) // 2, max(sizes) * 2, *(s + d for s in sizes for d in (-1, 0))} - {-1}
    ):
        target = tmp / f"at-{limit}"
        shutil.copytree(old, target)
        message = save_limited(model, target, limit)
        found = digest(target)
        state = "old" if found == digest(old) else "new" if found == digest(new) else "mix"
        states[state].append(limit)
        if state == "mix" and not example:
            changed = sorted(n for n in found if digest(old).get(n) != found[n])
            example = f"cut at {limit} bytes: {changed} changed or new, {message or 'no error'}"
print({k: len(v) for k, v in states.items()}, "e.g.", example)
sys.exit(1 if states["mix"] else 0)
