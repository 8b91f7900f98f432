"""Offload-aware save_pretrained, streaming: the checkpoint an in-memory save would write.

The checkpoint is scheduled first with no data read (reference_impl.schedule). Where a group's
revert only moves bytes (renames, fused experts split per expert, many-to-one concatenation;
reference_impl.views), each checkpoint tensor is copied from its sources' byte ranges in the offload
files (reference_impl.sources) into its shard, in file order: past the page cache through two small
buffers (reference_impl.direct) where the model is large enough for that to pay, else inside the
kernel (reference_impl.transfer); no tensor is built. Any other group is read from offload storage once,
reverted with transformers' own conversion machinery (among the rest of the state as meta placeholders
where its revert depends on the rest, e.g. a stateful renaming), written and freed: memory holds one group at
a time, whatever max_shard_size is. reference_impl.writer computes every header up front.
Everything is written into a new directory beside the target, which then replaces the target in one
atomic rename, so a crash leaves the old save or the new one.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

import torch
from huggingface_hub import StateDictSplit
from transformers import PreTrainedModel
from transformers.core_model_loading import revert_weight_conversion
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME

from offload_conformance.reference_impl import quantized
from offload_conformance.reference_impl.atomic import fsync_file, replace_directory
from offload_conformance.reference_impl.offload import OffloadError, read_offloaded
from offload_conformance.reference_impl.preflight import preflight
from offload_conformance.reference_impl.schedule import saved_state, schedule
from offload_conformance.reference_impl.sources import Sources
from offload_conformance.reference_impl.writer import StreamingWriter

INDEX_NAME = SAFE_WEIGHTS_INDEX_NAME
# The installed transformers' own default, so the reference shards as its in-memory save does.
DEFAULT_MAX_SHARD_SIZE: int | str = (
    inspect.signature(PreTrainedModel.save_pretrained).parameters["max_shard_size"].default
)
# A shard of a sharded save; one the new save does not write is stale and goes, as upstream does it.
SHARD_RE = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")
METADATA = {"format": "pt"}
DIRECT_CHUNK = 4 * 2**20


class SaveError(RuntimeError):
    """A save that cannot be done as asked."""


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


def _check(model: PreTrainedModel, save_directory: str | os.PathLike[str]) -> Path:
    try:
        quantized.check(model)
    except quantized.QuantizedSaveError as e:
        raise SaveError(str(e)) from None
    target = Path(save_directory)
    if target.is_symlink():
        # Save into the directory the link names (as writing through it would); the link stays.
        target = target.resolve()
    if target.exists() and not target.is_dir():
        raise SaveError(f"save target {target} is a file, not a directory")
    return target


def save_pretrained(
    model: PreTrainedModel, save_directory: str | os.PathLike[str], max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE
) -> None:
    """Write what `model.save_pretrained(save_directory, max_shard_size=...)` writes for the same
    model held in memory, whatever of it is offloaded."""
    target = _check(model, save_directory)
    state = saved_state(model)  # one state dict for the whole save: its bookkeeping is per tensor
    preflight(model, state)  # a damaged offload folder fails here, before anything is written
    checkpoint = schedule(model, max_shard_size, state)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # What an earlier save of this target left when it was killed mid-way.
        for pattern in (f".{target.name}.saving-*", f".{target.name}.old-*"):
            for litter in target.parent.glob(pattern):
                shutil.rmtree(litter, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.saving-", dir=target.parent))
    except OSError as e:
        raise SaveError(f"cannot write beside {target}: {e.strerror or e}") from None
    try:
        save_config(model, staging, max_shard_size=max_shard_size)
        shard_of = checkpoint.split.tensor_to_filename
        chunk = _direct_chunk(state)
        # Shards made of byte ranges only are written front to back, so they can go past the page cache.
        reverted = {shard_of[n] for g in checkpoint.groups if g.views is None for n in g.outputs}
        with ExitStack() as stack:
            sources = stack.enter_context(Sources(model, state))
            writers = {
                filename: stack.enter_context(
                    StreamingWriter(
                        staging / filename,
                        [checkpoint.outputs[n] for n in names],
                        METADATA,
                        sync_dir=False,  # replace_directory fsyncs the staging directory before the swap
                        direct_chunk=None if filename in reverted else chunk,
                    )
                )
                for filename, names in checkpoint.split.filename_to_tensors.items()
            }
            # transformers' own revert, one group in memory at a time (reference_impl.views says which)
            for group in checkpoint.groups:
                if group.views is None:
                    tensors = {n: _load(model, n, state[n]) for n in group.sources}
                    if group.in_context:  # the rest of the state as meta placeholders: their outputs are dropped
                        tensors = {**{n: _meta(t) for n, t in state.items()}, **tensors}
                    out = revert_weight_conversion(model, tensors)
                    for name in group.outputs:
                        writers[shard_of[name]].write(name, out[name])
                    del tensors, out
            # Byte ranges of the sources, copied in file order: nothing is built, each shard is written
            # front to back (past the page cache, or with its writeback streaming behind the copy) and
            # closed once it is complete.
            rank = {filename: i for i, filename in enumerate(writers)}
            views = [v for g in checkpoint.groups if g.views is not None for v in g.views]
            views.sort(key=lambda v: (rank[shard_of[v[0]]], writers[shard_of[v[0]]].position(v[0])))
            for name, parts in sources.in_order(views):
                writer = writers[shard_of[name]]
                writer.write_parts(name, parts)
                if writer.complete:
                    writer.close()
        write_index(model, checkpoint.split, staging)
        for small in staging.iterdir():  # config, generation config, index: the shards are fsynced already
            if small.name not in checkpoint.split.filename_to_tensors:
                fsync_file(small)
        replace_directory(staging, target, keep=_kept(target, set(checkpoint.split.filename_to_tensors)))
    except EOFError as e:  # an offload file shortened after preflight checked it
        shutil.rmtree(staging, ignore_errors=True)
        raise OffloadError(f"reading offloaded data failed: {e}; the target is unchanged") from None
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise SaveError(f"writing {target} failed ({e.strerror or e}); the target is unchanged") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_index(model: PreTrainedModel, split: StateDictSplit, directory: Path) -> None:
    """model.safetensors.index.json, formatted as the in-memory save writes it (sharded saves only)."""
    if split.is_sharded:
        index = {
            "metadata": {"total_parameters": num_parameters(model), **split.metadata},
            "weight_map": split.tensor_to_filename,
        }
        (directory / INDEX_NAME).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _meta(t: torch.Tensor) -> torch.Tensor:
    return torch.empty(t.shape, dtype=t.dtype, device="meta")


def _direct_chunk(state: dict[str, torch.Tensor]) -> int | None:
    """The buffer size for writing past the page cache (reference_impl.direct): two buffers of it are
    the only memory that costs, so only where they come to at most the largest in-memory tensor."""
    largest = max((t.numel() * t.element_size() for t in state.values()), default=0)
    return DIRECT_CHUNK if largest >= 2 * DIRECT_CHUNK else None


def _load(model: PreTrainedModel, name: str, tensor: torch.Tensor) -> torch.Tensor:
    return read_offloaded(model, name) if tensor.device.type == "meta" else tensor.detach()


def _kept(target: Path, new_shards: set[str]) -> list[str]:
    """Files of an earlier save that survive the new one, as they would beside an in-memory save:
    everything but stale `model-XXXXX-of-YYYYY.safetensors` shards the new save does not write."""
    if not target.is_dir():
        return []
    return [p.name for p in target.iterdir() if not (SHARD_RE.fullmatch(p.name) and p.name not in new_shards)]
