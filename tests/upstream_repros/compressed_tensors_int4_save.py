"""Repro: save_pretrained of a compressed-tensors pack-quantized int4 MoE raises
`ValueError: Undefined Operation encountered!` (core_model_loading.py) even fully in memory;
offloaded, the same error surfaces as "could not revert some weight conversions because of
offlading ... different shard files", which misleads.

Needs torch, transformers, compressed-tensors; the tiny checkpoint is written by this repo's
fixtures package (hand-packed int4, bit-identical to compressed-tensors' own compressor).
Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from offload_conformance.fixtures import by_name, generate

os.environ["HF_HUB_OFFLINE"] = "1"
with tempfile.TemporaryDirectory() as tmp:
    src = generate(by_name("qwen3_moe_int4"), root=Path(tmp))
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16)
    try:
        model.save_pretrained(os.path.join(tmp, "out"))
    except Exception as e:
        print(f"save_pretrained raised {type(e).__name__}: {e}")
        sys.exit(1)
    print("saved without error")
