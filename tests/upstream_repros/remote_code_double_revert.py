"""Standalone repro: save_pretrained of a remote-code model whose model_type has a conversion mapping reverts that
mapping on names that were never converted: nomic_bert's `encoder.layers.N.*` is saved as `encoder.encoder.layers.N.*`
(transformers#46650).

A trust_remote_code model (nomic-embed, jina-embeddings-v3) holds the checkpoint's own names: its code never ran the
conversion engine. save_pretrained still looked its model_type up and reverted the mapping; the unanchored
WeightRenaming("encoder.layers", "layers") reverted prefixes `encoder.` once more. Here the remote code is a class
defined in this script (what transformers counts as custom code), with nomic_bert's config and the checkpoint names.
Bad on 5.12.1; 5.13.0 skips the mappings of custom code (passes on 5.13.1).

Needs torch, transformers. Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from transformers import NomicBertConfig, PreTrainedModel

os.environ["HF_HUB_OFFLINE"] = "1"
NAMES = ["emb_ln.weight", "encoder.layers.0.attn.out_proj.weight", "encoder.layers.0.mlp.fc11.weight"]


class NomicBertModel(PreTrainedModel):  # a remote-code model: its own modules, the checkpoint's names
    config_class = NomicBertConfig
    base_model_prefix = ""

    def __init__(self, config: NomicBertConfig) -> None:
        super().__init__(config)
        self.emb_ln = nn.LayerNorm(4, elementwise_affine=True, bias=False)
        layer = nn.Module()
        layer.attn, layer.mlp = nn.Module(), nn.Module()
        layer.attn.out_proj, layer.mlp.fc11 = nn.Linear(4, 4, bias=False), nn.Linear(4, 8, bias=False)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList([layer])
        self.post_init()


model = NomicBertModel(NomicBertConfig(hidden_size=4, num_hidden_layers=1, num_attention_heads=1)).to(torch.bfloat16)
assert sorted(model.state_dict()) == NAMES
with tempfile.TemporaryDirectory() as tmp:
    model.save_pretrained(tmp)
    saved = sorted(k for f in Path(tmp).glob("*.safetensors") for k in load_file(f))
print(f"in memory: {NAMES}\nsaved:     {saved}")
sys.exit(0 if saved == NAMES else 1)
