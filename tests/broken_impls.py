"""Deliberately broken save implementations, used as --impl tests.broken_impls:NAME."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from offload_conformance.reference_impl import save_pretrained

DROPPED = "model.layers.0.mlp.experts.0.up_proj.weight"


def drop_one(model: Any, save_directory: str, **options: Any) -> None:
    """A correct save, then one per-expert tensor removed from its shard."""
    save_pretrained(model, save_directory, **options)
    for shard in Path(save_directory).glob("*.safetensors"):
        tensors = load_file(shard)
        if DROPPED in tensors:
            del tensors[DROPPED]
            save_file(tensors, shard, metadata={"format": "pt"})


def crash(model: Any, save_directory: str, **options: Any) -> None:
    os.abort()


def hang(model: Any, save_directory: str, **options: Any) -> None:
    time.sleep(3600)


def raises(model: Any, save_directory: str, **options: Any) -> None:
    raise RuntimeError("could not revert conversion for model.layers.0.mlp.experts.gate_up_proj")


NOT_CALLABLE = 42


def read_twice(model: Any, save_directory: str, **options: Any) -> None:
    """A correct save that reads every offloaded tensor from storage twice (read amplification 2)."""
    from offload_conformance.reference_impl.offload import read_offloaded

    for name, tensor in model.state_dict().items():
        if tensor.device.type == "meta":
            read_offloaded(model, name)
    save_pretrained(model, save_directory, **options)


def hoard_memory(model: Any, save_directory: str, **options: Any) -> None:
    """A correct save that holds 64 MiB it does not need while saving."""
    ballast = bytearray(64 * 2**20)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page so it is resident
    save_pretrained(model, save_directory, **options)
    del ballast


def segfault(model: Any, save_directory: str, **options: Any) -> None:
    import ctypes

    ctypes.string_at(0)


def balloon(model: Any, save_directory: str, **options: Any) -> None:
    """Grows without bound (touching every page) until something stops it."""
    chunks = []
    while True:
        chunk = bytearray(64 * 2**20)
        chunk[::4096] = b"x" * len(chunk[::4096])
        chunks.append(chunk)


def chatter(model: Any, save_directory: str, **options: Any) -> None:
    """Prints 30 MB, then fails."""
    import sys

    line = "noise " * 100 + "\n"
    for _ in range(30 * 2**20 // len(line)):
        sys.stdout.write(line)
    print("the last words of the cell")
    raise RuntimeError("gave up after a lot of output")


UNUSED_RULE = ("embed_token.weight", "embed_tokens.weight")  # (checkpoint name, internal name): singular, never on disk


def unused_rename(model: Any, save_directory: str, **options: Any) -> None:
    """transformers' own save, with a rename rule in the model type's conversion mapping that the checkpoint never had
    (transformers#48075's class: Nemotron-H's `embedding.weight` -> `embeddings.weight`). A model loaded by
    from_pretrained recorded only the rules its checkpoint matched and saves right; one built by from_config reverts
    the whole mapping and writes the singular name. The cell process is this save's alone: nothing to restore."""
    from transformers.conversion_mapping import (
        get_checkpoint_conversion_mapping,
        register_checkpoint_conversion_mapping,
    )
    from transformers.core_model_loading import WeightRenaming

    model_type = model.config.model_type
    mapping = [*(get_checkpoint_conversion_mapping(model_type) or []), WeightRenaming(*UNUSED_RULE)]
    register_checkpoint_conversion_mapping(model_type, mapping, overwrite=True)
    model.save_pretrained(save_directory, **options)


UNREAD = "model.embed_tokens.weight"  # its row 0: token id 0, which the fixed forward input never holds


def nudge_unread(model: Any, save_directory: str, **options: Any) -> None:
    """A correct save, then the lowest bit of one value flipped where no forward pass on the harness's fixed input
    reads it (the embedding of token id 0, see lifecycle.forward_logits): the logits cannot tell, the bytes can."""
    save_pretrained(model, save_directory, **options)
    for shard in Path(save_directory).glob("*.safetensors"):
        tensors = load_file(shard)
        if UNREAD in tensors:
            row = tensors[UNREAD][0].view(torch.uint8)  # a view (rows are contiguous): writes go to the tensor
            row[0] ^= 1  # little-endian: the lowest mantissa bit of element (0, 0), one ulp
            save_file(tensors, shard, metadata={"format": "pt"})


RENAMED = ("model.norm.weight", "model.final_norm.weight")  # (the model's name, the name this save writes)


def rename_one(model: Any, save_directory: str, **options: Any) -> None:
    """A correct save, then one tensor written under a name the model does not have (a wrong reverse renaming): the
    reload misses the real name (transformers initialises it) and ignores the written one."""
    save_pretrained(model, save_directory, **options)
    for shard in Path(save_directory).glob("*.safetensors"):
        tensors = load_file(shard)
        if RENAMED[0] in tensors:
            tensors[RENAMED[1]] = tensors.pop(RENAMED[0])
            save_file(tensors, shard, metadata={"format": "pt"})
    index = Path(save_directory) / "model.safetensors.index.json"
    if index.exists():
        index.write_text(index.read_text().replace(f'"{RENAMED[0]}"', f'"{RENAMED[1]}"'))


def stale_config_dtype(model: Any, save_directory: str, **options: Any) -> None:
    """A correct save whose config.json keeps the dtype the model was loaded in after a cast (as
    `save_pretrained:3445` removed does): float32 for weights saved in bf16."""
    save_pretrained(model, save_directory, **options)
    path = Path(save_directory) / "config.json"
    config = json.loads(path.read_text())
    config["dtype"] = "float32"
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
