"""Standalone repro (wrong names): a LLaVA checkpoint in the Hub layout loads, but save_pretrained does not give it
back in that layout: the language model is saved under `model.language_model.model.*`, the vision tower and the
projector under the model's own `model.vision_tower.*` / `model.multi_modal_projector.*` (transformers#45358, with
#45357).

Hub LLaVA checkpoints (llava-hf/llava-1.5-7b-hf) name their tensors `language_model.model.*`,
`language_model.lm_head.weight`, `vision_tower.vision_model.*` and `multi_modal_projector.*`; the model holds them as
`model.language_model.*`, `lm_head.weight`, `model.vision_tower.*` and `model.multi_modal_projector.*`. #44627
miscopied the llava mapping (shared by llava_next, video_llava, fuyu, mllama, paligemma, gemma3 and others): 5.5.0
has only the unanchored renames `language_model.model -> language_model` and `language_model.lm_head -> lm_head`.
The load still places every tensor (the base-model prefix `model.` is added), but the save only reverts those
renames: `model.language_model.*` comes out as `model.language_model.model.*` and nothing takes the vision tower or
the projector back out of `model.` ("most would load correctly, but would not resave the same format"). Bad on
5.5.0; fixed in 5.6.2 (anchored `^language_model.model -> model.language_model`, `^vision_tower -> model.vision_tower`,
`^multi_modal_projector -> model.multi_modal_projector`). The ledger's cells also see the vision tower dropped on
load: their fixtures (built by 5.24.0) name it `vision_tower.*` without the Hub's `vision_model.`, a layout 5.5.0's
CLIPVisionModel cannot hold.

Needs only torch, transformers, safetensors; the tiny checkpoint is written here with safetensors under the Hub names
(the model's own names, mapped explicitly), not by the release under test. Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageTextToText, LlavaConfig, LlavaForConditionalGeneration

# the model's own names -> the Hub checkpoint's names (llava-hf/llava-1.5-7b-hf)
TO_HUB = [
    ("model.language_model.", "language_model.model."),
    ("lm_head.", "language_model.lm_head."),
    ("model.vision_tower.vision_model.", "vision_tower.vision_model."),  # 5.5.0's CLIPVisionModel
    ("model.vision_tower.", "vision_tower.vision_model."),  # 5.6.0 on: CLIPVisionModel without its vision_model prefix
    ("model.multi_modal_projector.", "multi_modal_projector."),
]


def hub_name(name: str) -> str:
    for model_prefix, hub_prefix in TO_HUB:
        if name.startswith(model_prefix):
            return hub_prefix + name[len(model_prefix) :]
    raise ValueError(f"no Hub name for {name}")


config = LlavaConfig(
    vision_config={
        "model_type": "clip_vision_model",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 16,
        "patch_size": 8,
        "projection_dim": 32,
    },
    text_config={
        "model_type": "llama",
        "vocab_size": 128,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "tie_word_embeddings": False,
    },
    image_token_index=127,
    tie_word_embeddings=False,
)
torch.manual_seed(0)
with torch.no_grad():
    model = LlavaForConditionalGeneration(config)
    ckpt_state = {hub_name(k): v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
del model
with tempfile.TemporaryDirectory() as tmp:
    ckpt, out = Path(tmp, "ckpt"), Path(tmp, "out")
    config.save_pretrained(ckpt)
    save_file(ckpt_state, ckpt / "model.safetensors", metadata={"format": "pt"})
    AutoModelForImageTextToText.from_pretrained(ckpt, dtype=torch.bfloat16).save_pretrained(out)
    saved = {k: v for f in out.glob("*.safetensors") for k, v in load_file(f).items()}
missing = sorted(set(ckpt_state) - set(saved))
extra = sorted(set(saved) - set(ckpt_state))
# a saved name with one `model.` too many: the loaded tensor under the model's own name (or a doubled prefix)
loaded = [k for k in extra if k.startswith("model.") and torch.equal(saved[k], ckpt_state.get(k[6:], saved[k] + 1))]
changed = sorted(k for k in set(ckpt_state) & set(saved) if not torch.equal(ckpt_state[k], saved[k]))
print(f"checkpoint: {len(ckpt_state)} tensors, e.g. {sorted(ckpt_state)[:1] + sorted(ckpt_state)[-1:]}")
print(f"{len(missing)} checkpoint names not in the save, e.g. {missing[:1] + missing[-1:]}")
print(f"{len(extra)} saved names not in the checkpoint, e.g. {extra[:1] + extra[-1:]}")
print(f"  {len(loaded)} of them are a checkpoint name prefixed with `model.`, holding the checkpoint's values")
print(f"{len(changed)} tensors saved under the checkpoint's name with other values (not loaded), e.g. {changed[:2]}")
sys.exit(1 if missing or extra or changed else 0)
