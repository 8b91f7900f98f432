"""Repro: a ShieldGemma2 config built with `AutoModelForImageTextToText` (which maps model_type `shieldgemma2` to
`Gemma3ForConditionalGeneration`) does not survive its own save/load round trip: `save_pretrained` writes the
language model as `model.language_model.model.*`, and `from_pretrained` of that same directory reports those keys
UNEXPECTED (as `model.model.language_model.model.*`) and every language-model weight (and the tied `lm_head`)
MISSING, i.e. freshly initialised. `ShieldGemma2ForImageClassification` (AutoModelForImageClassification) round-trips.

Cause (transformers 5.24.0): conversion_mapping.py registers `"shieldgemma2": [PrefixChange(prefix_to_add="model",
model_prefix="model")]`, written for `ShieldGemma2ForImageClassification`, whose `model` attribute wraps a
Gemma3ForConditionalGeneration. `get_model_conversion_mapping` looks it up by `config.model_type`, so it is applied
to a Gemma3ForConditionalGeneration built directly under model_type `shieldgemma2` as well, ahead of the Gemma3
(`LlavaModel`) rename `^language_model.model -> language_model`. On save the reversed Gemma3 rename writes
`model.language_model.model.*`; on load the prefix change runs first and turns those into
`model.model.language_model.model.*`, which the Gemma3 rename then no longer matches.

Needs torch, transformers, safetensors; the tiny checkpoint is written here. Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification, AutoModelForImageTextToText, ShieldGemma2Config

config = ShieldGemma2Config(
    text_config={
        "vocab_size": 128,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "layer_types": ["sliding_attention", "full_attention"],
    },
    vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2},
    mm_tokens_per_image=4,
    boi_token_index=127,
    eoi_token_index=126,
    image_token_index=125,
)
torch.manual_seed(0)
bug = False
with tempfile.TemporaryDirectory() as tmp:
    for auto_cls in (AutoModelForImageTextToText, AutoModelForImageClassification):
        ckpt = Path(tmp, auto_cls.__name__)
        model = auto_cls.from_config(config)
        model.save_pretrained(ckpt)
        saved = sorted(k for k in load_file(ckpt / "model.safetensors") if "embed_tokens" in k)
        _, info = auto_cls.from_pretrained(ckpt, output_loading_info=True)
        missing, unexpected = sorted(info["missing_keys"]), sorted(info["unexpected_keys"])
        print(
            f"{auto_cls.__name__} -> {type(model).__name__} (model_type {model.config.model_type}): saved {saved};"
            f" reloading the save: {len(missing)} MISSING (e.g. {missing[:2]}),"
            f" {len(unexpected)} UNEXPECTED (e.g. {unexpected[:1]})"
        )
        bug |= bool(missing or unexpected)
sys.exit(1 if bug else 0)
