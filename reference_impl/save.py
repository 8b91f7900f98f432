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

The save options are upstream's: `variant` names the files as transformers' `_add_variant` does,
`save_original_format=False` writes the in-memory names and tensors (no revert), and `state_dict` (a wrapper
passing the model's own, offloaded tensors as meta placeholders) saves as without it; a state dict holding
other tensors is written as the in-memory save writes it, through reference_impl.simple.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import StateDictSplit
from transformers import PreTrainedModel
from transformers.core_model_loading import revert_weight_conversion

from offload_conformance.reference_impl import hub, quantized
from offload_conformance.reference_impl.atomic import fsync_file, replace_directory
from offload_conformance.reference_impl.files import (
    DEFAULT_MAX_SHARD_SIZE,
    SaveError,
    WeightFiles,
    save_config,
    write_index,
)
from offload_conformance.reference_impl.offload import OffloadError, read_offloaded, unwrap, weights_maps
from offload_conformance.reference_impl.preflight import preflight
from offload_conformance.reference_impl.schedule import Schedule, saved_state, schedule
from offload_conformance.reference_impl.simple import checkpoint_state, write_checkpoint
from offload_conformance.reference_impl.sources import Sources
from offload_conformance.reference_impl.writer import StreamingWriter

METADATA = {"format": "pt"}
DIRECT_CHUNK = 4 * 2**20


def _check(model: PreTrainedModel, save_directory: str | os.PathLike[str]) -> Path:
    try:
        quantized.check(model)
    except quantized.QuantizedSaveError as e:
        raise SaveError(str(e)) from None
    target = Path(save_directory)
    try:
        if target.is_symlink():
            # Save into the directory the link names (as writing through it would); the link stays.
            target = target.resolve()
        if target.exists() and not target.is_dir():
            raise SaveError(f"save target {target} is a file, not a directory")
    except OSError as e:  # a parent this user cannot search
        raise SaveError(f"cannot write to {target}: {e.strerror or e}") from None
    return target


def save_pretrained(
    model: PreTrainedModel,
    save_directory: str | os.PathLike[str],
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
    *,
    variant: str | None = None,
    save_original_format: bool = True,
    state_dict: dict[str, torch.Tensor] | None = None,
    is_main_process: bool = True,
    push_to_hub: bool = False,
    token: str | None = None,
    repo_id: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
) -> None:
    """Write what `model.save_pretrained(save_directory, max_shard_size=..., variant=...,
    save_original_format=..., state_dict=..., is_main_process=...)` writes for the same model held in memory,
    whatever of it is offloaded. Into a directory holding an earlier save, this variant's weight files and index
    come out as a save into an empty directory writes them (_kept); a model loaded from that directory still reads
    its offloaded tensors afterwards (_follow). On a process that is not the main one of a distributed run
    (`is_main_process=False`, or a rank other than 0 of an initialized torch.distributed group) nothing is written or
    removed: the directory is only created, as upstream does.
    `push_to_hub` uploads what the save wrote, with a model card, to `repo_id` (the directory's name by default)."""
    target = _check(model, save_directory)
    if not is_main_process or _rank() != 0:
        target.mkdir(parents=True, exist_ok=True)
        return
    push = hub.start(Path(save_directory), token, repo_id, commit_message, create_pr) if push_to_hub else None
    files = WeightFiles(variant)
    # What a caller would hand the model's own save_pretrained (an override of it runs: save_config).
    options: dict[str, object] = {"max_shard_size": max_shard_size}
    options |= {"variant": variant} if variant is not None else {}
    options |= {"save_original_format": False} if not save_original_format else {}
    options |= {"state_dict": state_dict} if state_dict is not None else {}
    if getattr(model, "hf_quantizer", None) is not None:
        # Upstream replaces a given state dict with its quantizer's, which is None (the model's own) for every
        # quantizer quantized.check lets through: a quantized model saves its own tensors whatever it is given.
        state_dict = None
    state = saved_state(model)  # one state dict for the whole save: its bookkeeping is per tensor
    differs = None if state_dict is None else _first_difference(model, state_dict)
    checkpoint: Schedule | None = None
    given: dict[str, torch.Tensor] = {}
    if differs is None:
        if state_dict is not None:  # the model's own tensors, in the order the in-memory save plans them in
            state = {n: state[n] for n in state_dict if n in state}
        preflight(model, state)  # a damaged offload folder fails here, before anything is written
        checkpoint = schedule(model, max_shard_size, state, revert=save_original_format, filename_pattern=files.pattern)
    else:
        given = _given_checkpoint(model, state_dict or {}, differs, save_original_format)
    staging = _staging(target)
    links: Path | None = None
    try:
        save_config(model, staging, **options)
        if checkpoint is not None:
            _stream(model, state, checkpoint, staging)
            split = checkpoint.split
            write_index(model, split, staging, files.index)
            streamed = set(split.filename_to_tensors)  # fsynced as they were closed
        else:
            split = _write_given(model, given, staging, max_shard_size, files, differs or "")
            given.clear()
            streamed = set()
        if push is not None:
            hub.write_card(push, model, staging)
        for small in staging.iterdir():
            if small.name not in streamed:
                fsync_file(small)
        moves, links = _follow(model, target, files, split, checkpoint)
        replace_directory(staging, target, keep=_kept(target, files))
    except EOFError as e:  # an offload file shortened after preflight checked it
        _discard(staging, links)
        raise OffloadError(f"reading offloaded data failed: {e}; the target is unchanged") from None
    except OSError as e:
        _discard(staging, links)
        raise SaveError(f"writing {target} failed ({e.strerror or e}); the target is unchanged") from None
    except BaseException:
        _discard(staging, links)
        raise
    for index, key, entry in moves:  # the model reads its offloaded tensors from where they are now
        index[key] = entry
    if push is not None:
        hub.upload(push, target)


def _rank() -> int:
    """This process's rank in the torch.distributed group it belongs to (0 outside one)."""
    distributed = torch.distributed
    return distributed.get_rank() if distributed.is_available() and distributed.is_initialized() else 0


def _staging(target: Path) -> Path:
    """A new directory beside the target to write the save into, after removing what an earlier save of this
    target left when it was killed mid-way."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for pattern in (f".{target.name}.saving-*", f".{target.name}.old-*"):
            for litter in target.parent.glob(pattern):
                shutil.rmtree(litter, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=f".{target.name}.saving-", dir=target.parent))
    except OSError as e:
        raise SaveError(f"cannot write beside {target}: {e.strerror or e}") from None


def _discard(staging: Path, links: Path | None) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    if links is not None:
        shutil.rmtree(links, ignore_errors=True)


def _stream(model: PreTrainedModel, state: dict[str, torch.Tensor], checkpoint: Schedule, staging: Path) -> None:
    """Write the checkpoint's shards into `staging`, each fsynced as it is closed."""
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


def _describe(t: torch.Tensor) -> str:
    return f"{str(t.dtype).removeprefix('torch.')}{list(t.shape)} on {t.device}"


def _is_own(value: torch.Tensor, mine: torch.Tensor) -> bool:
    """Whether a given state dict's tensor is the model's `mine`: the same tensor or a view of all of it (what
    model.state_dict() holds), or a meta placeholder where the model's is offloaded."""
    if value.dtype != mine.dtype or value.shape != mine.shape:
        return False
    if mine.device.type == "meta":
        return value.device.type == "meta"
    return (
        value.device == mine.device
        and value.stride() == mine.stride()
        and value.storage_offset() == mine.storage_offset()
        and value.untyped_storage().data_ptr() == mine.untyped_storage().data_ptr()
    )


def _own_state(model: PreTrainedModel) -> tuple[dict[str, torch.Tensor], set[str]]:
    """The model's own tensors by name (its parameters themselves, meta where offloaded) and the keys a save
    ignores."""
    own: dict[str, torch.Tensor] = {}
    model.state_dict(destination=own, keep_vars=True)
    return own, set(getattr(model, "_keys_to_ignore_on_save", None) or [])


def _first_difference(model: PreTrainedModel, state_dict: dict[str, torch.Tensor]) -> str | None:
    """None when a given state dict is the model's own (its names, each value the model's own tensor or a meta
    placeholder where that is offloaded; keys the save ignores aside), else what first differs, in one line."""
    own, ignored = _own_state(model)
    for name, value in state_dict.items():
        if name in ignored:
            continue
        if not isinstance(value, torch.Tensor):
            return f"state_dict[{name!r}] is a {type(value).__name__}, not a tensor"
        mine = own.get(name)
        if mine is None:
            return f"state_dict[{name!r}] is not a tensor of the model"
        if not _is_own(value, mine):
            return f"state_dict[{name!r}] ({_describe(value)}) is not the model's own {_describe(mine)}"
    missing = next((n for n in own if n not in state_dict and n not in ignored), None)
    return None if missing is None else f"state_dict lacks the model's {missing}"


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"


def _given_checkpoint(
    model: PreTrainedModel, state_dict: dict[str, torch.Tensor], differs: str, revert: bool
) -> dict[str, torch.Tensor]:
    """The checkpoint the in-memory save writes for a state dict holding other tensors than the model's
    (`differs` says which first): reference_impl.simple's path, its meta placeholders read from offload
    storage. Memory holds the whole checkpoint, as the given state dict holds it already."""
    own, ignored = _own_state(model)
    for name, value in state_dict.items():
        if name in ignored:
            continue
        if not isinstance(value, torch.Tensor):
            raise SaveError(f"cannot save the given state_dict: {name} is a {type(value).__name__}, not a tensor")
        mine = own.get(name)
        offloaded = mine is not None and mine.device.type == "meta"
        if value.device.type == "meta" and not (offloaded and _is_own(value, mine)):  # type: ignore[arg-type]
            raise SaveError(
                f"cannot save the given state_dict: {name} is a meta tensor ({_describe(value)}) and the model holds"
                " no offloaded tensor of that dtype and shape under that name to read it from"
            )
    try:
        return checkpoint_state(model, state_dict=state_dict, revert=revert)
    except (SaveError, OffloadError):
        raise
    except Exception as e:  # transformers' revert of a partial or odd state dict: one line, not its traceback
        raise SaveError(f"cannot save the given state_dict ({differs}): {_first_line(e)}") from None


def _write_given(
    model: PreTrainedModel,
    tensors: dict[str, torch.Tensor],
    staging: Path,
    max_shard_size: int | str,
    files: WeightFiles,
    differs: str,
) -> StateDictSplit:
    try:
        return write_checkpoint(model, tensors, staging, max_shard_size, variant=files.variant)
    except OSError:
        raise
    except Exception as e:  # safetensors refusing a state dict (e.g. tensors that overlap): one line
        raise SaveError(f"cannot save the given state_dict ({differs}): {_first_line(e)}") from None


def _meta(t: torch.Tensor) -> torch.Tensor:
    return torch.empty(t.shape, dtype=t.dtype, device="meta")


def _direct_chunk(state: dict[str, torch.Tensor]) -> int | None:
    """The buffer size for writing past the page cache (reference_impl.direct): two buffers of it are
    the only memory that costs, so only where they come to at most the largest in-memory tensor."""
    largest = max((t.numel() * t.element_size() for t in state.values()), default=0)
    return DIRECT_CHUNK if largest >= 2 * DIRECT_CHUNK else None


def _load(model: PreTrainedModel, name: str, tensor: torch.Tensor) -> torch.Tensor:
    return read_offloaded(model, name) if tensor.device.type == "meta" else tensor.detach()


def _kept(target: Path, files: WeightFiles) -> list[str]:
    """Files of an earlier save that survive the new one: all but this variant's weight files and index, which
    come out exactly as a save into an empty directory writes them. Upstream deletes only stale shards: a stale
    single weight file stays beside a new index (and from_pretrained loads it, not the new shards), and a stale
    index beside a new single file. It also deletes other variants' shards whose names start with this variant's
    weights name (`model.v1-00001-of-00002.safetensors` when saving without a variant), leaving their index;
    those stay here."""
    if not target.is_dir():
        return []
    return [p.name for p in target.iterdir() if not files.owns(p.name)]


Move = tuple[dict[str, Any], str, dict[str, Any]]


def _follow(
    model: PreTrainedModel, target: Path, files: WeightFiles, split: StateDictSplit, checkpoint: Schedule | None
) -> tuple[list[Move], Path | None]:
    """A save into the directory the model was loaded from: transformers 5.x points the offload index of a tensor
    it did not convert into the checkpoint it loaded, and the save replaces or removes this variant's files there.
    The index entries to change once the swap is done, so the model reads its offloaded tensors afterwards: an
    entry whose tensor the new checkpoint holds whole and as is, under the entry's name, moves to the file it is in
    now (a reshard moves it); any other entry into a file the save replaces or removes reads the old file,
    hard-linked (copied across file systems) into a new directory of its offload folder: the returned path."""
    root = target.resolve()
    tied: dict[str, str] = dict(getattr(model, "all_tied_weights_keys", None) or {})
    whole: dict[str, str] = {}  # checkpoint tensor -> the in-memory tensor it is all of, byte for byte
    if checkpoint is not None:
        for group in checkpoint.groups:
            for name, pieces in group.views or ():
                plan = checkpoint.outputs[name]
                nbytes = math.prod(plan.shape) * plan.dtype.itemsize
                if len(pieces) == 1 and pieces[0].offset == 0 and pieces[0].nbytes == nbytes:
                    whole[name] = pieces[0].source
    moves: list[Move] = []
    links: list[Path] = []  # the directory the old files are kept in, once made
    kept: dict[Path, str] = {}  # old file -> its link
    try:
        for index, key, entry, folder in _entries_into(model, root, files):
            path = entry["safetensors_file"]
            weight = entry.get("weight_name", key)
            source = whole.get(weight)
            if source is not None and source in (key, tied.get(key)) and weight in split.tensor_to_filename:
                moved = os.path.join(os.path.dirname(path), split.tensor_to_filename[weight])
                if moved != path:
                    moves.append((index, key, {**entry, "safetensors_file": moved}))
                continue
            old = Path(path).resolve()
            if folder is None or not old.is_file():
                continue  # nowhere to keep it: the model cannot read this tensor after the save (nor upstream's)
            if old not in kept:
                if not links:
                    links.append(Path(tempfile.mkdtemp(prefix=f".{target.name}.replaced-", dir=folder)))
                kept[old] = str(links[0] / old.name)
                try:
                    os.link(old, kept[old])
                except OSError:  # another file system
                    shutil.copyfile(old, kept[old])
            moves.append((index, key, {**entry, "safetensors_file": kept[old]}))
    except BaseException:
        for d in links:
            shutil.rmtree(d, ignore_errors=True)
        raise
    return moves, links[0] if links else None


def _entries_into(
    model: PreTrainedModel, root: Path, files: WeightFiles
) -> Iterator[tuple[dict[str, Any], str, dict[str, Any], str | None]]:
    """(index, key, entry, offload folder) of each offload index entry of the model that points into a weight file
    of `files` in the directory `root` (resolved)."""
    seen: set[int] = set()
    for module in model.modules():
        for weights_map in weights_maps(module):
            store, _ = unwrap(weights_map, "")
            index = getattr(store, "index", None)
            if id(store) in seen or not isinstance(index, dict):
                continue
            seen.add(id(store))
            folder = getattr(store, "save_folder", None)
            for key, entry in list(index.items()):
                path = entry.get("safetensors_file") if isinstance(entry, dict) else None
                if path is not None and files.owns(Path(path).name) and Path(path).resolve().parent == root:
                    yield index, key, entry, folder
