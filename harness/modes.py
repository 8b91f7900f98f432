"""Offload modes: how a fixture is loaded before it is saved."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn


@dataclass(frozen=True)
class Mode:
    name: str
    placement: str  # in-memory | disk-full | disk-partial
    offload_buffers: bool
    description: str

    def load_kwargs(self, skeleton: nn.Module, offload_folder: Path) -> dict[str, object]:
        """from_pretrained keyword arguments; `skeleton` is the model built on the meta device."""
        if self.placement == "in-memory":
            return {}
        common: dict[str, object] = {"offload_folder": str(offload_folder), "offload_buffers": self.offload_buffers}
        if self.placement == "disk-full":
            # On a CPU-only machine this yields hf_device_map == {"": "disk"}.
            return {"device_map": "auto", "max_memory": {"cpu": 1}, **common}
        return {"device_map": partial_device_map(skeleton), **common}


def partial_device_map(skeleton: nn.Module) -> dict[str, str]:
    """Decoder layers on disk; embeddings, final norm, rotary embedding and head on cpu."""
    base_name, base = next(
        ((n, m) for n, m in skeleton.named_children() if any(isinstance(c, nn.ModuleList) for c in m.children())),
        ("", skeleton),
    )
    prefix = f"{base_name}." if base_name else ""
    device_map: dict[str, str] = {}
    for name, child in base.named_children():
        if isinstance(child, nn.ModuleList):
            device_map.update({f"{prefix}{name}.{i}": "disk" for i in range(len(child))})
        else:
            device_map[f"{prefix}{name}"] = "cpu"
    for name, _ in skeleton.named_children():
        if name != base_name:
            device_map[name] = "cpu"
    return device_map


def _modes() -> tuple[Mode, ...]:
    out = [Mode("in-memory", "in-memory", False, "control: everything in RAM")]
    for placement, what in (
        ("disk-full", "whole model in offload_folder (device_map=auto, max_memory={'cpu': 1})"),
        ("disk-partial", "decoder layers on disk, embeddings/norm/head on cpu (explicit device_map)"),
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
