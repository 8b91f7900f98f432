"""What a save writes beside the tensors, as upstream writes it: the weight files' names (of a variant),
config.json and generation_config.json, and the index. Shared by the streaming save (reference_impl.save) and the
straightforward one it falls back to for a given state dict (reference_impl.simple).
"""

from __future__ import annotations

import inspect
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import StateDictSplit
from transformers import PreTrainedModel
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME

INDEX_NAME = SAFE_WEIGHTS_INDEX_NAME
# The installed transformers' own default, so the reference shards as its in-memory save does.
DEFAULT_MAX_SHARD_SIZE: int | str = (
    inspect.signature(PreTrainedModel.save_pretrained).parameters["max_shard_size"].default
)


class SaveError(RuntimeError):
    """A save that cannot be done as asked."""


def add_variant(name: str, variant: str | None) -> str:
    """transformers' `_add_variant`: `model.safetensors` -> `model.<variant>.safetensors`."""
    if variant is None:
        return name
    stem, ext = name.rsplit(".", 1)
    return f"{stem}.{variant}.{ext}"


@dataclass(frozen=True)
class WeightFiles:
    """The names of the weight files and index a save of one variant writes, as upstream names them."""

    variant: str | None = None

    def __post_init__(self) -> None:
        # Upstream would write into a subdirectory (or fail there), or fail planning shards (a brace is a field).
        if self.variant is not None and any(c in str(self.variant) for c in "/{}\0" + os.sep):
            raise SaveError(f"variant {self.variant!r} cannot be part of a file name (a path separator, brace or NUL)")

    @property
    def weights(self) -> str:
        return add_variant(SAFE_WEIGHTS_NAME, self.variant)

    @property
    def index(self) -> str:
        return add_variant(SAFE_WEIGHTS_INDEX_NAME, self.variant)

    @property
    def pattern(self) -> str:
        """huggingface_hub's filename_pattern, built from the weights name as upstream builds it."""
        return self.weights.replace(".safetensors", "{suffix}.safetensors")

    def is_shard(self, filename: str) -> bool:
        """Whether `filename` is a shard of a sharded save of this variant (of any shard count)."""
        shard = re.escape(self.pattern).replace(re.escape("{suffix}"), r"-\d{5}-of-\d{5}")
        return re.fullmatch(shard, filename) is not None

    def owns(self, filename: str) -> bool:
        """Whether `filename` is this variant's single weight file, one of its shards or its index."""
        return filename in (self.weights, self.index) or self.is_shard(filename)


def _write_config(model: PreTrainedModel, cls: type, directory: Path) -> None:
    # Same mutations the upstream save applies before writing config.json.
    model.config.dtype = str(model.dtype).split(".")[1]
    model.config.architectures = [cls.__name__]
    model.config.save_pretrained(directory)
    if model.can_generate():
        model.generation_config.save_pretrained(directory)


def save_config(model: PreTrainedModel, directory: Path, **save_options: object) -> None:
    """config.json and generation_config.json as the model's own save_pretrained writes them.

    A model class may override save_pretrained to prepare its configs before handing over to
    PreTrainedModel.save_pretrained (CSM and Kyutai-STT copy their sub-model's generation config
    into the top one under a prefix). The override runs as it is, on this instance only, with its
    call to the base save_pretrained answered by writing the configs: its weights are ours to write.
    """
    cls = type(model)
    if cls.save_pretrained is PreTrainedModel.save_pretrained:
        _write_config(model, cls, directory)
        return

    class ConfigOnly(PreTrainedModel):
        def save_pretrained(self, save_directory: str | os.PathLike[str], *args: object, **kwargs: object) -> None:
            _write_config(self, cls, Path(save_directory))

    # C3 puts ConfigOnly after every class of `cls` but PreTrainedModel and its bases, so each
    # override's super().save_pretrained() ends in ConfigOnly's.
    model.__class__ = type(cls.__name__, (cls, ConfigOnly), {"__module__": cls.__module__})
    try:
        model.save_pretrained(directory, **save_options)
    finally:
        model.__class__ = cls


def num_parameters(model: PreTrainedModel) -> int:
    """model.num_parameters() as the in-memory model counts it: accelerate's offload helpers give a
    tied weight a parameter object of its own, which num_parameters() would count twice."""
    tied: dict[str, str] = dict(getattr(model, "all_tied_weights_keys", None) or {})
    params = dict(model.named_parameters(remove_duplicate=False))
    untied_twins = sum(
        params[target].numel()
        for target, source in tied.items()
        if target in params and source in params and params[target] is not params[source]
    )
    return model.num_parameters() - untied_twins


def write_index(model: PreTrainedModel, split: StateDictSplit, directory: Path, name: str = INDEX_NAME) -> None:
    """The index (`name`: model.safetensors.index[.variant].json), formatted as the in-memory save writes it
    (sharded saves only)."""
    if split.is_sharded:
        index = {
            "metadata": {"total_parameters": num_parameters(model), **split.metadata},
            "weight_map": split.tensor_to_filename,
        }
        (directory / name).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
