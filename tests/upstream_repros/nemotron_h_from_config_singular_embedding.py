"""Standalone repro: a Nemotron-H model built with from_config saves `backbone.embedding.weight`, a name no published
checkpoint has (every one stores `backbone.embeddings.weight`) (transformers#48075).

nemotron_h's conversion mapping had WeightRenaming("embedding.weight", "embeddings.weight"). from_pretrained records
only the rules that matched a checkpoint key, and the Hub's plural key never matches it, so a loaded model saves the
plural name. A model that was not loaded (from_config, then trained) has no `_weight_conversions`: save_pretrained
reverts the whole mapping and writes the singular name. Bad on 5.15.1; the rule is gone in 5.16.0.

Needs torch, transformers; the tiny config comes from this repo's fixtures package. Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from offload_conformance.fixtures.generated.shrink import tiny_config

os.environ["HF_HUB_OFFLINE"] = "1"
config, _ = tiny_config("nemotron_h")
model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
with tempfile.TemporaryDirectory() as tmp:
    model.save_pretrained(tmp)
    names = {k for f in Path(tmp).glob("*.safetensors") for k in load_file(f)}
embedding = sorted(n for n in names if "embedding" in n)
print(f"from_config save: {embedding}")
sys.exit(0 if embedding == ["backbone.embeddings.weight"] else 1)
