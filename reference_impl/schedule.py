"""The save's schedule: the in-memory save's checkpoint, worked out before any offloaded byte is read.

Everything here works on the model's state dict with offloaded tensors still on the `meta`
device: names, dtypes and shapes come from transformers' own revert of the weight conversions
(run on meta tensors), and the shard plan from huggingface_hub's own planner.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field, replace

import torch
from huggingface_hub import StateDictSplit, split_state_dict_into_shards_factory
from torch import nn
from transformers.core_model_loading import dot_natural_key, revert_weight_conversion

from offload_conformance.reference_impl.offload import owner_of
from offload_conformance.reference_impl.views import Piece, Trace, revert_traced, trace
from offload_conformance.reference_impl.writer import TensorPlan

Views = dict[str, tuple[Piece, ...]]


class ScheduleError(RuntimeError):
    """A model the streaming save cannot schedule."""


@dataclass(frozen=True, slots=True)  # slots: one per tensor or piece; no __dict__ each
class Group:
    """In-memory tensors that revert together, and the checkpoint tensors they become. `views` gives,
    per checkpoint tensor, the byte ranges of the sources it consists of, when the revert is pure data
    movement (reference_impl.views); None sends the group through transformers' revert."""

    sources: tuple[str, ...]
    outputs: tuple[str, ...]
    views: tuple[tuple[str, tuple[Piece, ...]], ...] | None = None
    # The group's revert depends on tensors outside it (a stateful renaming, e.g. GroupWeightRename renames
    # `norm2` only after it has seen a `norm1`): revert it among the rest of the state as meta placeholders.
    in_context: bool = False


@dataclass(frozen=True, slots=True)  # slots: one per tensor or piece; no __dict__ each
class Schedule:
    groups: tuple[Group, ...]
    outputs: dict[str, TensorPlan] = field(repr=False)  # checkpoint name -> its dtype and shape
    split: StateDictSplit = field(repr=False)


@dataclass(frozen=True, slots=True)  # slots: one per tensor or piece; no __dict__ each
class Planned:
    """A checkpoint tensor as scheduled: its plan, and the storage it has in the in-memory save."""

    plan: TensorPlan
    storage: tuple[int, int] | str  # unique within the save; "empty" for every empty storage (see _plan)
    storage_nbytes: int


def saved_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """model.state_dict() minus what the in-memory save drops: ignored keys and tied duplicates.

    The in-memory save drops a declared tie target (e.g. lm_head.weight) when it shares storage
    with its source. Offloaded twins are meta tensors with no storage, and accelerate's
    disk_offload even gives them separate parameter objects: a declared tie whose two sides are
    the same object, or both offloaded, counts as shared.
    """
    # keep_vars: the registered tensors themselves, not a detached copy of each (their data is read,
    # detached, only where a tensor is written). A plain dict as the destination: state_dict() then
    # records no per-module `_metadata` (tracemalloc: ~340 bytes per module, 300 KiB at 907 modules).
    state: dict[str, torch.Tensor] = {}
    model.state_dict(destination=state, keep_vars=True)
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


def _trace(model: nn.Module, state: dict[str, torch.Tensor]) -> Trace:
    try:
        return trace(model, state)
    except Exception as e:  # a partial group cannot revert: the caller groups it with its partners
        raise ScheduleError(f"cannot revert {sorted(state)[:3]}...: {type(e).__name__}: {e}") from e


def _reverts_alone(
    model: nn.Module, meta: dict[str, torch.Tensor], group: Group, full: dict[str, torch.Tensor]
) -> bool:
    """Whether reverting the group's tensors by themselves gives exactly its checkpoint tensors."""
    try:
        out, _ = _traced(model, {n: meta[n] for n in group.sources})
    except ScheduleError:
        return False
    return sorted(out) == sorted(group.outputs) and _fits(out, full)


def _traced_groups(
    model: nn.Module, meta: dict[str, torch.Tensor], full: dict[str, torch.Tensor]
) -> list[Group] | None:
    """One traced revert of the whole state, in the context the in-memory save reverts it in: checkpoint tensors
    computed from an in-memory tensor in common go together. A group whose checkpoint tensors are all byte ranges
    of its sources is copied as such; any other is reverted on real tensors at save time, by itself when that
    gives its checkpoint tensors, else among the rest of the state as meta placeholders. None when the trace does
    not say where some checkpoint tensor comes from."""
    t = _trace(model, meta)
    if list(t.out) != list(full) or not _fits(t.out, full) or not all(t.sources.values()):
        return None
    order = {name: i for i, name in enumerate(meta)}
    groups = []
    for outputs in _components({name: set(t.sources[name]) for name in t.out}):
        sources = tuple(sorted({s for o in outputs for s in t.sources[o]}, key=order.__getitem__))
        if all(t.pieces[o] is not None for o in outputs):
            groups.append(Group(sources, tuple(outputs), tuple((o, t.pieces[o]) for o in outputs)))  # type: ignore[misc]
        else:
            group = Group(sources, tuple(outputs))
            groups.append(group if _reverts_alone(model, meta, group, full) else replace(group, in_context=True))
    return groups


def _groups(model: nn.Module, meta: dict[str, torch.Tensor], full: dict[str, torch.Tensor]) -> list[Group]:
    """The fallback when the trace of the whole revert loses where a checkpoint tensor comes from.
    Each in-memory tensor alone when it reverts alone to exactly the full revert's outputs (renames,
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


def _prefix(name: str) -> str:
    parts = name.split(".")
    cut = next((i + 1 for i, p in enumerate(parts) if p.isdigit()), 0)
    return ".".join(parts[:cut])


def _runs(names: list[str]) -> list[list[str]]:
    """`names` in transformers' revert order (dot_natural_key), cut into runs of consecutive names that
    share a layer prefix (everything up to the first all-digit component, e.g. `model.layers.7`; names
    without one share the prefix ""). A conversion joins tensors of one layer, so each run reverts on
    its own; save-wide structures then never hold more than one run's revert."""
    # Not sorted at once: sorted() holds every name's key (a list of tuples, ~0.8 KiB per name: 400 KiB at
    # 515 names), and the tuples it frees stay on CPython's free lists. Names of one layer prefix are
    # consecutive in that order (two such prefixes differ within their own components), so each prefix's
    # names are sorted in turn, prefixes in their own order, and merged with the names that have no layer
    # prefix: one prefix's keys at a time. Equal keys (names that differ only in leading zeros) may order
    # otherwise than in sorted(): no model has such names.
    by_prefix: dict[str, list[str]] = {}
    for name in names:
        by_prefix.setdefault(_prefix(name), []).append(name)
    plain = (("", n) for n in sorted(by_prefix.pop("", []), key=dot_natural_key))
    layered = (
        (p, n) for p in sorted(by_prefix, key=dot_natural_key) for n in sorted(by_prefix[p], key=dot_natural_key)
    )
    runs: list[list[str]] = []
    last: str | None = None
    for prefix, name in heapq.merge(plain, layered, key=_natural_key_of_name):
        if prefix != last or not runs:
            runs.append([])
            last = prefix
        runs[-1].append(name)
    return runs


def _natural_key_of_name(prefixed: tuple[str, str]) -> list:
    return dot_natural_key(prefixed[1])


def _has_conversions(model: nn.Module) -> bool:
    """transformers' revert hands back the very dict it got when the model has nothing to revert."""
    empty: dict[str, torch.Tensor] = {}
    return revert_weight_conversion(model, empty) is not empty


def _plan(full: dict[str, torch.Tensor], token: int) -> dict[str, Planned]:
    """What the save keeps of a revert's meta outputs: dtype and shape, and the storage each output has
    (outputs that are views of one tensor share it: the shard planner keeps them together)."""
    storages: dict[int, int] = {}
    planned = {}
    for name, t in full.items():
        nbytes = t.untyped_storage().nbytes()
        # An empty storage allocates nothing and has data_ptr 0 in the in-memory save: every empty tensor there
        # has one same storage id (huggingface_hub's (device, data_ptr, size)), so all go to the first one's shard.
        storage = "empty" if nbytes == 0 else (token, storages.setdefault(t.untyped_storage()._cdata, len(storages)))
        planned[name] = Planned(TensorPlan(name, t.dtype, tuple(t.shape)), storage, nbytes)
    return planned


def _schedule_runs(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[Group], dict[str, Planned]] | None:
    """The schedule run by run (_runs); None when the runs do not revert on their own (a conversion
    joining tensors of different layers), or the model has no conversions (its order is the state's)."""
    if not _has_conversions(model):
        return None
    groups: list[Group] = []
    planned: dict[str, Planned] = {}
    for i, run in enumerate(_runs(list(state))):
        meta = {n: _meta(state[n]) for n in run}
        try:
            full = _revert(model, meta)
            run_groups = _traced_groups(model, meta, full) or _groups(model, meta, full)
        except ScheduleError:
            return None
        if any(n in planned for n in full):  # two runs name one checkpoint tensor: one conversion spans them
            return None
        groups += run_groups
        planned.update(_plan(full, i))
        # transformers compiles a pattern per tensor name some renamings match (e.g. HRM-Text's
        # `model.H_module.layers.7.self_attn.o_proj.weight`), and the re module keeps the last 512: up to
        # ~350 KiB that grows with the model. Purged run by run, the save keeps one run's.
        re.purge()
    return groups, planned


def _as_is(state: dict[str, torch.Tensor]) -> tuple[list[Group], dict[str, Planned]]:
    """The schedule of a save that reverts nothing (save_original_format=False): each in-memory tensor is a
    checkpoint tensor of its own name, all of its bytes."""
    groups = []
    for name, t in state.items():
        nbytes = t.numel() * t.element_size()
        groups.append(Group((name,), (name,), ((name, (Piece(name, 0, nbytes),) if nbytes else ()),)))
    return groups, _plan({name: _meta(t) for name, t in state.items()}, 0)


def schedule(
    model: nn.Module,
    max_shard_size: int | str,
    state: dict[str, torch.Tensor] | None = None,
    *,
    revert: bool = True,
    filename_pattern: str = "model{suffix}.safetensors",
) -> Schedule:
    """The checkpoint of `state` (default: saved_state(model)) as the in-memory save plans it: reverted to the
    checkpoint format unless `revert` is False (save_original_format=False), its files named by
    `filename_pattern` (a variant's)."""
    state = saved_state(model) if state is None else state
    found = _schedule_runs(model, state) if revert else _as_is(state)
    if found is None:  # the whole state at once
        meta = {n: _meta(t) for n, t in state.items()}
        full = _revert(model, meta)  # checkpoint names, in the order the in-memory save plans them
        groups = _traced_groups(model, meta, full) or _groups(model, meta, full)
        planned = _plan(full, 0)
        del meta, full
    else:
        groups, planned = found

    # The in-memory save hands huggingface_hub real tensors, and its planner keeps tensors that
    # share a storage in one shard, counted once at the storage's size. Meta tensors keep the same
    # aliasing through the revert (a view shares its base's StorageImpl, a copy gets its own), so
    # the storage identity and size the planner needs come from the meta outputs themselves (_plan).
    split = split_state_dict_into_shards_factory(
        {name: p.plan for name, p in planned.items()},
        get_storage_size=lambda plan: planned[plan.name].storage_nbytes,
        get_storage_id=lambda plan: planned[plan.name].storage,
        filename_pattern=filename_pattern,
        max_shard_size=max_shard_size,
    )
    return Schedule(tuple(groups), {name: p.plan for name, p in planned.items()}, split)
