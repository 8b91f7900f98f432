"""Standalone repro (memory): save_pretrained on a disk-offloaded model gathers a whole shard in RAM
before writing it, so the save's peak memory grows with max_shard_size (default 50GB since 5.0.0),
not with the largest tensor (transformers#42734; llm-compressor#2927 saves with 20GB).

A model entirely offloaded to disk (device_map "auto", max_memory {"cpu": 1}: hf_device_map
{"": "disk"}) is saved with the default shard size: every onloaded tensor of the shard is kept until
the shard is written, so the whole ~30 MiB checkpoint sits in RAM at once. An offloaded save only
needs a tensor or two at a time: the budget here is 2x the largest tensor (4 MiB). Peak RSS is the
kernel's high-water mark, reset right before the save. Seen on 5.15.1 and 5.24.0; still open.

Needs torch, transformers, accelerate; the tiny checkpoint is written by this repo's fixtures package.
Exit 1 while the bug is present.
"""

import os
import re
import sys
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from offload_conformance.fixtures import by_name, generate

os.environ["HF_HUB_OFFLINE"] = "1"


def status_kib(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


src = generate(by_name("qwen3_moe_mid"))
with tempfile.TemporaryDirectory() as tmp:
    model = AutoModelForCausalLM.from_pretrained(
        src, dtype=torch.bfloat16, device_map="auto", max_memory={"cpu": 1}, offload_folder=os.path.join(tmp, "off")
    )
    print(f"hf_device_map: {model.hf_device_map}")
    # The largest tensor of the model (fused experts: 8 x 512 x 512 bf16 = 4 MiB); meta tensors know their size.
    largest = max(t.numel() * t.element_size() for t in model.state_dict().values())
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = status_kib("VmRSS")
    model.save_pretrained(os.path.join(tmp, "out"))
    extra = (status_kib("VmHWM") - before) / 1024
budget = 2 * largest / 2**20
print(f"peak RSS during the save: {extra:.1f} MiB above pre-save; budget 2x largest tensor = {budget:.1f} MiB")
sys.exit(1 if extra > budget else 0)
