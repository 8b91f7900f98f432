"""Deliberately broken save implementations, used as --impl tests.broken_impls:NAME."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from safetensors.torch import load_file, save_file

from reference_impl import save_pretrained

DROPPED = "model.layers.0.mlp.experts.0.up_proj.weight"


def drop_one(model: Any, save_directory: str, **options: Any) -> None:
    """A correct save, then one per-expert tensor removed from its shard."""
    save_pretrained(model, save_directory, **options)
    for shard in Path(save_directory).glob("*.safetensors"):
        tensors = load_file(shard)
        if DROPPED in tensors:
            del tensors[DROPPED]
            save_file(tensors, shard, metadata={"format": "pt"})


def zeros_for_offloaded(model: Any, save_directory: str, **options: Any) -> None:
    """Offloaded tensors written as zeros instead of being read back from disk."""

    def zeros(m: Any, name: str) -> torch.Tensor:
        t = m.state_dict()[name]
        return torch.zeros(t.shape, dtype=t.dtype)

    with mock.patch("reference_impl.offload.read_offloaded", zeros):
        save_pretrained(model, save_directory, **options)


def crash(model: Any, save_directory: str, **options: Any) -> None:
    os.abort()


def hang(model: Any, save_directory: str, **options: Any) -> None:
    time.sleep(3600)


def raises(model: Any, save_directory: str, **options: Any) -> None:
    raise RuntimeError("could not revert conversion for model.layers.0.mlp.experts.gate_up_proj")


NOT_CALLABLE = 42


def skip_buffers(model: Any, save_directory: str, **options: Any) -> None:
    """Persistent buffers (e.g. e_score_correction_bias) left out: the bug transformers #47018 fixed."""
    import reference_impl.save as save_module

    real = save_module.materialized_state_dict

    def without_buffers(m: Any) -> dict[str, torch.Tensor]:
        buffers = {n for n, _ in m.named_buffers()}
        return {k: v for k, v in real(m).items() if k not in buffers}

    with mock.patch.object(save_module, "materialized_state_dict", without_buffers):
        save_pretrained(model, save_directory, **options)
