"""Implementations under test: `upstream`, `reference`, `accelerate-state-dict`, `faults:NAME`, or any
`package.module:function`.

An IUT is a callable `save(model, save_directory, **save_options) -> None`.
"""

from __future__ import annotations

import importlib
from typing import Any

from offload_conformance.harness.plan.options import Saver

BUILTIN = ("upstream", "reference")  # what a run uses when no --impl is given
NAMED = (*BUILTIN, "accelerate-state-dict")


class ImplError(ValueError):
    """An --impl value that does not name a usable save function."""


def upstream(model: Any, save_directory: str, **save_options: Any) -> None:
    model.save_pretrained(save_directory, **save_options)


def accelerate_state_dict(model: Any, save_directory: str, **save_options: Any) -> None:
    """The documented way to save a model offloaded with accelerate's own helpers (which leave no
    `hf_device_map` for transformers to onload by): accelerate gathers the state dict, transformers writes it."""
    from accelerate.utils.modeling import get_state_dict_offloaded_model

    model.save_pretrained(save_directory, state_dict=get_state_dict_offloaded_model(model), **save_options)


def resolve(spec: str) -> Saver:
    if spec == "upstream":
        return upstream
    if spec == "accelerate-state-dict":
        return accelerate_state_dict
    if spec == "reference":
        from offload_conformance.reference_impl import save_pretrained

        return save_pretrained
    if spec.startswith("faults:"):
        from offload_conformance.harness.plan.faults import FAULTS  # imports torch and the reference: when asked

        fault = FAULTS.get(spec.removeprefix("faults:"))
        if fault is None:
            raise ImplError(f"--impl {spec!r}: unknown fault (known: {', '.join(sorted(FAULTS))})")
        return fault.save
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ImplError(f"--impl {spec!r}: expected {', '.join(NAMED)} or 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # any import-time failure is the user's module, report it in one line
        raise ImplError(f"--impl {spec!r}: cannot import {module_name}: {type(e).__name__}: {e}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ImplError(f"--impl {spec!r}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ImplError(f"--impl {spec!r}: {attr} is a {type(obj).__name__}, not callable")
    return obj
