"""Offload modes: how a fixture is loaded (and possibly offloaded afterwards) before it is saved."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

# How a mode places the model. "accelerate-*" modes load in memory, then apply accelerate's own
# helpers: the path compressed-tensors / llm-compressor users take; such a model has no hf_device_map.
PLACEMENTS = ("in-memory", "disk-full", "disk-partial", "experts-on-disk", "accelerate-cpu", "accelerate-disk")


@dataclass(frozen=True)
class Mode:
    name: str
    placement: str
    offload_buffers: bool
    description: str

    def load_kwargs(self, skeleton: nn.Module, offload_folder: Path) -> dict[str, object]:
        """from_pretrained keyword arguments; `skeleton` is the model built on the meta device."""
        if self.placement in ("in-memory", "accelerate-cpu", "accelerate-disk"):
            return {}
        common: dict[str, object] = {"offload_folder": str(offload_folder), "offload_buffers": self.offload_buffers}
        if self.placement == "disk-full":
            # On a CPU-only machine this yields hf_device_map == {"": "disk"}.
            return {"device_map": "auto", "max_memory": {"cpu": 1}, **common}
        if self.placement == "disk-partial":
            return {"device_map": partial_device_map(skeleton), **common}
        return {"device_map": experts_device_map(skeleton, self.offload_buffers), **common}

    def after_load(self, model: Any, offload_folder: Path) -> None:
        """Offloading applied to an already loaded model."""
        from accelerate import cpu_offload, disk_offload

        cpu = torch.device("cpu")
        if self.placement == "accelerate-cpu":
            cpu_offload(model, execution_device=cpu, offload_buffers=self.offload_buffers)
        elif self.placement == "accelerate-disk":
            disk_offload(model, str(offload_folder), execution_device=cpu, offload_buffers=self.offload_buffers)


def _base(skeleton: nn.Module) -> tuple[str, nn.Module]:
    """The child holding the decoder layers (model.model for a causal LM)."""
    for name, child in skeleton.named_children():
        if any(isinstance(c, nn.ModuleList) for c in child.children()):
            return name, child
    return "", skeleton


def partial_device_map(skeleton: nn.Module) -> dict[str, str]:
    """Decoder layers on disk; embeddings, final norm, rotary embedding and head on cpu."""
    base_name, base = _base(skeleton)
    prefix = f"{base_name}." if base_name else ""
    device_map: dict[str, str] = {}
    for name, child in base.named_children():
        if isinstance(child, nn.ModuleList):
            device_map.update({f"{prefix}{name}.{i}": "disk" for i in range(len(child))})
        else:
            device_map[f"{prefix}{name}"] = "cpu"
    device_map.update({name: "cpu" for name, _ in skeleton.named_children() if name != base_name})
    return device_map


def experts_device_map(skeleton: nn.Module, offload_buffers: bool) -> dict[str, str]:
    """Only routed-expert modules on disk (and their routers, which hold the buffers, when offload_buffers)."""
    targets = {name for name, _ in skeleton.named_modules() if name.rsplit(".", 1)[-1] == "experts"}
    if offload_buffers:
        parents = {t.rsplit(".", 1)[0] for t in targets}
        targets |= {
            n
            for n, m in skeleton.named_modules()
            if n.rsplit(".", 1)[0] in parents
            and n.rsplit(".", 1)[-1] in ("gate", "router")
            and any(True for _ in m.buffers())
        }
    device_map: dict[str, str] = {}

    def place(name: str, module: nn.Module) -> None:
        if name in targets:
            device_map[name] = "disk"
        elif any(t.startswith(f"{name}.") for t in targets) or name == "":
            for child_name, child in module.named_children():
                place(f"{name}.{child_name}" if name else child_name, child)
        else:
            device_map[name] = "cpu"

    place("", skeleton)
    return device_map


def _modes() -> tuple[Mode, ...]:
    out = [Mode("in-memory", "in-memory", False, "control: everything in RAM")]
    for placement, what in (
        ("disk-full", "whole model in offload_folder (device_map=auto, max_memory={'cpu': 1})"),
        ("disk-partial", "decoder layers on disk, embeddings/norm/head on cpu (explicit device_map)"),
        ("experts-on-disk", "only routed experts on disk (+ routers with offload_buffers); explicit device_map"),
        ("accelerate-cpu", "loaded in RAM, then accelerate.cpu_offload (no hf_device_map)"),
        ("accelerate-disk", "loaded in RAM, then accelerate.disk_offload (no hf_device_map)"),
    ):
        out.append(Mode(placement, placement, False, what))
        out.append(Mode(f"{placement}+offload_buffers", placement, True, f"{what}, offload_buffers=True"))
    return tuple(out)


MODES: tuple[Mode, ...] = _modes()


class UnknownMode(ValueError):
    pass


def by_name(name: str) -> Mode:
    for mode in MODES:
        if mode.name == name:
            return mode
    raise UnknownMode(f"unknown mode {name!r} (known: {', '.join(m.name for m in MODES)})")
