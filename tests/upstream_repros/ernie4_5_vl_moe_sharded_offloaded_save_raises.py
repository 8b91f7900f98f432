"""Repro: an offloaded save of ERNIE-4.5-VL-MoE with a small `max_shard_size` raises, where the in-memory save of the
same model with the same `max_shard_size` writes its checkpoint.

ERNIE-4.5-VL-MoE checkpoints hold one expert list per layer; transformers splits it on load into text and vision
experts (one-to-many), so the save joins them again (many-to-one). Offloaded, save_pretrained reverts the
conversions shard by shard after onloading each shard (transformers#47018); when the in-memory shard plan puts the
parts of one joined tensor in different shards, it stops with `RuntimeError: We could not revert some weight
conversions because of offlading ...`, the guard #47018 added for this case. No checkpoint is lost (nothing is
written), but a model that saves in memory cannot be saved offloaded at that shard size.

Needs torch, transformers, accelerate; the tiny checkpoint is built by this repo's fixtures package
(generated from transformers' own ERNIE-4.5-VL-MoE config class, written by its in-memory save).
Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
import transformers

from offload_conformance.fixtures import generate
from offload_conformance.fixtures.manifest import read_manifest
from offload_conformance.fixtures.sets import named

SHARD = "24KB"
with tempfile.TemporaryDirectory() as tmp:
    (spec,) = named(("gen_ernie4_5_vl_moe",))
    src = generate(spec, root=Path(tmp))
    auto = getattr(transformers, read_manifest(src)["spec"]["auto_class"])
    auto.from_pretrained(src, dtype=torch.bfloat16).save_pretrained(Path(tmp, "in-memory"), max_shard_size=SHARD)
    print(f"in-memory save, max_shard_size={SHARD}: ok")
    model = auto.from_pretrained(
        src, dtype=torch.bfloat16, device_map="auto", max_memory={"cpu": 1}, offload_folder=os.path.join(tmp, "off")
    )
    try:
        model.save_pretrained(Path(tmp, "offloaded"), max_shard_size=SHARD)
    except RuntimeError as e:
        print(f"disk-offloaded save, max_shard_size={SHARD}: RuntimeError: {str(e).splitlines()[0][:200]}")
        sys.exit(1)
    print(f"disk-offloaded save, max_shard_size={SHARD}: ok")
    sys.exit(0)
