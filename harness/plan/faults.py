"""Injectable save faults: the reference implementation, mutated, one realistic bug per fault.

This module is the one place where the harness builds on reference_impl: a fault is a correct
save with one bug in it (nothing that judges a checkpoint imports reference_impl). Every fault is
an IUT (`--impl faults:NAME`) that declares the failure classes the runner must report for it and
where it applies. `offload-conformance faults` prints the kill table.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from huggingface_hub.constants import SAFETENSORS_INDEX_FILE
from huggingface_hub.serialization._base import parse_size_to_int
from safetensors.torch import load_file, save_file

from offload_conformance.harness.outcomes import FailureClass
from offload_conformance.harness.outcomes import FailureClass as C
from offload_conformance.harness.plan.contexts import Context
from offload_conformance.harness.plan.options import OWN_STATE_DICT, Saver
from offload_conformance.harness.plan.shards import PER_TENSOR, SPLIT_GROUPS
from offload_conformance.reference_impl import save as reference_save
from offload_conformance.reference_impl.files import DEFAULT_MAX_SHARD_SIZE
from offload_conformance.reference_impl.offload import hooked_maps, owner_of, read_offloaded, unwrap
from offload_conformance.reference_impl.simple import StateDict, checkpoint_state, prepare_target, write_checkpoint


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    expected: frozenset[FailureClass]  # exactly the classes the runner must report
    save: Saver = field(kw_only=True)
    needs: frozenset[str] = frozenset()  # fixture kinds the bug needs to show
    avoids: frozenset[str] = frozenset()  # fixture kinds where it cannot show
    sharded_save: bool = False  # the bug only exists in a sharded save
    # Classes the bug adds on fixtures of a kind, e.g. an unreverted *rename* leaves the values
    # under another name: permuted.
    also: tuple[tuple[str, frozenset[FailureClass]], ...] = ()
    raises: bool = False  # the save raises: caught means an error of the save stage with exactly `expected`
    # Where the bug shows: the save options beside max_shard_size, the shard size (a forced one: plan.shards) and
    # the save context of its kill-table cell. In the empty context with no options the fault saves correctly.
    save_options: tuple[tuple[str, Any], ...] = ()
    shard_size: str | None = None
    context: Context = Context.EMPTY
    # The offload mode of its kill-table cell (None: the kill table's own); in the kill table's mode it saves correctly.
    mode: str | None = None

    def expected_for(self, kinds: frozenset[str]) -> frozenset[FailureClass]:
        return self.expected.union(*(extra for kind, extra in self.also if kind in kinds))


def _state_fault(transform: Callable[[Any, StateDict], StateDict], **checkpoint_kwargs: Any) -> Saver:
    """A reference save whose checkpoint-named state goes through `transform` before writing."""

    def save(model: Any, save_directory: str, max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE) -> None:
        target = prepare_target(model, save_directory)
        state = transform(model, checkpoint_state(model, **checkpoint_kwargs))
        write_checkpoint(model, state, target, max_shard_size)

    return save


def _correct_save_then(after: Callable[[Any, Path], None]) -> Saver:
    """A correct save, then `after(model, target)`."""

    def save(model: Any, save_directory: str, max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE) -> None:
        target = prepare_target(model, save_directory)
        write_checkpoint(model, checkpoint_state(model), target, max_shard_size)
        after(model, target)

    return save


def _file_fault(mutate: Callable[[Path], None]) -> Saver:
    """A correct save, then its files altered on disk."""
    return _correct_save_then(lambda _model, target: mutate(target))


def _victim(state: StateDict) -> str:
    """One tensor to damage: a norm weight where the model has one (small, always present), else the first."""
    return next((n for n in state if re.search(r"norm\.weight$", n)), next(iter(state)))


# --- state faults ---------------------------------------------------------------------------


def _zeros(model: Any, name: str) -> torch.Tensor:
    t = owner_of(model, name)  # the meta parameter or buffer: its shape and dtype, no state_dict per call
    return torch.zeros(t.shape, dtype=t.dtype)


def _drop_buffers(model: Any, state: StateDict) -> StateDict:
    buffers = {n for n, _ in model.named_buffers()}
    return {k: v for k, v in state.items() if k not in buffers}


def _swap_gate_up(model: Any, state: StateDict) -> StateDict:
    out = dict(state)
    for name, t in state.items():
        if name.endswith("experts.gate_up_proj"):
            gate, up = t.chunk(2, dim=1)
            out[name] = torch.cat([up, gate], dim=1)
    return out


def _swap_experts(model: Any, state: StateDict) -> StateDict:
    out = dict(state)
    for name in state:
        if ".experts.0." in name:
            other = name.replace(".experts.0.", ".experts.1.")
            out[name], out[other] = state[other], state[name]
    return out


def _shared_as_routed(model: Any, state: StateDict) -> StateDict:
    routed = {int(m.group(1)) for n in state if (m := re.search(r"\.experts\.(\d+)\.", n))}
    nxt = max(routed) + 1
    return {n.replace(".shared_experts.", f".experts.{nxt}."): t for n, t in state.items()}


def _duplicate_tied(model: Any, state: StateDict) -> StateDict:
    tied = dict(getattr(model, "all_tied_weights_keys", None) or {})
    out = dict(state)
    for target, source in tied.items():
        if source in state and target not in state:
            out[target] = state[source].clone()
    return out


def _drop_tied(model: Any, state: StateDict) -> StateDict:
    sources = set((getattr(model, "all_tied_weights_keys", None) or {}).values())
    return {k: v for k, v in state.items() if k not in sources}


def _cast_one(model: Any, state: StateDict) -> StateDict:
    name = _victim(state)
    other = torch.float32 if state[name].dtype != torch.float32 else torch.bfloat16
    return {**state, name: state[name].to(other)}


def _perturb_one(model: Any, state: StateDict) -> StateDict:
    name = _victim(state)
    t = state[name].clone()
    t.view(-1)[0] += 0.5
    return {**state, name: t}


def _drop_last_expert(model: Any, state: StateDict) -> StateDict:
    last = max(int(m.group(1)) for n in state if (m := re.search(r"\.experts\.(\d+)\.", n)))
    return {k: v for k, v in state.items() if f".experts.{last}." not in k}


def _transpose_one(model: Any, state: StateDict) -> StateDict:
    name = next(n for n in state if ".experts.0." in n and state[n].shape[0] != state[n].shape[-1])
    return {**state, name: state[name].t().contiguous()}


def _with_metadata(model: Any, save_directory: str, max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE) -> None:
    target = prepare_target(model, save_directory)
    write_checkpoint(
        model, checkpoint_state(model), target, max_shard_size, metadata={"format": "pt", "offloaded": "true"}
    )


# --- quantized-checkpoint faults ---------------------------------------------------------------

SCALE = re.compile(r"\.weight_scale(_inv)?$")


def _scales(state: StateDict) -> list[str]:
    return [n for n in state if SCALE.search(n)]


def _drop_a_scale(model: Any, state: StateDict) -> StateDict:
    victim = _scales(state)[0]
    return {k: v for k, v in state.items() if k != victim}


def _scale_from_another(model: Any, state: StateDict) -> StateDict:
    """One weight's scale replaced by another's of the same shape: another expert's where there are experts,
    else another layer's."""
    scales = sorted(_scales(state), key=lambda n: ".experts.0." not in n)  # an expert's scale first
    for victim in scales:
        for donor in scales:
            same = state[donor].shape == state[victim].shape and donor != victim
            if same and not torch.equal(state[donor], state[victim]):
                return {**state, victim: state[donor].clone()}
    raise ValueError("no two scales of the same shape")


def _written_dequantized(model: Any, state: StateDict) -> StateDict:
    """One float8 weight written as bf16, as a save that upcasts before writing would."""
    name = next(n for n, t in state.items() if t.dtype == torch.float8_e4m3fn)
    return {**state, name: state[name].to(torch.bfloat16)}


def _drop_global_scale(model: Any, state: StateDict) -> StateDict:
    victim = next(n for n in state if n.endswith(".weight_global_scale"))
    return {k: v for k, v in state.items() if k != victim}


def _rename_over_matching(model: Any, state: StateDict) -> StateDict:
    """A rename meant for `.weight` that also matches `.weight_scale_inv` (a pattern without an anchor)."""
    return {re.sub(r"\.weight_scale_inv$", ".w_scale_inv", k): v for k, v in state.items()}


def _drop_quantization_config(d: Path) -> None:
    path = d / "config.json"
    config = json.loads(path.read_text())
    config.pop("quantization_config", None)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _cast_int_buffers(model: Any, state: StateDict) -> StateDict:
    """Integer and bool tensors (DeepSeek-V4's int64 `tid2eid`) written in the model's float dtype."""
    return {k: v.to(model.dtype) if not (v.is_floating_point() or v.is_complex()) else v for k, v in state.items()}


# --- faults that leave the model changed (class model-changed) -------------------------------


def _change_a_weight(model: Any) -> None:
    """One element of a norm weight changed where the model reads it from: offload storage or the module."""
    name = next((n for n, _ in model.named_parameters() if n.endswith("norm.weight")), None)
    name = name or next(n for n, _ in model.named_parameters())
    t = owner_of(model, name)
    if t.device.type != "meta":
        with torch.no_grad():
            t.view(-1)[0] += 1
        return
    for weights_map, key in hooked_maps(model, name):
        try:
            value = weights_map[key].clone()
        except KeyError:
            continue
        value.view(-1)[0] += 1
        storage, full_key = unwrap(weights_map, key)
        # cpu_offload keeps a plain dict; OffloadedWeightsLoader serves its `state_dict` before its files.
        target = storage if isinstance(storage, dict) else storage.state_dict
        target[full_key] = value
        return
    raise RuntimeError(f"{name} is offloaded but no hook holds it")


def _save_then(after: Callable[[Any], None]) -> Saver:
    """A correct save, then `after(model)`: the checkpoint is right, the model is not left as it was."""
    return _correct_save_then(lambda model, _target: after(model))


def _leave_loaded(model: Any) -> None:
    """One offloaded module's weights loaded onto it (its hook's pre_forward) and never offloaded again: the
    model holds in RAM what it kept on disk (a post_forward that forgets to put them back)."""
    for module in model.modules():
        hook = getattr(module, "_hf_hook", None)
        if getattr(hook, "offload", False) and any(p.device.type == "meta" for p in module.parameters(recurse=False)):
            hook.pre_forward(module)
            return
    raise RuntimeError("no offloaded module with a hook")


def _strip_hooks(model: Any) -> None:
    from accelerate.hooks import remove_hook_from_module

    remove_hook_from_module(model, recurse=True)


def _raise_after_changing(model: Any, save_directory: str, **_: Any) -> None:
    _change_a_weight(model)
    raise RuntimeError("could not write the checkpoint (after changing a weight of the model)")


def _second_generation(model: Any, save_directory: str, max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE) -> None:
    """Right when the model was loaded from the fixture, wrong when it was loaded from a save: stands for a save
    that is not idempotent on its own output (names reverted twice, a rename that matches its own result). The
    fixture is told from a save by its manifest.json."""
    source = Path(getattr(model, "name_or_path", "") or ".")
    transform = _perturb_one if not (source / "manifest.json").exists() else (lambda m, s: s)
    _state_fault(transform)(model, save_directory, max_shard_size)


# --- faults of the save contexts, the save options and forced shard sizes -----------------------
# Each is the reference's own save with one bug that shows only where its context, option or size is.


def _reference(model: Any, save_directory: str, **options: Any) -> None:
    from offload_conformance.reference_impl import save_pretrained

    save_pretrained(model, save_directory, **options)


def _keeping(name: str) -> Saver:
    """A correct save that leaves `name`, from an earlier save, where it was (upstream's cleanup misses it)."""

    def save(model: Any, save_directory: str, **options: Any) -> None:
        old = Path(save_directory) / name
        kept = old.read_bytes() if old.is_file() else None
        _reference(model, save_directory, **options)
        if kept is not None and not old.exists():
            old.write_bytes(kept)

    return save


def _clears_target_first(model: Any, save_directory: str, **options: Any) -> None:
    """Empties the target's weight files before writing (a 'clean save'): in place, the offloaded weights it has
    to read are in those very files."""
    target = Path(save_directory)
    for p in target.glob("*.safetensors") if target.is_dir() else ():
        p.unlink()
    _reference(model, save_directory, **options)


def _cleans_every_shard(model: Any, save_directory: str, **options: Any) -> None:
    """Deletes every file named like a shard (`-XXXXX-of-YYYYY`) that it does not write, whatever its weights name:
    upstream's cleanup with its `startswith(weights name)` test left out."""
    _reference(model, save_directory, **options)
    for p in Path(save_directory).iterdir():
        if re.fullmatch(r".*-\d{5}-of-\d{5}\.(bin|safetensors)", p.name) and not p.name.startswith("model"):
            p.unlink()  # the save's own shards (model-*) are its to keep


def _ignoring(option: str) -> Saver:
    """The reference's save with the save option `option` dropped: saved as if it had not been given."""

    def save(model: Any, save_directory: str, **options: Any) -> None:
        options.pop(option, None)
        _reference(model, save_directory, **options)

    return save


def _on_every_rank(model: Any, save_directory: str, **options: Any) -> None:
    """The reference's save as if this process were rank 0, whatever torch.distributed says."""
    with mock.patch.object(reference_save, "_rank", return_value=0):
        _reference(model, save_directory, **options)


def _given_meta_as_zeros(model: Any, save_directory: str, state_dict: StateDict | None = None, **options: Any) -> None:
    """An explicit state_dict's offloaded (meta) entries written as zeros: never loaded from offload storage."""
    if state_dict is not None:
        state_dict = {n: _zeros(model, n) if t.device.type == "meta" else t for n, t in state_dict.items()}
    _reference(model, save_directory, state_dict=state_dict, **options)


def _oversize_tensor_shares(
    model: Any, save_directory: str, max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE
) -> None:
    """A tensor over max_shard_size is added to the shard being filled instead of getting one of its own (the
    limit raised to the largest tensor): only a size below some tensor shows it."""
    state = checkpoint_state(model)
    limit = max_shard_size if isinstance(max_shard_size, int) else parse_size_to_int(max_shard_size)
    largest = max(t.numel() * t.element_size() for t in state.values())
    write_checkpoint(model, state, prepare_target(model, save_directory), max(limit, largest))


def _groups_planned_apart(model: Any, save_directory: str, max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE) -> None:
    """The tensors one fused tensor reverts into planned as separate items: the in-memory save hands
    huggingface_hub's planner views of the fused tensor, which it keeps in one shard, so a copy of each shows only
    where a fused group is larger than max_shard_size."""
    state = checkpoint_state(model)
    write_checkpoint(
        model, {n: t.clone() for n, t in state.items()}, prepare_target(model, save_directory), max_shard_size
    )


# --- file faults ----------------------------------------------------------------------------

INDEX = SAFETENSORS_INDEX_FILE


def _index_wrong_shard(d: Path) -> None:
    index = json.loads((d / INDEX).read_text())
    weight_map = index["weight_map"]
    name = sorted(weight_map)[0]
    weight_map[name] = next(f for f in sorted(set(weight_map.values())) if f != weight_map[name])
    (d / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def _stale_shard(d: Path) -> None:
    # What a larger earlier save leaves behind when the new save does not clean up.
    first = sorted(d.glob("*.safetensors"))[0]
    tensors = load_file(first)
    save_file(dict(list(tensors.items())[:1]), d / "model-00099-of-00099.safetensors", metadata={"format": "pt"})


def _drop_index(d: Path) -> None:
    (d / INDEX).unlink()


def _index_total_size(d: Path) -> None:
    index = json.loads((d / INDEX).read_text())
    index["metadata"]["total_size"] += 2  # e.g. a tensor counted in the wrong dtype
    (d / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def _oversize(model: Any, save_directory: str, max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE) -> None:
    """Shards planned against twice the limit (e.g. sizes counted in the wrong dtype)."""
    limit = max_shard_size if isinstance(max_shard_size, int) else parse_size_to_int(max_shard_size)
    target = prepare_target(model, save_directory)
    write_checkpoint(model, checkpoint_state(model), target, 2 * limit)


def write_reordered(path: Path) -> None:
    """Rewrite a safetensors file with its tensors in reverse name order: a valid file whose
    bytes differ only in layout (safetensors itself sorts by dtype size, then name)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    metadata = header.pop("__metadata__", None)
    data = raw[8 + n :]
    new_header: dict[str, Any] = {"__metadata__": metadata} if metadata is not None else {}
    blobs, offset = [], 0
    for name in sorted(header, reverse=True):
        begin, end = header[name]["data_offsets"]
        new_header[name] = {**header[name], "data_offsets": [offset, offset + end - begin]}
        blobs.append(data[begin:end])
        offset += end - begin
    text = json.dumps(new_header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def _reorder_all(d: Path) -> None:
    for p in d.glob("*.safetensors"):
        write_reordered(p)


# --- faults of the load paths: hand-written device maps and accelerate's own loading ------------------------------
# Each is the reference's own save with one bug that shows only where the model is placed as its mode places it.


def _layer(name: str) -> str | None:
    match = re.match(r"(.*\.layers\.\d+)\.", name)
    return match.group(1) if match else None


def _offload_seen_in_layers_only(
    model: Any, save_directory: str, max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE
) -> None:
    """Offloading detected by the decoder layers alone: a model whose layers are all in RAM is saved as an in-memory
    one, its offloaded tensors (lm_head alone on disk) written as the zeros of their meta placeholders."""
    layers_offloaded = any(_layer(n) and t.device.type == "meta" for n, t in model.state_dict().items())
    if layers_offloaded:
        _reference(model, save_directory, max_shard_size=max_shard_size)
    else:
        _state_fault(lambda m, s: s, read=_zeros)(model, save_directory, max_shard_size)


def _layers_offloaded_whole(
    model: Any, save_directory: str, max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE
) -> None:
    """A decoder layer taken as offloaded whole when its first tensor is: each of its tensors read from offload
    storage, which a layer split below the layer level (attention on disk, the rest in RAM) does not hold."""
    first: dict[str, bool] = {}
    for name, t in model.state_dict().items():
        layer = _layer(name)
        if layer is None:
            continue
        if first.setdefault(layer, t.device.type == "meta") and t.device.type != "meta":
            read_offloaded(model, name)  # raises OffloadError: no hook holds a tensor that was never offloaded
    _reference(model, save_directory, max_shard_size=max_shard_size)


def _placed_by_any_tensor(model: Any, name: str) -> torch.Tensor:
    """A module taken as in RAM when any of its own tensors is: its meta ones read as the zeros of their placeholders.
    Right where a module is offloaded with its buffers, wrong where one on disk keeps a buffer in RAM (a router on
    disk without offload_buffers)."""
    module = model.get_submodule(name.rpartition(".")[0])
    own = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
    if any(t.device.type != "meta" for t in own):
        return _zeros(model, name)
    return read_offloaded(model, name)


def _tied_read_by_own_name(model: Any, save_directory: str, max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE) -> None:
    """Every offloaded tensor read back by its own name before the ties are dropped (transformers' save does so): a
    tied weight accelerate's loading stored once, under its first name, is not found under the other."""
    for name, t in model.state_dict().items():
        if t.device.type == "meta":
            read_offloaded(model, name)
    _reference(model, save_directory, max_shard_size=max_shard_size)


def _faults() -> tuple[Fault, ...]:
    F = frozenset
    return (
        Fault(
            "skip-persistent-buffers",
            "persistent buffers (e_score_correction_bias) not saved",
            F({C.MISSING_TENSOR}),
            F({"buffer-persistent"}),
            save=_state_fault(lambda m, s: s, before_revert=_drop_buffers),
        ),
        Fault(
            "offloaded-as-zeros",
            "offloaded tensors written as zeros, never read back from disk",
            F({C.META_OR_EMPTY}),
            save=_state_fault(lambda m, s: s, read=_zeros),
        ),
        Fault(
            "unreverted-fusion",
            "fused in-memory experts saved without reverting to checkpoint names",
            F({C.MISSING_TENSOR, C.EXTRA_TENSOR}),
            F({"fused"}),
            save=_state_fault(lambda m, s: s, revert=False),
            also=(("renamed", F({C.PERMUTED})),),
        ),
        Fault(
            "swap-experts", "experts 0 and 1 exchanged", F({C.PERMUTED}), F({"fused"}), save=_state_fault(_swap_experts)
        ),
        Fault(
            "gate-up-order",
            "fused gate_up_proj split in the wrong order (up as gate)",
            F({C.PERMUTED}),
            F({"fused"}),
            save=_state_fault(lambda m, s: s, before_revert=_swap_gate_up),
        ),
        Fault(
            "shared-as-routed",
            "shared_experts saved under a routed expert's name (transformers #45782 class)",
            F({C.MISSING_TENSOR, C.EXTRA_TENSOR, C.PERMUTED}),
            F({"shared-experts"}),
            save=_state_fault(_shared_as_routed),
        ),
        Fault(
            "duplicate-tied",
            "tied weight saved twice",
            F({C.EXTRA_TENSOR}),
            F({"tied"}),
            save=_state_fault(_duplicate_tied),
        ),
        Fault(
            "drop-tied",
            "tied weight dropped entirely",
            F({C.MISSING_TENSOR}),
            F({"tied"}),
            save=_state_fault(_drop_tied),
        ),
        Fault("cast-dtype", "one tensor saved in another dtype", F({C.DTYPE}), save=_state_fault(_cast_one)),
        Fault("perturb-values", "one element of one tensor off", F({C.VALUES}), save=_state_fault(_perturb_one)),
        Fault(
            "drop-last-expert",
            "off-by-one in the expert count: the last expert not saved",
            F({C.MISSING_TENSOR}),
            F({"fused"}),
            save=_state_fault(_drop_last_expert),
        ),
        Fault(
            "transpose-expert",
            "one expert projection saved transposed",
            F({C.SHAPE}),
            F({"fused"}),
            save=_state_fault(_transpose_one),
        ),
        Fault("header-metadata", "extra safetensors metadata", F({C.HEADER_METADATA}), save=_with_metadata),
        Fault(
            "index-wrong-shard",
            "index names the wrong shard for one tensor",
            F({C.INDEX}),
            sharded_save=True,
            save=_file_fault(_index_wrong_shard),
        ),
        Fault(
            "drop-index",
            "sharded save without its index",
            F({C.INDEX}),
            sharded_save=True,
            save=_file_fault(_drop_index),
        ),
        Fault(
            "stale-shard",
            "a stale shard from an earlier save left beside the new files",
            F({C.SHARD_LAYOUT}),
            save=_file_fault(_stale_shard),
        ),
        Fault(
            "drop-scale",
            "one quantized weight's scale not saved",
            F({C.MISSING_TENSOR}),
            F({"quantized"}),
            save=_state_fault(_drop_a_scale),
        ),
        Fault(
            "scale-from-another",
            "one weight saved with another expert's (or layer's) scale",
            F({C.PERMUTED}),
            F({"quantized"}),
            save=_state_fault(_scale_from_another),
        ),
        Fault(
            "written-dequantized",
            "a float8 weight written dequantized (bf16)",
            F({C.DTYPE}),
            F({"quantized-fp8"}),
            save=_state_fault(_written_dequantized),
        ),
        Fault(
            "drop-global-scale",
            "NVFP4's weight_global_scale not saved",
            F({C.MISSING_TENSOR}),
            F({"ct-nvfp4"}),
            save=_state_fault(_drop_global_scale),
        ),
        Fault(
            "drop-quantization-config",
            "quantization_config dropped from config.json",
            F({C.QUANTIZATION_CONFIG, C.OTHER_FILE}),
            F({"quantized"}),
            save=_file_fault(_drop_quantization_config),
        ),
        Fault(
            "scale-inv-renamed",
            "*_scale_inv renamed by a pattern meant for .weight (transformers #46265 class)",
            F({C.MISSING_TENSOR, C.EXTRA_TENSOR, C.PERMUTED}),
            F({"quantized-fp8"}),
            save=_state_fault(_rename_over_matching),
        ),
        Fault(
            "tensor-order",
            "tensors written in a nondeterministic (non-canonical) order",
            F({C.ORDER}),
            save=_file_fault(_reorder_all),
        ),
        Fault(
            "cast-int-buffer",
            "int64/bool buffers (DeepSeek-V4's tid2eid) written in the model's float dtype",
            F({C.DTYPE}),
            F({"buffer-int"}),
            save=_state_fault(_cast_int_buffers),
        ),
        Fault(
            "index-total-size",
            "index metadata.total_size off (both sides of a comparison could share it: also an absolute check)",
            F({C.INDEX}),
            sharded_save=True,
            save=_file_fault(_index_total_size),
        ),
        Fault(
            "shard-oversize",
            "shards planned against twice max_shard_size",
            F({C.SHARD_LAYOUT, C.SHARD_OVERSIZE}),
            sharded_save=True,
            save=_oversize,
        ),
        Fault(
            "change-weight",
            "a correct checkpoint, but one weight of the model changed in place (in offload storage)",
            F({C.MODEL_CHANGED}),
            save=_save_then(_change_a_weight),
        ),
        Fault(
            "left-loaded",
            "a correct checkpoint, but one offloaded module's weights left loaded in RAM (never offloaded again)",
            F({C.MODEL_CHANGED}),
            save=_save_then(_leave_loaded),
        ),
        Fault(
            "strip-hooks",
            "a correct checkpoint, but the model's offload hooks removed (accelerate's remove_hook_from_module)",
            F({C.MODEL_CHANGED}),
            save=_save_then(_strip_hooks),
        ),
        Fault(
            "raise-after-changing",
            "the save changes a weight of the model, then raises",
            F({C.MODEL_CHANGED}),
            raises=True,
            save=_raise_after_changing,
        ),
        Fault(
            "stale-single-file",
            "a sharded save over an earlier single-file save leaves model.safetensors (from_pretrained loads it)",
            F({C.FILE_SET}),
            sharded_save=True,
            context=Context.OVER_SINGLE,
            save=_keeping("model.safetensors"),
        ),
        Fault(
            "stale-index",
            "a single-file save over an earlier sharded save leaves model.safetensors.index.json",
            F({C.FILE_SET}),
            context=Context.OVER_SHARDED,
            save=_keeping(INDEX),
        ),
        Fault(
            "clears-target-first",
            "the target's weight files removed before the save reads the offloaded weights (in place: its source)",
            F({C.DIRECTORY_CHANGED, C.MODEL_CHANGED}),
            raises=True,
            context=Context.IN_PLACE,
            save=_clears_target_first,
        ),
        Fault(
            "cleans-every-shard",
            "the cleanup of stale shards deletes another format's shards too (pytorch_model-*.bin, consolidated-*)",
            F({C.FILE_SET}),
            context=Context.BESIDE_OTHER_FORMATS,
            save=_cleans_every_shard,
        ),
        Fault(
            "saves-on-every-process",
            "is_main_process=False not honoured: a process that is not the main one writes, and cleans the target",
            F({C.DIRECTORY_CHANGED}),
            save_options=(("is_main_process", False),),
            context=Context.OVER_SHARDED,
            save=_ignoring("is_main_process"),
        ),
        Fault(
            "saves-on-every-rank",
            "the torch.distributed rank not checked: rank 1 writes too, and cleans the target",
            F({C.DIRECTORY_CHANGED}),
            save_options=(("rank", 1),),
            context=Context.OVER_SHARDED,
            save=_on_every_rank,
        ),
        Fault(
            "ignores-push-to-hub",
            "push_to_hub=True not honoured: nothing uploaded, no model card written",
            F({C.HUB_UPLOAD, C.FILE_SET}),
            save_options=(("push_to_hub", True),),
            save=_ignoring("push_to_hub"),
        ),
        Fault(
            "pushes-without-token",
            "the token given for push_to_hub not passed to the Hub: the upload goes as whoever is logged in",
            F({C.HUB_UPLOAD}),
            save_options=(("push_to_hub", True),),
            save=_ignoring("token"),
        ),
        Fault(
            "ignores-variant",
            "variant= not applied to the file names",
            F({C.SHARD_LAYOUT}),
            save_options=(("variant", "v1"),),
            save=_ignoring("variant"),
        ),
        Fault(
            "ignores-original-format",
            "save_original_format=False not honoured: the weights reverted anyway",
            F({C.MISSING_TENSOR, C.EXTRA_TENSOR}),
            F({"fused"}),
            save_options=(("save_original_format", False),),
            also=(("renamed", F({C.PERMUTED})),),
            save=_ignoring("save_original_format"),
        ),
        Fault(
            "given-meta-as-zeros",
            "an explicit state_dict's offloaded (meta) entries written as zeros",
            F({C.META_OR_EMPTY}),
            also=(("tied", F({C.EXTRA_TENSOR})),),  # zeros are no longer the tied tensor: both names are written
            # a quantized model saves its own tensors whatever state_dict it is given (upstream's rule too)
            avoids=F({"quantized"}),
            save_options=(("state_dict", OWN_STATE_DICT),),
            save=_given_meta_as_zeros,
        ),
        Fault(
            "oversize-tensor-shares",
            "a tensor over max_shard_size shares a shard instead of getting its own",
            F({C.SHARD_LAYOUT}),
            F({"fused"}),  # elsewhere the in-memory save keeps to the limit, and shard-oversize is reported too
            shard_size=PER_TENSOR,
            save=_oversize_tensor_shares,
        ),
        Fault(
            "groups-planned-apart",
            "the tensors reverted from one fused tensor planned as separate items (split across shards)",
            F({C.SHARD_LAYOUT}),
            F({"fused"}),
            shard_size=SPLIT_GROUPS,
            save=_groups_planned_apart,
        ),
        Fault(
            "offload-seen-in-layers-only",
            "offloading detected by the decoder layers alone: lm_head alone on disk saved as zeros",
            F({C.META_OR_EMPTY}),
            avoids=F({"tied", "quantized"}),  # a tied head follows its embedding into RAM: nothing is offloaded
            mode="map-head-on-disk",
            save=_offload_seen_in_layers_only,
        ),
        Fault(
            "layers-offloaded-whole",
            "a decoder layer taken as offloaded whole when its first tensor is (a layer split below the layer level)",
            F(),
            avoids=F({"quantized"}),
            raises=True,
            mode="map-layer-split",
            save=_layers_offloaded_whole,
        ),
        Fault(
            "placed-by-any-tensor",
            "a module taken as in RAM when any tensor of it is: a router on disk with its buffer in RAM saved as zeros",
            F({C.META_OR_EMPTY}),
            F({"buffer-persistent"}),
            avoids=F({"quantized"}),
            mode="map-routers-on-disk",
            save=_state_fault(lambda m, s: s, read=_placed_by_any_tensor),
        ),
        Fault(
            "tied-read-by-own-name",
            "each offloaded tensor read back by its own name: a tie accelerate stored once is not found",
            # offload-read is the load's, not the fault's: accelerate's dispatch stores a tie once, so the tied
            # head's own storage does not list it (accelerate_dispatched_tied_disk_forward_keyerror.py).
            F({C.OFFLOAD_READ}),
            F({"tied"}),
            avoids=F({"quantized"}),
            raises=True,
            mode="dispatch-disk-full+offload_buffers",
            save=_tied_read_by_own_name,
        ),
        Fault(
            "not-idempotent",
            "right from the fixture, other bytes when saving a model loaded from its own save",
            F({C.RESAVE}),
            save=_second_generation,
        ),
    )


FAULTS: dict[str, Fault] = {f.name: f for f in _faults()}
