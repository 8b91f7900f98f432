"""The straightforward offload-aware save: read every offloaded tensor back into RAM, then run the
in-memory save path (transformers' own tie removal and conversion revert, huggingface_hub's
shard planning, safetensors' writer), so the bytes match by construction.

It holds the whole model in memory, so it is not what `reference_impl.save_pretrained` does; it
is the oracle the streaming save is tested against, and the base that harness.plan.faults injects
bugs into (its stages are exposed for that).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from huggingface_hub import StateDictSplit, split_torch_state_dict_into_shards
from safetensors.torch import save_file
from transformers import PreTrainedModel
from transformers.core_model_loading import revert_weight_conversion
from transformers.modeling_utils import remove_tied_weights_from_state_dict

from offload_conformance.reference_impl import quantized
from offload_conformance.reference_impl.files import (
    DEFAULT_MAX_SHARD_SIZE,
    SaveError,
    WeightFiles,
    save_config,
    write_index,
)
from offload_conformance.reference_impl.offload import Reader, materialized_state_dict, read_offloaded

StateDict = dict[str, torch.Tensor]


def checkpoint_state(
    model: PreTrainedModel,
    *,
    read: Reader = read_offloaded,
    before_revert: Callable[[PreTrainedModel, StateDict], StateDict] | None = None,
    revert: bool = True,
    state_dict: StateDict | None = None,
) -> StateDict:
    """The tensors an in-memory save writes, under checkpoint names: of `state_dict` when one is given (the
    save's own option; its meta tensors stand for the model's offloaded ones of their names), else of the
    model's state dict. `revert=False` is save_original_format=False. `read` and `before_revert` exist so that
    harness.plan.faults can inject one realistic bug at a time; a correct save uses neither."""
    try:
        quantized.check(model)
    except quantized.QuantizedSaveError as e:
        raise SaveError(str(e)) from None
    state = materialized_state_dict(model, read, state_dict)
    for key in getattr(model, "_keys_to_ignore_on_save", None) or []:
        state.pop(key, None)
    state = remove_tied_weights_from_state_dict(state, model)
    if before_revert is not None:
        state = before_revert(model, state)
    return revert_weight_conversion(model, state) if revert else state


def prepare_target(model: PreTrainedModel, save_directory: str | os.PathLike[str]) -> Path:
    target = Path(save_directory)
    if target.exists() and not target.is_dir():
        raise SaveError(f"save target {target} is a file, not a directory")
    target.mkdir(parents=True, exist_ok=True)
    save_config(model, target)
    return target


def write_checkpoint(
    model: PreTrainedModel,
    state: StateDict,
    target: Path,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
    metadata: dict[str, str] | None = None,
    *,
    variant: str | None = None,
) -> StateDictSplit:
    """Shard `state` with huggingface_hub's planner and write it with safetensors, as the in-memory save does;
    the plan written."""
    files = WeightFiles(variant)
    split = split_torch_state_dict_into_shards(state, filename_pattern=files.pattern, max_shard_size=max_shard_size)
    # Stale shards from an earlier, larger save must not survive beside the new index.
    for p in target.iterdir():
        if p.is_file() and files.is_shard(p.name) and p.name not in split.filename_to_tensors:
            p.unlink()
    for filename, names in split.filename_to_tensors.items():
        save_file({n: state[n].contiguous() for n in names}, target / filename, metadata=metadata or {"format": "pt"})
    write_index(model, split, target, files.index)
    return split


def save_pretrained(
    model: PreTrainedModel,
    save_directory: str | os.PathLike[str],
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
    *,
    variant: str | None = None,
    save_original_format: bool = True,
    state_dict: StateDict | None = None,
) -> None:
    """Write what `model.save_pretrained(save_directory, max_shard_size=..., ...)` writes for the same
    model held in memory, whatever of it is offloaded (stale files as upstream leaves them)."""
    if getattr(model, "hf_quantizer", None) is not None:
        state_dict = None  # upstream's quantizer state dict replaces a given one: see reference_impl.save
    target = prepare_target(model, save_directory)
    state = checkpoint_state(model, revert=save_original_format, state_dict=state_dict)
    write_checkpoint(model, state, target, max_shard_size, variant=variant)
