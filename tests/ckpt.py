"""Hand-made checkpoints for comparator tests."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from huggingface_hub import split_torch_state_dict_into_shards
from huggingface_hub.constants import SAFETENSORS_INDEX_FILE as INDEX
from safetensors.torch import save_file

from offload_conformance.fixtures.spec import SINGLE_FILE


def base_tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    t = {
        "model.embed_tokens.weight": torch.randn(16, 8, generator=g).to(torch.bfloat16),
        "model.layers.0.mlp.experts.0.up_proj.weight": torch.randn(4, 8, generator=g).to(torch.bfloat16),
        "model.layers.0.mlp.experts.1.up_proj.weight": torch.randn(4, 8, generator=g).to(torch.bfloat16),
        "model.layers.0.mlp.experts.0.down_proj.weight": torch.randn(8, 4, generator=g).to(torch.float8_e4m3fn),
        "model.layers.0.mlp.experts.0.down_proj.weight_scale_inv": torch.rand(1, 1, generator=g) + 0.5,
        "model.layers.0.mlp.gate.e_score_correction_bias": torch.randn(2, generator=g),
        "model.norm.weight": torch.randn(8, generator=g).to(torch.bfloat16),
    }
    return t


def write(
    directory: Path,
    tensors: dict[str, torch.Tensor],
    *,
    max_shard_size: int | str = SINGLE_FILE,
    metadata: dict[str, str] | None = None,
    config: str = '{"model_type": "toy"}\n',
) -> Path:
    """A checkpoint as save_pretrained lays it out: shards, index, config.json."""
    directory.mkdir(parents=True, exist_ok=True)
    split = split_torch_state_dict_into_shards(
        tensors, filename_pattern="model{suffix}.safetensors", max_shard_size=max_shard_size
    )
    for filename, names in split.filename_to_tensors.items():
        save_file(
            {n: tensors[n].contiguous() for n in names},
            directory / filename,
            metadata=metadata if metadata is not None else {"format": "pt"},
        )
    if split.is_sharded:
        index = {"metadata": dict(split.metadata), "weight_map": split.tensor_to_filename}
        (directory / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    (directory / "config.json").write_text(config)
    return directory


def write_reordered(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """A valid safetensors file whose data is in reverse name order (safetensors itself sorts)."""
    names = sorted(tensors, reverse=True)
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset, blobs = 0, []
    dtypes = {torch.bfloat16: "BF16", torch.float32: "F32", torch.float8_e4m3fn: "F8_E4M3"}
    for n in names:
        raw = tensors[n].contiguous().view(-1).view(torch.uint8).numpy().tobytes()
        header[n] = {
            "dtype": dtypes[tensors[n].dtype],
            "shape": list(tensors[n].shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
