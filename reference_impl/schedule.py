"""The save's schedule: the in-memory save's checkpoint, worked out before any offloaded byte is read.

Everything here works on the model's state dict with offloaded tensors still on the `meta`
device: names, dtypes and shapes come from transformers' own revert of the weight conversions
(run on meta tensors), and the shard plan from huggingface_hub's own planner.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from huggingface_hub import StateDictSplit, split_state_dict_into_shards_factory
from torch import nn
from transformers.core_model_loading import revert_weight_conversion

from offload_conformance.reference_impl.offload import owner_of
from offload_conformance.reference_impl.views import Piece, revert_traced

Views = dict[str, tuple[Piece, ...]]


class ScheduleError(RuntimeError):
    """A model the streaming save cannot schedule."""


@dataclass(frozen=True)
class Group:
    """In-memory tensors that revert together, and the checkpoint tensors they become. `views` gives,
    per checkpoint tensor, the byte ranges of the sources it consists of, when the revert is pure data
    movement (reference_impl.views); None sends the group through transformers' revert."""

    sources: tuple[str, ...]
    outputs: tuple[str, ...]
    views: tuple[tuple[str, tuple[Piece, ...]], ...] | None = None


@dataclass(frozen=True)
class Schedule:
    groups: tuple[Group, ...]
    outputs: dict[str, torch.Tensor] = field(repr=False)  # checkpoint name -> meta tensor (dtype, shape)
    split: StateDictSplit = field(repr=False)


def saved_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """model.state_dict() minus what the in-memory save drops: ignored keys and tied duplicates.

    The in-memory save drops a declared tie target (e.g. lm_head.weight) when it shares storage
    with its source. Offloaded twins are meta tensors with no storage, and accelerate's
    disk_offload even gives them separate parameter objects: a declared tie whose two sides are
    the same object, or both offloaded, counts as shared.
    """
    state = model.state_dict()
    for key in getattr(model, "_keys_to_ignore_on_save", None) or []:
        state.pop(key, None)
    tied: dict[str, str] = dict(getattr(model, "all_tied_weights_keys", None) or {})
    for target, source in tied.items():
        if target in state and source in state:
            same = owner_of(model, target) is owner_of(model, source)
            both_offloaded = state[target].device.type == state[source].device.type == "meta"
            if same or both_offloaded:
                del state[target]
    return state


def _meta(t: torch.Tensor) -> torch.Tensor:
    return torch.empty(t.shape, dtype=t.dtype, device="meta")


def _revert(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    try:
        return revert_weight_conversion(model, dict(state))
    except Exception as e:  # a partial group cannot revert: the caller groups it with its partners
        raise ScheduleError(f"cannot revert {sorted(state)[:3]}...: {type(e).__name__}: {e}") from e


def _traced(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], Views | None]:
    try:
        out, views = revert_traced(model, state)
    except Exception as e:  # a partial group cannot revert: the caller groups it with its partners
        raise ScheduleError(f"cannot revert {sorted(state)[:3]}...: {type(e).__name__}: {e}") from e
    return out, views


def _fits(out: dict[str, torch.Tensor], full: dict[str, torch.Tensor]) -> bool:
    return all(n in full and full[n].shape == o.shape and full[n].dtype == o.dtype for n, o in out.items())


def _group(names: list[str], out: dict[str, torch.Tensor], views: Views | None) -> Group:
    return Group(tuple(names), tuple(out), None if views is None else tuple(views.items()))


def _components(links: dict[str, set[str]]) -> list[list[str]]:
    """The keys of `links` joined, transitively, when they link to a value in common; in key order."""
    owner: dict[str, str] = {}  # value -> the first key linking to it
    root = {key: key for key in links}

    def find(k: str) -> str:
        while root[k] != k:
            root[k] = root[root[k]]
            k = root[k]
        return k

    for key, values in links.items():
        for v in values:
            if v in owner:
                root[find(key)] = find(owner[v])
            else:
                owner[v] = key
    components: dict[str, list[str]] = {}
    for key in links:
        components.setdefault(find(key), []).append(key)
    return list(components.values())


def _view_groups(model: nn.Module, meta: dict[str, torch.Tensor], full: dict[str, torch.Tensor]) -> list[Group] | None:
    """One traced revert of the whole state: when every checkpoint tensor is byte ranges of in-memory
    tensors, the groups are read off the ranges (checkpoint tensors sharing a source go together), with
    no revert per tensor. None when some conversion is not pure data movement."""
    out, views = _traced(model, meta)
    if views is None or list(out) != list(full) or not _fits(out, full):
        return None
    order = {name: i for i, name in enumerate(meta)}
    groups = []
    for outputs in _components({name: {p.source for p in pieces} for name, pieces in views.items()}):
        sources = sorted({p.source for o in outputs for p in views[o]}, key=order.__getitem__)
        groups.append(Group(tuple(sources), tuple(outputs), tuple((o, views[o]) for o in outputs)))
    return groups


def _groups(model: nn.Module, meta: dict[str, torch.Tensor], full: dict[str, torch.Tensor]) -> list[Group]:
    """Each in-memory tensor alone when it reverts alone to exactly the full revert's outputs (renames,
    fused experts split per expert). Tensors that only revert together (many-to-one, e.g. the reverse
    of a Chunk) are grouped per smallest set that does: the tensors whose lone reverts name the same
    checkpoint tensor. Whatever still does not revert to the full revert's outputs forms one last
    group, as large as it has to be."""
    groups: list[Group] = []
    lone: dict[str, set[str]] = {}
    leftover: list[str] = []
    for name, t in meta.items():
        try:
            out, views = _traced(model, {name: t})
        except ScheduleError:
            leftover.append(name)
            continue
        if _fits(out, full):
            groups.append(_group([name], out, views))
        else:
            lone[name] = set(out)
    # Tensors that name a checkpoint tensor in common when reverted alone are the parts of one
    # many-to-one output (e.g. HRM-Text's gate/q/k/v of one layer's `gqkv_proj`).
    for names in _components(lone):
        try:
            out, views = _traced(model, {n: meta[n] for n in names})
        except ScheduleError:
            leftover += names
            continue
        if _fits(out, full):
            groups.append(_group(names, out, views))
        else:
            leftover += names
    if leftover:
        out, views = _traced(model, {n: meta[n] for n in leftover})
        groups.append(_group(leftover, out, views))
    produced = [n for g in groups for n in g.outputs]
    if sorted(produced) != sorted(full):
        raise ScheduleError("reverting group by group does not give the checkpoint the full revert gives")
    return groups


def schedule(model: nn.Module, max_shard_size: int | str, state: dict[str, torch.Tensor] | None = None) -> Schedule:
    """The checkpoint of `state` (default: saved_state(model)) as the in-memory save plans it."""
    state = saved_state(model) if state is None else state
    meta = {n: _meta(t) for n, t in state.items()}
    full = _revert(model, meta)  # checkpoint names, in the order the in-memory save plans them
    groups = _view_groups(model, meta, full) or _groups(model, meta, full)

    # The in-memory save hands huggingface_hub real tensors, and its planner keeps tensors that
    # share a storage in one shard, counted once at the storage's size. Meta tensors keep the same
    # aliasing through the revert (a view shares its base's StorageImpl, a copy gets its own), so
    # the storage identity and size the planner needs come from the meta outputs themselves.
    split = split_state_dict_into_shards_factory(
        full,
        get_storage_size=lambda t: t.untyped_storage().nbytes(),
        get_storage_id=lambda t: t.untyped_storage()._cdata,
        filename_pattern="model{suffix}.safetensors",
        max_shard_size=max_shard_size,
    )
    return Schedule(tuple(groups), full, split)
