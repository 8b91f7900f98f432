"""Standalone repro (wrong names): save_pretrained of a Qwen3.5 vision-language model writes its keys
under a duplicated `language_model` prefix, with the vision tower under `language_model` too
(transformers#45357, with #45216 / #45256 / #45340).

The Qwen3.5 checkpoint names are `model.language_model.*` and `model.visual.*`. On 5.5.0 the save's
reverse key mapping rewrites them: the text weights come out as
`model.language_model.language_model.language_model.*` and the vision weights as
`model.language_model.visual.*`: names the model does not have. Bad on 5.5.0; fixed in 5.6.2 (the
save names are the checkpoint's names again).

Needs only torch, transformers (a tiny Qwen3.5 built from a config). Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import AutoModelForImageTextToText, Qwen3_5Config

os.environ["HF_HUB_OFFLINE"] = "1"
config = Qwen3_5Config(
    text_config={
        "vocab_size": 128,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "layer_types": ["linear_attention", "full_attention"],
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "linear_key_head_dim": 16,
        "linear_value_head_dim": 16,
        "linear_num_key_heads": 2,
        "linear_num_value_heads": 2,
    },
    vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 32},
    image_token_id=127,
    video_token_id=126,
    vision_start_token_id=125,
    vision_end_token_id=124,
)
torch.manual_seed(0)
with tempfile.TemporaryDirectory() as tmp:
    AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16).save_pretrained(tmp)
    names = set()
    for f in Path(tmp).glob("*.safetensors"):
        with safe_open(f, "pt") as h:
            names |= set(h.keys())
bad = sorted(n for n in names if "language_model.language_model" in n or "language_model.visual" in n)
print(f"{len(bad)} of {len(names)} saved tensors under a mangled prefix, e.g. {bad[:2]}")
sys.exit(1 if bad else 0)
