"""Standalone repro (silent corruption under a damaged offload storage): save_pretrained on a disk-offloaded model
writes a tensor in whatever shape the offloaded file's header now says, with no error.

The offload index of a model loaded with `device_map` points into the checkpoint it was loaded from (or into the
offload folder's own files). Here that file's header is rewritten after the load so that one tensor has another
shape of the same size ([64, 128] -> [128, 64]: a valid safetensors file). The model still holds a [64, 128]
parameter, but the save onloads the file's [128, 64] tensor and writes it as is. Found by `offload-conformance fuzz
--damage` (kind header-shape; docs/reliability.md); the reference refuses it ("... holds BF16[128, 64], the model
holds torch.bfloat16[64, 128]").

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
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from offload_conformance.fixtures import by_name, generate

NAME = "model.layers.0.mlp.down_proj.weight"
os.environ["HF_HUB_OFFLINE"] = "1"
with tempfile.TemporaryDirectory() as tmp:
    src = Path(tmp) / "src"
    shutil.copytree(generate(by_name("llama")), src)
    model = AutoModelForCausalLM.from_pretrained(
        src, dtype=torch.bfloat16, device_map="auto", max_memory={"cpu": 1}, offload_folder=os.path.join(tmp, "off")
    )
    held = list(model.state_dict()[NAME].shape)
    data = (src / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header[NAME]["shape"] = header[NAME]["shape"][::-1]  # same size, other shape: still a valid file
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    (src / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])
    try:
        model.save_pretrained(Path(tmp) / "out")
    except Exception as e:
        print(f"refused: {type(e).__name__}: {str(e).splitlines()[0]}")
        sys.exit(0)
    with safe_open(Path(tmp) / "out" / "model.safetensors", "pt") as f:
        saved = f.get_slice(NAME).get_shape()
print(f"{NAME}: the model holds {held}, the save wrote {saved} with no error")
sys.exit(1 if saved != held else 0)
