"""Standalone repro (wrong dtype): save_pretrained on a disk-offloaded DeepSeek-V4 writes its float32 tensors
(hyper-connections `hc_*`, `attn_sink`, compressor `ape`, norms) as BF16 (transformers#46167).

DeepSeek-V4 keeps these in float32 whatever the load dtype (`_keep_in_fp32_modules_strict`); #46198 (5.10.1) made
the in-memory save keep them F32. An offloaded save kept writing them BF16 (with offload_buffers also the router's
`gate.bias`): the disk-offload index entry of each tensor took its dtype from the meta model, built in the load
dtype (bf16), and every read for the save cast to it. Bad on 5.23.0 (and 5.18.0); fixed in 5.24.0, whose model
definition builds these parameters float32 (sinks, position_bias, e_score_correction_bias, the hc and norm
modules), so the meta model, and the index, carry the right dtype.

Needs only torch, transformers, accelerate, safetensors; the tiny checkpoint is written here with safetensors,
in the Hub's DeepSeek-V4 naming (the only naming transformers' deepseek_v4 conversion loads), from the installed
release's own parameter names renamed back by the rules below: float32 under `_keep_in_fp32_modules_strict`,
bf16 otherwise. Exit 1 while the bug is present.
"""

import os
import re
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, DeepseekV4Config, DeepseekV4ForCausalLM

config = DeepseekV4Config(  # Hub spelling: per-layer compress ratios 4 (CSA), 128 (HCA), 0 (sliding only)
    vocab_size=128,
    hidden_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=1,
    num_experts_per_tok=2,
    max_position_embeddings=256,
    compress_ratios=[4, 128, 0],
    num_hash_layers=1,
    qk_rope_head_dim=8,
    head_dim=32,
    q_lora_rank=32,
    o_groups=2,
    o_lora_rank=16,
    moe_intermediate_size=32,
    n_routed_experts=4,
    n_shared_experts=1,
    scoring_func="sqrtsoftplus",
    routed_scaling_factor=1.5,
    hc_mult=4,
    hc_sinkhorn_iters=4,
    index_n_heads=4,
    index_head_dim=16,
    index_topk=4,
    sliding_window=16,
    num_nextn_predict_layers=0,
)
# transformers name -> Hub name, in order (the reverse of the release's deepseek_v4 conversion mapping).
TO_HUB = (
    (r"^model\.embed_tokens\.", "embed."),
    (r"^lm_head\.", "head."),
    (r"^model\.norm\.", "norm."),
    (r"^model\.hc_head\.hc_", "hc_head_"),
    (r"^model\.layers\.", "layers."),
    (r"\.input_layernorm\.", ".attn_norm."),
    (r"\.post_attention_layernorm\.", ".ffn_norm."),
    (r"\.(attn|ffn)_hc\.(fn|base|scale)$", r".hc_\1_\2"),
    (r"\.self_attn\.", ".attn."),
    (r"\.mlp\.", ".ffn."),
    (r"\.sinks$", ".attn_sink"),
    (r"\.compressor\.indexer\.(scorer\.)?weights_proj\.", ".indexer.weights_proj."),
    (r"\.compressor\.indexer\.q_b_proj\.", ".indexer.wq_b."),
    (r"\.compressor\.indexer\.", ".indexer.compressor."),
    (r"\.position_bias$", ".ape"),
    (r"\.compressor\.kv_norm\.", ".compressor.norm."),
    (r"\.shared_experts\.gate_proj\.", ".shared_experts.w1."),
    (r"\.shared_experts\.up_proj\.", ".shared_experts.w3."),
    (r"\.shared_experts\.down_proj\.", ".shared_experts.w2."),
    (r"\.q_a_proj\.", ".wq_a."),
    (r"\.attn\.q_b_proj\.", ".attn.wq_b."),
    (r"\.kv_proj\.", ".wkv."),
    (r"\.gate_proj\.", ".wgate."),
    (r"\.o_a_proj\.", ".wo_a."),
    (r"\.o_b_proj\.", ".wo_b."),
    (r"\.q_a_norm\.", ".q_norm."),
    (r"\.gate\.e_score_correction_bias$", ".gate.bias"),
)


def hub_checkpoint(model: DeepseekV4ForCausalLM) -> dict[str, torch.Tensor]:
    strict = set(model._keep_in_fp32_modules_strict)
    out = {}
    for name, value in model.state_dict().items():
        if name.endswith("tid2eid"):  # hash routing: token id -> valid expert ids
            value = torch.randint(0, config.n_routed_experts, value.shape, dtype=value.dtype)
        elif value.is_floating_point():
            value = value.to(torch.float32 if strict & set(name.split(".")) else torch.bfloat16)
        for pattern, repl in TO_HUB:
            name = re.sub(pattern, repl, name)
        if name.endswith(".experts.gate_up_proj"):  # fused [experts, 2 * intermediate, hidden]
            for e, (w1, w3) in enumerate(zip(*value.chunk(2, dim=1), strict=True)):
                out[f"{name.removesuffix('gate_up_proj')}{e}.w1.weight"] = w1.contiguous()
                out[f"{name.removesuffix('gate_up_proj')}{e}.w3.weight"] = w3.contiguous()
        elif name.endswith(".experts.down_proj"):
            for e, w2 in enumerate(value):
                out[f"{name.removesuffix('down_proj')}{e}.w2.weight"] = w2.contiguous()
        else:
            out[name] = value.contiguous()
    return out


def dtypes(folder: Path) -> dict[str, str]:
    out = {}
    for f in folder.glob("*.safetensors"):
        with safe_open(f, "pt") as h:
            out |= {k: h.get_slice(k).get_dtype() for k in h.keys()}  # noqa: SIM118 - safe_open is not a Mapping
    return out


torch.manual_seed(0)
with torch.no_grad():
    state = hub_checkpoint(DeepseekV4ForCausalLM(config))
with tempfile.TemporaryDirectory() as tmp:
    ckpt, ref, out = Path(tmp, "ckpt"), Path(tmp, "ref"), Path(tmp, "out")
    config.save_pretrained(ckpt)
    save_file(state, ckpt / "model.safetensors", metadata={"format": "pt"})
    AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.bfloat16).save_pretrained(ref)
    model = AutoModelForCausalLM.from_pretrained(
        ckpt, dtype=torch.bfloat16, device_map="auto", max_memory={"cpu": 1}, offload_folder=os.path.join(tmp, "off")
    )
    print(f"hf_device_map: {model.hf_device_map}")
    model.save_pretrained(out)
    expected, saved = dtypes(ref), dtypes(out)
print(f"checkpoint: {sum(v.dtype == torch.float32 for v in state.values())} of {len(state)} tensors F32")
print(f"in-memory save: {sum(v == 'F32' for v in expected.values())} of {len(expected)} tensors F32")
bad = sorted(f"{k}: {saved.get(k)}" for k, v in expected.items() if saved.get(k) != v)
print(
    f"disk-offloaded save: {len(bad)} tensors with another dtype than the in-memory save (or missing), e.g. {bad[:3]}"
)
sys.exit(1 if bad or not expected else 0)
