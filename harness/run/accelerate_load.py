"""accelerate's own big-model loading (plan.modes.Loader): the model built empty from its config, tied, then its
checkpoint loaded and dispatched by accelerate with the mode's device map, as accelerate's big-model guide does.

accelerate loads a checkpoint by the model's own parameter names; a Hub checkpoint whose weights transformers
converts on load (per-expert tensors fused in memory, renamed keys) has other names, and accelerate has no
conversion engine. So the checkpoint loaded here is the fixture in the model's own names: the fixture loaded in memory
by transformers and saved with `save_original_format=False` (upstream's in-memory save, which a user would run once).
The model accelerate builds was never loaded by transformers' conversion engine (no `_weight_conversions`): its save
reverts the model type's whole mapping, as a `from-config` model's does (harness.run.from_config).

A fixture loaded in another dtype than its checkpoint's (`load_dtype`) keeps the checkpoint's dtype in that file and
is given to accelerate with `dtype=`, as a user loads a bf16 checkpoint in float32: accelerate casts what it keeps in
memory and stores what it offloads as the checkpoint holds it, to be cast on every read.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from offload_conformance.harness.plan.modes import Loader, Mode


class AccelerateLoadUnsupported(Exception):
    """The fixture cannot be loaded by accelerate here (quantized, or no checkpoint in the model's own names)."""


def accelerate_loaded(
    auto: Any, source: Path, dtypes: tuple[torch.dtype, torch.dtype], mode: Mode, kwargs: dict, scratch: Path
) -> Any:
    """The fixture at `source` loaded by `mode.loader` with the device map in `kwargs` (Mode.load_kwargs); `dtypes`:
    the checkpoint's, and the one it is loaded in."""
    from accelerate import (
        dispatch_model,
        infer_auto_device_map,
        init_empty_weights,
        load_checkpoint_and_dispatch,
        load_checkpoint_in_model,
    )

    stored, dtype = dtypes
    loaded = auto.from_pretrained(source, dtype=stored)
    if getattr(loaded, "hf_quantizer", None) is not None:
        # accelerate runs no quantizer: the model it builds from the config would hold other tensors.
        raise AccelerateLoadUnsupported("a quantized model is not loaded by accelerate's big-model loading")
    own = scratch / "own-names"
    try:
        loaded.save_pretrained(own, save_original_format=False)
    except Exception as e:
        why = f"no checkpoint in the model's own names: the in-memory save raised {e!r}"
        raise AccelerateLoadUnsupported(why) from e
    with init_empty_weights():
        model = auto.from_config(copy.deepcopy(loaded.config), dtype=dtype)
    # from_config derives a generation config of its own; the user's is the checkpoint's (not the save's business).
    model.generation_config = copy.deepcopy(loaded.generation_config)
    del loaded
    model.tie_weights()  # the guide's step: accelerate then places a tied weight once
    device_map = kwargs["device_map"]
    folder, buffers = kwargs["offload_folder"], kwargs["offload_buffers"]
    cast = {"dtype": dtype} if dtype != stored else {}  # accelerate's own default otherwise: no cast at all
    if mode.loader is Loader.DISPATCH:
        return load_checkpoint_and_dispatch(
            model,
            str(own),
            device_map=device_map,
            max_memory=kwargs.get("max_memory"),
            offload_folder=folder,
            offload_buffers=buffers,
            **cast,
        )
    if device_map == "auto":
        device_map = infer_auto_device_map(model, max_memory=kwargs["max_memory"])
    load_checkpoint_in_model(
        model, str(own), device_map=device_map, offload_folder=folder, offload_buffers=buffers, **cast
    )
    return dispatch_model(model, device_map=device_map, offload_dir=folder, offload_buffers=buffers)
