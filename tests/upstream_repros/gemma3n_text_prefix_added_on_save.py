"""Standalone repro (wrong names): a text-only Gemma3n checkpoint (Gemma3nForCausalLM, tensors `model.*`) loads, but
save_pretrained writes its text model under `model.language_model.*`, names the checkpoint does not have
(transformers#45567, with #45448 / #46650).

5.5.0 maps gemma3n_text with WeightRenaming("^model.language_model", "model"), so that the text part of the
multimodal Hub checkpoints (google/gemma-3n-E4B: `model.language_model.*`) loads into Gemma3nForCausalLM. The save
reverts that renaming on every key whether or not the load used it, so a checkpoint that held `model.*` (the text
model's own layout) comes back as `model.language_model.*`; the unanchored reverse even rewrites the `model` inside
`per_layer_model_projection` (saved as `model.language_model.per_layer_model.language_model_projection.weight`).
Bad on 5.5.0; fixed in 5.6.2 (no gemma3n_text renaming there; later releases map gemma3n_text with a PrefixChange,
reverted only when the load used it, as #45567 did for such mappings).

Needs only torch, transformers, safetensors; the tiny checkpoint is written here with safetensors under the model's
own names (lm_head.weight left out: tied to the embeddings), not by the release under test. Exit 1 while the bug is
present.
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, Gemma3nForCausalLM, Gemma3nTextConfig

config = Gemma3nTextConfig(
    vocab_size=128,
    vocab_size_per_layer_input=128,
    hidden_size=32,
    hidden_size_per_layer_input=32,
    intermediate_size=[64] * 4,
    num_hidden_layers=4,
    num_attention_heads=2,
    num_key_value_heads=2,
    head_dim=16,
    layer_types=["sliding_attention", "full_attention"] * 2,
    activation_sparsity_pattern=[0.95, 0.95, 0.0, 0.0],
    num_kv_shared_layers=2,
    laurel_rank=8,
    sliding_window=16,
    tie_word_embeddings=True,
)
torch.manual_seed(0)
with torch.no_grad():
    state = Gemma3nForCausalLM(config).state_dict()
    ckpt_state = {k: v.to(torch.bfloat16).contiguous() for k, v in state.items() if k != "lm_head.weight"}
with tempfile.TemporaryDirectory() as tmp:
    ckpt, out = Path(tmp, "ckpt"), Path(tmp, "out")
    config.save_pretrained(ckpt)
    save_file(ckpt_state, ckpt / "model.safetensors", metadata={"format": "pt"})
    AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.bfloat16).save_pretrained(out)
    saved = {k: v for f in out.glob("*.safetensors") for k, v in load_file(f).items()}
missing = sorted(set(ckpt_state) - set(saved))
extra = sorted(set(saved) - set(ckpt_state))
prefixed = [k for k in extra if k.startswith("model.language_model.")]
same = sum(torch.equal(saved[k], ckpt_state.get(k.replace(".language_model", ""), saved[k] + 1)) for k in prefixed)
changed = sorted(k for k in set(ckpt_state) & set(saved) if not torch.equal(ckpt_state[k], saved[k]))
print(f"checkpoint: {len(ckpt_state)} tensors, e.g. {sorted(ckpt_state)[:1]}")
print(f"{len(missing)} checkpoint names not in the save, e.g. {missing[:2]}")
print(f"{len(extra)} saved names not in the checkpoint, e.g. {extra[:2]}")
print(f"  {len(prefixed)} of them under model.language_model., {same} holding the checkpoint's values")
print(f"{len(changed)} tensors saved under the checkpoint's name with other values, e.g. {changed[:2]}")
sys.exit(1 if missing or extra or changed else 0)
