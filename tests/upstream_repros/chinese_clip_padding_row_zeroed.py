"""Repro: loading a ChineseCLIP checkpoint in memory zeroes the padding-token row of the text model's
`word_embeddings`: the values the checkpoint holds for that row are overwritten with zeros. A disk-offloaded load
(`device_map="auto", max_memory={"cpu": 1}, offload_folder=...`) keeps them, so the in-memory and the offloaded
`save_pretrained` of the same checkpoint differ.

Cause (transformers 5.24.0): `ChineseCLIPPreTrainedModel._init_weights` (models/chinese_clip/modeling_chinese_clip.py)
runs on load for every module (`_initialize_missing_keys` -> `initialize_weights`) and, for
`ChineseCLIPTextEmbeddings`, calls `init.zeros_(embedding.weight[embedding.padding_idx])`. The guard in
`initialization.zeros_` checks `_is_hf_initialized` on the tensor it is given, but `weight[padding_idx]` is a fresh
indexed view that does not carry the flag set on the loaded `weight`, so the loaded row is zeroed in place. Offloaded,
the weight is a meta tensor at that point and the zeroing is a no-op.

Needs torch, transformers, accelerate, safetensors; the tiny checkpoint is written here (every weight nonzero).
Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from safetensors.torch import load_file
from transformers import ChineseCLIPConfig, ChineseCLIPModel

ROW = "text_model.embeddings.word_embeddings.weight"
config = ChineseCLIPConfig(
    text_config={
        "vocab_size": 128,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "pad_token_id": 0,
    },
    vision_config={
        "hidden_size": 32,
        "intermediate_size": 64,
        "projection_dim": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 16,
    },
    projection_dim=32,
)
torch.manual_seed(0)
with tempfile.TemporaryDirectory() as tmp:
    ckpt = Path(tmp, "ckpt")
    model = ChineseCLIPModel(config)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.rand_like(p) + 0.5)  # nonzero everywhere, the padding row included
    model.save_pretrained(ckpt)
    pad = config.text_config.pad_token_id
    saved = load_file(ckpt / "model.safetensors")[ROW][pad]

    ChineseCLIPModel.from_pretrained(ckpt).save_pretrained(Path(tmp, "in_memory"))
    ChineseCLIPModel.from_pretrained(
        ckpt, device_map="auto", max_memory={"cpu": 1}, offload_folder=os.path.join(tmp, "offload")
    ).save_pretrained(Path(tmp, "offloaded"))
    in_memory = load_file(Path(tmp, "in_memory", "model.safetensors"))[ROW][pad]
    offloaded = load_file(Path(tmp, "offloaded", "model.safetensors"))[ROW][pad]

    def head(row: torch.Tensor) -> list[float]:
        return [round(x, 4) for x in row[:4].tolist()]

    print(f"{ROW}[{pad}] (padding row) in the checkpoint:    {head(saved)} ...")
    print(f"{ROW}[{pad}] after the in-memory load + save: {head(in_memory)} ...")
    print(f"{ROW}[{pad}] after the offloaded load + save: {head(offloaded)} ...")
    bug = not torch.equal(in_memory, saved)
    print(
        "in-memory load overwrote the padding row with zeros" if bug else "in-memory load kept the padding row",
        f"(offloaded load {'kept' if torch.equal(offloaded, saved) else 'changed'} it)",
    )
    sys.exit(1 if bug else 0)
