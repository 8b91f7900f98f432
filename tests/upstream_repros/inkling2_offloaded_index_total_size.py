"""Repro: a disk-offloaded, sharded save of an Inkling2 model writes an index whose `metadata.total_size` is smaller
than the bytes of the tensors in its shards, by the rows the save pads the unembedding back with.

Inkling2 checkpoints store `lm_head.weight` padded to `vocab_size` rows; transformers drops the padding on load
(`Inkling2UnpadVocab`) and pads it back with zeros on save. In memory the save reverts the conversions before it
plans the shards, so the index counts the padded tensor. Offloaded, it plans the shards (and their total size) on
the in-memory tensors and reverts shard by shard afterwards (transformers#47018): the padding the revert adds is in
the shard and not in `total_size`.

Needs torch, transformers, accelerate, safetensors; the tiny checkpoint is built by this repo's fixtures package
(generated from transformers' own Inkling2-Loop config class, its unembedding padded by two rows, written by its
in-memory save). Exit 1 while the bug is present.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
import transformers
from safetensors import safe_open

from offload_conformance.fixtures import generate
from offload_conformance.fixtures.manifest import read_manifest
from offload_conformance.fixtures.sets import named

SHARD = "24KB"


def totals(directory: Path) -> tuple[int, int]:
    """(index metadata.total_size, bytes of the tensors in the shards)."""
    index = json.loads((directory / "model.safetensors.index.json").read_text())
    held = 0
    for shard in sorted(directory.glob("*.safetensors")):
        with safe_open(shard, "pt") as f:
            held += sum(f.get_tensor(k).nbytes for k in f.keys())  # noqa: SIM118 - safe_open is not a Mapping
    return index["metadata"]["total_size"], held


with tempfile.TemporaryDirectory() as tmp:
    (spec,) = named(("gen_inkling2_loop",))
    src = generate(spec, root=Path(tmp))
    auto = getattr(transformers, read_manifest(src)["spec"]["auto_class"])
    auto.from_pretrained(src, dtype=torch.bfloat16).save_pretrained(Path(tmp, "in-memory"), max_shard_size=SHARD)
    declared, held = totals(Path(tmp, "in-memory"))
    print(f"in-memory save: index total_size {declared}, shards hold {held}")
    model = auto.from_pretrained(
        src, dtype=torch.bfloat16, device_map="auto", max_memory={"cpu": 1}, offload_folder=os.path.join(tmp, "off")
    )
    model.save_pretrained(Path(tmp, "offloaded"), max_shard_size=SHARD)
    declared, held = totals(Path(tmp, "offloaded"))
    print(f"disk-offloaded save: index total_size {declared}, shards hold {held}")
    sys.exit(1 if declared != held else 0)
