"""Standalone repro: a model with tied embeddings cannot be loaded wholly disk-offloaded; from_pretrained raises
`ValueError: You are trying to offload the whole model to the disk. Please use the disk_offload function
instead.` (accelerate#4083).

With device_map "auto" and no room in RAM (max_memory {"cpu": 1}) every module goes to disk, hf_device_map is
{"": "disk"}, and transformers hands that map to accelerate's dispatch_model, which refused a map whose only
device is "disk" (big_modeling: "use the disk_offload function instead"). A tied-embedding Qwen3 shows it; the
transformers half (tied lm_head missing from the disk index, transformers#46749) needs this load to work first.
Bad on accelerate 1.14.0; fixed in 1.15.0 ("Support full disk offloading"), both with transformers 5.24.0:
the model loads and its save gives back the in-memory save.

Needs only torch, transformers, accelerate, safetensors; the tiny bf16 checkpoint (Qwen3 has no renaming; the
tied lm_head is not written) is written here with safetensors. Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, Qwen3Config, Qwen3ForCausalLM


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v for f in folder.glob("*.safetensors") for k, v in load_file(f).items()}


config = Qwen3Config(
    vocab_size=128,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=16,
    tie_word_embeddings=True,
)
torch.manual_seed(0)
with torch.no_grad():
    state = {k: v.to(torch.bfloat16).contiguous() for k, v in Qwen3ForCausalLM(config).state_dict().items()}
state.pop("lm_head.weight")  # tied to model.embed_tokens.weight: not in a Hub checkpoint
with tempfile.TemporaryDirectory() as tmp:
    ckpt, ref, out = Path(tmp, "ckpt"), Path(tmp, "ref"), Path(tmp, "out")
    config.save_pretrained(ckpt)
    save_file(state, ckpt / "model.safetensors", metadata={"format": "pt"})
    AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.bfloat16).save_pretrained(ref)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            ckpt,
            dtype=torch.bfloat16,
            device_map="auto",
            max_memory={"cpu": 1},
            offload_folder=os.path.join(tmp, "off"),
        )
    except Exception as e:
        print(f"from_pretrained (device_map='auto', max_memory={{'cpu': 1}}) raised {type(e).__name__}: {e}")
        sys.exit(1)
    print(f"hf_device_map: {model.hf_device_map}")
    model.save_pretrained(out)
    expected, saved = tensors(ref), tensors(out)
wrong = sorted(k for k in expected.keys() | saved.keys() if k not in saved or k not in expected)
wrong += sorted(k for k in expected.keys() & saved.keys() if not torch.equal(saved[k], expected[k]))
print(f"saved {len(saved)} tensors; {len(wrong)} missing, extra or different from the in-memory save, e.g. {wrong[:2]}")
sys.exit(1 if wrong else 0)
