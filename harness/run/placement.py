"""The model as loaded holds in memory exactly what its placement keeps there (class `placement`).

Offloading exists so that a model larger than RAM can be loaded and saved: a tensor the device map puts on disk
(or that accelerate's `cpu_offload` / `disk_offload` move to offload storage) must be a `meta` placeholder in its
module, its value read from storage when needed. A load that leaves it in the module holds it in RAM as well,
which on a 700 GB model is the out-of-memory the brief's `load order` bug was; a tensor the map keeps in memory
that is `meta` was not loaded at all. Neither shows in a save of a tiny model, so it is checked on its own terms.

The rule is written here from what accelerate documents (`dispatch_model`: with no accelerator in the map the
main device is the CPU and only "disk" is offloaded; `AlignDevicesHook`: parameters always, buffers only with
`offload_buffers`, non-persistent buffers never), not taken from reference_impl or accelerate's code.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from offload_conformance.harness.outcomes import FailureClass
from offload_conformance.harness.plan.modes import Mode, Placement
from offload_conformance.harness.results import Difference
from offload_conformance.harness.run.lifecycle import examples

WHOLE_MODEL = frozenset({Placement.ACCELERATE_CPU, Placement.ACCELERATE_DISK})  # every tensor offloaded


def _device(name: str, device_map: dict[str, Any]) -> str | None:
    """The device the map gives the module (or tensor) holding `name`: its longest matching key."""
    parts = name.split(".")
    for cut in range(len(parts), -1, -1):
        key = ".".join(parts[:cut])
        if key in device_map:
            return str(device_map[key])
    return None


def _non_persistent(model: torch.nn.Module) -> set[str]:
    return {
        f"{prefix}.{b}" if prefix else b
        for prefix, module in model.named_modules()
        for b in getattr(module, "_non_persistent_buffers_set", ())
    }


def _offloaded(model: torch.nn.Module, mode: Mode) -> Iterator[tuple[str, torch.Tensor, bool]]:
    """Every parameter and buffer name (ties included), its tensor, and whether its placement offloads it."""
    params = list(model.named_parameters(remove_duplicate=False))
    buffers = list(model.named_buffers(remove_duplicate=False))
    device_map = getattr(model, "hf_device_map", None)
    if mode.in_ram_at_save:
        offloaded_devices: frozenset[str] = frozenset()
    elif mode.placement in WHOLE_MODEL:
        device_map, offloaded_devices = {"": "offloaded"}, frozenset({"offloaded"})
    elif isinstance(device_map, dict):
        # An accelerator in the map is the main device, and the CPU then holds offloaded weights too.
        accelerator = any(str(d) not in ("cpu", "disk") for d in device_map.values())
        offloaded_devices = frozenset({"cpu", "disk"} if accelerator else {"disk"})
    else:
        return  # a mode that offloads, with no map to say where: nothing to hold it to
    transient = _non_persistent(model)
    for names, is_buffer in ((params, False), (buffers, True)):
        for name, t in names:
            placed = _device(name, device_map) if isinstance(device_map, dict) else None
            off = placed in offloaded_devices
            if is_buffer:
                off = off and mode.offload_buffers and name not in transient
            yield name, t, off


def _same_tensor(names: list[str], tensors: dict[str, torch.Tensor]) -> dict[str, str]:
    """name -> the first name of the same tensor object (a tie): memory is held once per object, so a tie kept in
    memory under one name and offloaded under the other (a map splitting it) holds nothing twice."""
    first: dict[int, str] = {}
    return {n: first.setdefault(id(tensors[n]), n) for n in names}


def misplaced(model: torch.nn.Module, mode: Mode) -> list[Difference]:
    """Tensors the load holds in memory though their placement offloads them, and tensors it keeps in memory that
    are `meta`, judged per tensor object (a tie kept in memory under one name is in memory, whatever the other)."""
    rows = list(_offloaded(model, mode))
    tensors = {n: t for n, t, _ in rows}
    group = _same_tensor(list(tensors), tensors)
    members: dict[str, list[tuple[str, bool]]] = {}
    for name, _, off in rows:
        members.setdefault(group[name], []).append((name, off))
    held: list[str] = []
    lost: list[str] = []
    nbytes = 0
    for names in members.values():
        meta = [tensors[n].device.type == "meta" for n, _ in names]
        if all(off for _, off in names):
            resident = [n for (n, _), m in zip(names, meta, strict=True) if not m]
            held += resident
            if resident:  # one tensor object: its bytes once, whatever the names
                nbytes += tensors[resident[0]].numel() * tensors[resident[0]].element_size()
        elif all(meta):
            lost += [n for n, off in names if not off]
    out = []
    if held:
        what = f"the load holds in memory {nbytes} bytes its placement offloads (not meta in the module)"
        out.append(Difference(FailureClass.PLACEMENT, f"{what}: {examples(held)}", tensor=sorted(held)[0]))
    if lost:
        what = "tensors the placement keeps in memory are meta (never loaded)"
        out.append(Difference(FailureClass.PLACEMENT, f"{what}: {examples(lost)}", tensor=sorted(lost)[0]))
    return out
