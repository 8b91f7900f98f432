"""Standalone repro (silent corruption under a damaged offload storage): save_pretrained on a disk-offloaded model
writes a float tensor whose offloaded file now says it holds int16 as those integers cast to bfloat16, with no error.

The offload index of a model loaded with `device_map` points into the checkpoint it was loaded from, with the
model's dtype in each entry; accelerate casts what it reads to that dtype (needed where a checkpoint stores a float
in another width). Here the file's header is rewritten after the load so that one bf16 tensor's dtype says I16 (same
element size, bytes unchanged: a valid file). The save reads int16 values, casts them to bf16 and writes them. Found
by `offload-conformance fuzz --damage` (kind header-dtype; docs/reliability.md); the reference refuses it ("... holds
I16[64, 128], the model holds torch.bfloat16[64, 128]").

Needs torch, transformers, accelerate; the tiny checkpoint is written by this repo's fixtures package (and copied:
the fixture cache is never damaged). Exit 1 while the bug is present.
"""

import json
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from offload_conformance.fixtures import by_name, generate

NAME = "model.layers.0.mlp.down_proj.weight"
os.environ["HF_HUB_OFFLINE"] = "1"
with tempfile.TemporaryDirectory() as tmp:
    src = Path(tmp) / "src"
    shutil.copytree(generate(by_name("llama")), src)
    expected = load_file(src / "model.safetensors")[NAME]
    model = AutoModelForCausalLM.from_pretrained(
        src, dtype=torch.bfloat16, device_map="auto", max_memory={"cpu": 1}, offload_folder=os.path.join(tmp, "off")
    )
    data = (src / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header[NAME]["dtype"] = "I16"  # same element size: still a valid file, the bytes untouched
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    (src / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])
    try:
        model.save_pretrained(Path(tmp) / "out")
    except Exception as e:
        print(f"refused: {type(e).__name__}: {str(e).splitlines()[0]}")
        sys.exit(0)
    saved = load_file(Path(tmp) / "out" / "model.safetensors")[NAME]
wrong = int((saved != expected).sum())
print(f"{NAME}: {wrong} of {expected.numel()} values differ from the model's ({saved.dtype}), with no error")
sys.exit(1 if wrong else 0)
