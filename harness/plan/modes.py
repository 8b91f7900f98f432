"""Offload modes: how a fixture is loaded (and possibly offloaded afterwards) before it is saved."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where a model is placed, not by whoever only plans cells
    from torch import nn


class Placement(StrEnum):
    """Where a mode puts the weights. The accelerate-* placements load in memory, then apply accelerate's
    own helpers: the path compressed-tensors / llm-compressor users take; such a model has no hf_device_map.
    FROM_CONFIG and CUSTOM_CODE keep everything in memory but save a model the conversion engine never loaded
    (harness.run.from_config, harness.run.custom_code)."""

    IN_MEMORY = "in-memory"
    DISK_FULL = "disk-full"
    DISK_PARTIAL = "disk-partial"
    # device_map="auto" with RAM for half the weights: accelerate fills the CPU in module order and puts the rest on
    # disk, so the split falls inside the decoder's layer list (layers.1 in RAM, layers.10 on disk).
    DISK_AUTO = "disk-auto"
    EXPERTS_ON_DISK = "experts-on-disk"
    ACCELERATE_CPU = "accelerate-cpu"
    ACCELERATE_DISK = "accelerate-disk"
    # Device maps a user writes by hand (harness.plan.modes.HAND_WRITTEN): each places what a rule-based map never does.
    MAP_HEAD_ON_DISK = "map-head-on-disk"  # lm_head alone on disk: a tied embedding stays on cpu, its tie on disk
    MAP_ROUTERS_ON_DISK = "map-routers-on-disk"  # MoE routers on disk; without offload_buffers their buffers stay
    MAP_ALL_DISK = "map-all-disk"  # device_map={"": "disk"}, written out instead of derived by max_memory
    MAP_LAYER_SPLIT = "map-layer-split"  # one decoder layer split below the layer: its attention on disk, rest on cpu
    FROM_CONFIG = "from-config"
    CUSTOM_CODE = "custom-code"


BASELINE_MODE = "in-memory"
# The placements that leave every weight in RAM (a twin rebuilt from the loaded model included).
IN_RAM = frozenset({Placement.IN_MEMORY, Placement.FROM_CONFIG, Placement.CUSTOM_CODE})


class Loader(StrEnum):
    """Who loads the checkpoint into the model; a mode's name starts with it (transformers' own: no prefix)."""

    TRANSFORMERS = ""  # from_pretrained(device_map=..., offload_folder=...)
    # accelerate's big-model guide: the model built empty from its config, tie_weights(), then
    DISPATCH = "dispatch"  # load_checkpoint_and_dispatch
    LOAD_CHECKPOINT = "load_checkpoint"  # load_checkpoint_in_model, then dispatch_model


class OffloadFolder(StrEnum):
    """The offload_folder from_pretrained is given."""

    NEW = "new"  # a path that does not exist yet: transformers creates it
    EXISTING = "existing"  # an empty directory that exists (a TemporaryDirectory, a folder reused between loads)
    # None: transformers then offloads only what it can read from the checkpoint's own files, and refuses
    # (ValueError) a model whose weights it must rewrite first.
    NONE = "none"


class Step(StrEnum):
    """What a user does between the load and the save; the mode's name ends with it. The baseline stays the plain
    in-memory save: neither step may change a weight or a buffer of the fixtures' models."""

    NONE = ""
    FORWARD = "+forward"  # calibration or evaluation: a forward pass in eval mode
    # train() / a forward pass in train mode / eval(): transformers 5.25.0 re-kernelizes on each switch (use_kernels
    # on by default) inside keep_accelerate_hooks, which swaps the forwards of offloaded modules.
    TRAIN_EVAL = "+train-eval"
    # model.resize_token_embeddings(vocab_size): the idiom `resize_token_embeddings(len(tokenizer))` run with no token
    # added, which on an offloaded model replaces the embedding's hook by a new one.
    RESIZE = "+resize-embeddings"
    # accelerate.hooks.remove_hook_from_submodules: accelerate's documented undo of cpu_offload / disk_offload, which
    # puts every offloaded weight back on the device it had (the hook's original_devices) before a save from RAM.
    REMOVE_HOOKS = "+remove-hooks"


@dataclass(frozen=True)
class Mode:
    name: str
    placement: Placement
    offload_buffers: bool
    description: str
    step: Step = Step.NONE
    loader: Loader = Loader.TRANSFORMERS
    # In the matrix when no --mode is given (the step variants cost a forward pass each: see _modes).
    default: bool = True
    offload_folder: OffloadFolder = OffloadFolder.NEW

    @property
    def in_ram_at_save(self) -> bool:
        """Every weight in RAM when the save starts: loaded so, or put back there by the step (`+remove-hooks`)."""
        return self.placement in IN_RAM or self.step is Step.REMOVE_HOOKS

    def load_kwargs(self, skeleton: nn.Module, offload_folder: Path) -> dict[str, object]:
        """from_pretrained keyword arguments; `skeleton` is the model built on the meta device."""
        common: dict[str, object] = {"offload_buffers": self.offload_buffers}
        if self.offload_folder is not OffloadFolder.NONE:
            common["offload_folder"] = str(offload_folder)
        match self.placement:
            case Placement.IN_MEMORY | Placement.ACCELERATE_CPU | Placement.ACCELERATE_DISK:
                return {}
            case Placement.FROM_CONFIG | Placement.CUSTOM_CODE:
                return {}  # loaded in memory, then rebuilt outside the conversion engine
            case Placement.DISK_FULL:
                # On a CPU-only machine this yields hf_device_map == {"": "disk"}.
                return {"device_map": "auto", "max_memory": {"cpu": 1}, **common}
            case Placement.DISK_PARTIAL:
                return {"device_map": partial_device_map(skeleton), **common}
            case Placement.DISK_AUTO:
                return {"device_map": "auto", "max_memory": {"cpu": weight_bytes(skeleton) // 2}, **common}
            case Placement.EXPERTS_ON_DISK:
                return {"device_map": experts_device_map(skeleton, self.offload_buffers), **common}
            case Placement.MAP_ALL_DISK:
                return {"device_map": {"": "disk"}, **common}
            case Placement.MAP_HEAD_ON_DISK | Placement.MAP_ROUTERS_ON_DISK | Placement.MAP_LAYER_SPLIT:
                return {"device_map": on_disk(skeleton, HAND_WRITTEN[self.placement](skeleton)), **common}
        raise ValueError(f"mode {self.name!r}: placement {self.placement!r} has no load arguments")

    def after_load(self, model: Any, offload_folder: Path) -> None:
        """Offloading applied to an already loaded model."""
        import torch
        from accelerate import cpu_offload, disk_offload

        cpu = torch.device("cpu")
        if self.placement is Placement.ACCELERATE_CPU:
            cpu_offload(model, execution_device=cpu, offload_buffers=self.offload_buffers)
        elif self.placement is Placement.ACCELERATE_DISK:
            disk_offload(model, str(offload_folder), execution_device=cpu, offload_buffers=self.offload_buffers)


def weight_bytes(skeleton: nn.Module) -> int:
    """The bytes of the model's parameters and buffers (a skeleton on the meta device knows them)."""
    tensors = [*skeleton.parameters(), *skeleton.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def _base(skeleton: nn.Module) -> tuple[str, nn.Module]:
    """The child holding the decoder layers (model.model for a causal LM)."""
    from torch import nn

    for name, child in skeleton.named_children():
        if any(isinstance(c, nn.ModuleList) for c in child.children()):
            return name, child
    return "", skeleton


def partial_device_map(skeleton: nn.Module) -> dict[str, str]:
    """Decoder layers on disk; embeddings, final norm, rotary embedding and head on cpu."""
    from torch import nn

    base_name, base = _base(skeleton)
    prefix = f"{base_name}." if base_name else ""
    device_map: dict[str, str] = {}
    for name, child in base.named_children():
        if isinstance(child, nn.ModuleList):
            device_map.update({f"{prefix}{name}.{i}": "disk" for i in range(len(child))})
        else:
            device_map[f"{prefix}{name}"] = "cpu"
    device_map.update(_own_tensors(base, prefix))  # parameters / buffers held by the split modules themselves
    if base_name:  # the rest of the model; when the layers are the model's own children, the loop placed them all
        device_map.update({name: "cpu" for name, _ in skeleton.named_children() if name != base_name})
        device_map.update(_own_tensors(skeleton, ""))
    return device_map


def _own_tensors(module: nn.Module, prefix: str) -> dict[str, str]:
    """A module split over devices places its children; the tensors it holds itself (e.g. a router's
    `expert_bias` beside its experts) need a device of their own, by parameter name."""
    own = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
    return {f"{prefix}{name}": "cpu" for name, _ in own}


def _routers(skeleton: nn.Module, experts: set[str], with_buffers: bool = True) -> set[str]:
    """The MoE routers beside `experts` (a `gate` or `router` sibling module), those holding buffers only or all."""
    parents = {t.rsplit(".", 1)[0] for t in experts}
    return {
        n
        for n, m in skeleton.named_modules()
        if n.rsplit(".", 1)[0] in parents
        and n.rsplit(".", 1)[-1] in ("gate", "router")
        and (not with_buffers or any(True for _ in m.buffers()))
    }


def _experts(skeleton: nn.Module) -> set[str]:
    return {name for name, _ in skeleton.named_modules() if name.rsplit(".", 1)[-1] == "experts"}


def experts_device_map(skeleton: nn.Module, offload_buffers: bool) -> dict[str, str]:
    """Only routed-expert modules on disk (and their routers, which hold the buffers, when offload_buffers)."""
    targets = _experts(skeleton)
    if offload_buffers:
        targets |= _routers(skeleton, targets)
    return on_disk(skeleton, targets)


def _head(skeleton: nn.Module) -> set[str]:
    return {name for name, _ in skeleton.named_children() if name == "lm_head"}


def _first_attention(skeleton: nn.Module) -> set[str]:
    """The attention module of the first decoder layer: that layer is split between disk and cpu."""
    from torch import nn

    base_name, base = _base(skeleton)
    for list_name, child in base.named_children():
        if isinstance(child, nn.ModuleList) and len(child):
            prefix = ".".join(p for p in (base_name, list_name, "0") if p)
            names = [n for n, _ in child[0].named_children() if "attn" in n or "attention" in n]
            return {f"{prefix}.{names[0]}"} if names else set()
    return set()


HAND_WRITTEN = {
    Placement.MAP_HEAD_ON_DISK: _head,
    Placement.MAP_ROUTERS_ON_DISK: lambda skeleton: _routers(skeleton, _experts(skeleton), with_buffers=False),
    Placement.MAP_LAYER_SPLIT: _first_attention,
}


def applies(placement: Placement, skeleton: nn.Module) -> bool:
    """Whether a hand-written map has anything of this model to put on disk."""
    pick = HAND_WRITTEN.get(placement)
    return pick is None or bool(pick(skeleton))


def on_disk(skeleton: nn.Module, targets: set[str]) -> dict[str, str]:
    """The modules named in `targets` on disk, everything else on cpu (a module holding both split by child)."""
    device_map: dict[str, str] = {}

    def place(name: str, module: nn.Module) -> None:
        if name in targets:
            device_map[name] = "disk"
        elif any(t.startswith(f"{name}.") for t in targets) or name == "":
            device_map.update(_own_tensors(module, f"{name}." if name else ""))
            for child_name, child in module.named_children():
                place(f"{name}.{child_name}" if name else child_name, child)
        else:
            device_map[name] = "cpu"

    place("", skeleton)
    return device_map


def _modes() -> tuple[Mode, ...]:
    out = [Mode(BASELINE_MODE, Placement.IN_MEMORY, False, "control: everything in RAM")]
    for placement, what in (
        (Placement.DISK_FULL, "whole model in offload_folder (device_map=auto, max_memory={'cpu': 1})"),
        (Placement.DISK_PARTIAL, "decoder layers on disk, embeddings/norm/head on cpu (explicit device_map)"),
        (Placement.DISK_AUTO, "device_map=auto, max_memory: RAM for half the weights, the rest on disk"),
        (
            Placement.EXPERTS_ON_DISK,
            "only routed experts on disk (+ routers with offload_buffers); explicit device_map",
        ),
        (Placement.ACCELERATE_CPU, "loaded in RAM, then accelerate.cpu_offload (no hf_device_map)"),
        (Placement.ACCELERATE_DISK, "loaded in RAM, then accelerate.disk_offload (no hf_device_map)"),
        (Placement.MAP_HEAD_ON_DISK, "hand-written map: lm_head alone on disk (a tied embedding on cpu)"),
        (
            Placement.MAP_ROUTERS_ON_DISK,
            "hand-written map: MoE routers on disk (their buffers in RAM unless offloaded)",
        ),
        (Placement.MAP_ALL_DISK, 'hand-written map: device_map={"": "disk"}'),
        (
            Placement.MAP_LAYER_SPLIT,
            "hand-written map: the first decoder layer's attention on disk, its other parts on cpu",
        ),
    ):
        # A hand-written map, and disk-auto, run in the default matrix where plan.extras says, not on every fixture.
        default = placement not in (*HAND_WRITTEN, Placement.MAP_ALL_DISK, Placement.DISK_AUTO)
        out.append(Mode(str(placement), placement, False, what, default=default))
        out.append(
            Mode(f"{placement}+offload_buffers", placement, True, f"{what}, offload_buffers=True", default=default)
        )
    # The whole model on disk with no offload_folder: every weight read in place from the checkpoint's files.
    out.append(
        Mode(
            f"{Placement.MAP_ALL_DISK}+no_offload_folder",
            Placement.MAP_ALL_DISK,
            False,
            'hand-written map: device_map={"": "disk"}, no offload_folder (weights read from the checkpoint in place)',
            default=False,  # in the default matrix where plan.extras says: a model whose weights convert refuses it
            offload_folder=OffloadFolder.NONE,
        )
    )
    # The whole model on disk into an offload_folder that exists already, empty (as a TemporaryDirectory is).
    out.append(
        Mode(
            f"{Placement.DISK_FULL}+existing_offload_folder",
            Placement.DISK_FULL,
            False,
            "whole model in offload_folder (device_map=auto, max_memory={'cpu': 1}), the folder an existing empty"
            " directory",
            default=False,  # in the default matrix where plan.extras says
            offload_folder=OffloadFolder.EXISTING,
        )
    )
    # accelerate's own loading, with the device maps of the transformers disk modes (harness.run.accelerate_load).
    out += [
        Mode(
            f"{loader}-{placement}{'+offload_buffers' if buffers else ''}",
            placement,
            buffers,
            f"{LOADER_DESCRIPTIONS[loader]}, the map of {placement}{', offload_buffers=True' if buffers else ''}",
            loader=loader,
            default=False,  # in the default matrix where plan.extras says
        )
        for loader in (Loader.DISPATCH, Loader.LOAD_CHECKPOINT)
        for placement in (Placement.DISK_FULL, Placement.DISK_PARTIAL, Placement.EXPERTS_ON_DISK)
        for buffers in (False, True)
    ]
    # A `+forward` twin of every offload mode, a `+train-eval` twin of every mode (in memory too: it shows whether
    # the step alone changes what is saved). Only the everything-offloaded ones are in the default matrix (with the
    # default max_shard_size: plan.selection): a forward pass moves every offloaded weight through the hooks there,
    # which is where it could leave state behind for the save; the others are one `--mode` away (the default matrix
    # must stay within 5 minutes).
    out += [
        Mode(
            f"{m.name}{step}",
            m.placement,
            m.offload_buffers,
            f"{m.description}; {STEP_DESCRIPTIONS[step]} before the save",
            step=step,
            loader=m.loader,
            default=f"{m.name}{step}" in DEFAULT_STEPS,
        )
        for step in (Step.FORWARD, Step.TRAIN_EVAL, Step.RESIZE, Step.REMOVE_HOOKS)
        for m in list(out)
        if step is not Step.FORWARD or m.placement is not Placement.IN_MEMORY
        # Only where the weights were in RAM before the hooks: removing a device map's hooks leaves its disk weights
        # on the meta device they were loaded on (a broken model, not a save).
        if step is not Step.REMOVE_HOOKS or m.placement in (Placement.ACCELERATE_CPU, Placement.ACCELERATE_DISK)
    ]
    # Not offload modes: the save of a model the conversion engine never loaded, holding the in-memory model's tensors.
    # Their baseline is the plain in-memory save, as for every mode. Out of the default matrix and the sweep.
    # from-config: built by the Auto class's from_config (no `_weight_conversions`: transformers then reverts the model
    # type's whole mapping, not the rules the load used), so it fails where the two reverts differ: a rule the
    # checkpoint never had (transformers#48075).
    # custom-code: a class defined outside transformers (as trust_remote_code code is) whose names are the
    # checkpoint's, so it fails where a save reverts a mapping on names never converted (transformers#46650).
    out += [
        Mode(
            str(Placement.FROM_CONFIG),
            Placement.FROM_CONFIG,
            False,
            "built by the Auto class's from_config (no weight conversions recorded), given the in-memory model's "
            "tensors (load_state_dict, strict)",
            default=False,
        ),
        Mode(
            str(Placement.CUSTOM_CODE),
            Placement.CUSTOM_CODE,
            False,
            "a class defined outside transformers (as remote code is), named and configured like the loaded model, "
            "holding the checkpoint's tensors under the checkpoint's names",
            default=False,
        ),
    ]
    return tuple(out)


LOADER_DESCRIPTIONS = {
    Loader.DISPATCH: "accelerate: init_empty_weights + load_checkpoint_and_dispatch",
    Loader.LOAD_CHECKPOINT: "accelerate: init_empty_weights + load_checkpoint_in_model + dispatch_model",
}
STEP_DESCRIPTIONS = {
    Step.FORWARD: "a forward pass",
    Step.TRAIN_EVAL: "train(), a forward pass in train mode, eval()",
    Step.RESIZE: "resize_token_embeddings to the vocabulary's own size",
    Step.REMOVE_HOOKS: "accelerate's remove_hook_from_submodules (the offloaded weights back in RAM)",
}
DEFAULT_STEPS = frozenset({"disk-full+offload_buffers+forward", "disk-full+offload_buffers+train-eval"})


MODES: tuple[Mode, ...] = _modes()


class UnknownMode(ValueError):
    pass


def by_name(name: str) -> Mode:
    for mode in MODES:
        if mode.name == name:
            return mode
    raise UnknownMode(f"unknown mode {name!r} (known: {', '.join(m.name for m in MODES)})")
