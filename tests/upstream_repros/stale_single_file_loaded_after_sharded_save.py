"""Standalone repro: a sharded save into a directory that holds an earlier single-file save leaves the old
`model.safetensors` there, and `from_pretrained` loads that stale file instead of the new shards.

save_pretrained's cleanup deletes only names matching `(.*?)-\\d{5}-of-\\d{5}`; the single file of an earlier save
survives beside the new index, and transformers looks for `model.safetensors` before the index. A user who re-runs
a script (e.g. quantizes again, or changes max_shard_size) into the same output directory gets the old weights back.
Found by the harness's `over-earlier-single` save context. Needs only torch, transformers. Exit 1 while present.
"""

import os
import sys
import tempfile

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

os.environ["HF_HUB_OFFLINE"] = "1"
config = LlamaConfig(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=256,
)
with tempfile.TemporaryDirectory() as out:
    torch.manual_seed(0)
    old = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    old.save_pretrained(out)  # single file
    torch.manual_seed(1)
    new = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    new.save_pretrained(out, max_shard_size="24KB")  # sharded, into the same directory
    loaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.bfloat16)
    name = "model.embed_tokens.weight"
    got = loaded.state_dict()[name]
    is_new, is_old = torch.equal(got, new.state_dict()[name]), torch.equal(got, old.state_dict()[name])
    files = sorted(f for f in os.listdir(out) if f.startswith("model"))
    print(f"files after the sharded save: {files}; from_pretrained gives the new weights: {is_new}, the old: {is_old}")
    sys.exit(0 if is_new else 1)
