"""Standalone repro: DeepSeek-V3's multi-token-prediction (MTP) layer is dropped on load, so no save of a
loaded model has it (load then save_pretrained loses weights the Hub checkpoint ships).

The Hub checkpoint holds the MTP module after the last decoder layer (`model.layers.61.*` of the 61-layer
model: its own embed_tokens, enorm, hnorm, eh_proj, a decoder layer and shared_head). transformers builds no
module for it and lists `model\\.layers\\.61.*` in `_keys_to_ignore_on_load_unexpected`, so at full size the
loss is silent; in this 2-layer model the layer is `model.layers.2.*` and the load only warns about unexpected
keys. Either way the saved checkpoint lacks it. Needs only torch, transformers. Exit 1 while the bug is present.
"""

import os
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, DeepseekV3Config

os.environ["HF_HUB_OFFLINE"] = "1"
config = DeepseekV3Config(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=128,
    moe_intermediate_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    n_routed_experts=4,
    n_shared_experts=1,
    num_experts_per_tok=2,
    first_k_dense_replace=1,
    n_group=1,
    topk_group=1,
    q_lora_rank=32,
    kv_lora_rank=16,
    qk_rope_head_dim=16,
    qk_nope_head_dim=16,
    v_head_dim=16,
    num_nextn_predict_layers=1,
    max_position_embeddings=256,
)
torch.manual_seed(0)
with tempfile.TemporaryDirectory() as tmp:
    src, out = os.path.join(tmp, "src"), os.path.join(tmp, "out")
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(src)
    # The MTP layer as the Hub checkpoint has it, after the last decoder layer: a few of its tensors suffice.
    state = load_file(os.path.join(src, "model.safetensors"))
    mtp = f"model.layers.{config.num_hidden_layers}"
    h = config.hidden_size
    state |= {
        f"{mtp}.embed_tokens.weight": torch.randn(config.vocab_size, h).to(torch.bfloat16),
        f"{mtp}.enorm.weight": torch.ones(h, dtype=torch.bfloat16),
        f"{mtp}.hnorm.weight": torch.ones(h, dtype=torch.bfloat16),
        f"{mtp}.eh_proj.weight": torch.randn(h, 2 * h).to(torch.bfloat16),
        f"{mtp}.shared_head.norm.weight": torch.ones(h, dtype=torch.bfloat16),
        f"{mtp}.shared_head.head.weight": torch.randn(config.vocab_size, h).to(torch.bfloat16),
    }
    save_file(state, os.path.join(src, "model.safetensors"), metadata={"format": "pt"})
    AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16).save_pretrained(out)
    saved = load_file(os.path.join(out, "model.safetensors"))
    lost = sorted(k for k in state if k.startswith(f"{mtp}.") and k not in saved)
    print(f"{len(lost)} MTP tensors of the source checkpoint are not in the save, e.g. {lost[:2]}")
    sys.exit(1 if lost else 0)
